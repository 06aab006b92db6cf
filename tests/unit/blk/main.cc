#define BOOST_TEST_MODULE unit_blk
#include <boost/test/unit_test.hpp>
