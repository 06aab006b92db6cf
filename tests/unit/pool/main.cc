#define BOOST_TEST_MODULE unit_pool
#include <boost/test/unit_test.hpp>
