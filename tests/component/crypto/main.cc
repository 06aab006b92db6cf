#define BOOST_TEST_MODULE component_crypto
#include <boost/test/unit_test.hpp>
