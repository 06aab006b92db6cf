#define BOOST_TEST_MODULE component_net
#include <boost/test/unit_test.hpp>
