#define BOOST_TEST_MODULE component_blk
#include <boost/test/unit_test.hpp>
