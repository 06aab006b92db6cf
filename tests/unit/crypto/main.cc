#define BOOST_TEST_MODULE unit_crypto
#include <boost/test/unit_test.hpp>
