// Boost.Test entry point of unit_virtio: split ring, feature and guest memory
// tests of vhost-backend/virtio, run against FakeGuestDriver (no DPDK).
#define BOOST_TEST_MODULE unit_virtio
#include <boost/test/unit_test.hpp>
