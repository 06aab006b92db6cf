#define BOOST_TEST_MODULE component_frontend
#include <boost/test/unit_test.hpp>
