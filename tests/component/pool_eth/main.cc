#define BOOST_TEST_MODULE component_pool_eth
#include <boost/test/unit_test.hpp>
