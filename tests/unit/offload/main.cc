#define BOOST_TEST_MODULE unit_offload
#include <boost/test/unit_test.hpp>
