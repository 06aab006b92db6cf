#define BOOST_TEST_MODULE component_offload
#include <boost/test/unit_test.hpp>
