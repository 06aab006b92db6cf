#define BOOST_TEST_MODULE component_pool
#include <boost/test/unit_test.hpp>
