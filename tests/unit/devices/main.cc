#define BOOST_TEST_MODULE unit_devices
#include <boost/test/unit_test.hpp>
