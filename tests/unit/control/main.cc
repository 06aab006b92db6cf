#define BOOST_TEST_MODULE unit_control
#include <boost/test/unit_test.hpp>
