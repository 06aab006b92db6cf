// virtio-net feature policy: what is offered for a config, what a frontend
// may ack.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "vhost-backend/devices/net/net_device.h"
#include "vhost-backend/virtio/virtio_defs.h"

using namespace viopool;
using namespace viopool::net;
namespace v = viopool::virtio;

namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr unsigned kCsum = 0, kGuestCsum = 1, kHostTso4 = 11, kGuestTso4 = 7, kStatus = 16;
}  // namespace

BOOST_AUTO_TEST_SUITE(net_device)

BOOST_DATA_TEST_CASE(offered_features_follow_the_config,
                     boost::unit_test::data::make({1, 2, 16}) *
                         boost::unit_test::data::make({false, true}) *
                         boost::unit_test::data::make({false, true}),
                     qps, mrg, packed) {
  const auto f = offered_features({static_cast<std::uint16_t>(qps), mrg, packed});
  BOOST_TEST((f & bit(v::kFeatureVersion1)) != 0u);
  BOOST_TEST((f & bit(v::kFeatureProtocolFeatures)) != 0u);
  BOOST_TEST((f & bit(v::kFeatureRingEventIdx)) != 0u);
  BOOST_TEST((f & bit(v::kFeatureRingIndirectDesc)) != 0u);
  BOOST_TEST((f & bit(v::kFeatureLogAll)) != 0u);
  BOOST_TEST(((f & bit(kFeatMq)) != 0) == (qps > 1));
  BOOST_TEST(((f & bit(kFeatMrgRxbuf)) != 0) == mrg);
  BOOST_TEST(((f & bit(v::kFeatureRingPacked)) != 0) == packed);
}

BOOST_AUTO_TEST_CASE(offloads_that_the_backends_cannot_honour_are_never_offered) {
  const auto f = offered_features({4, true, true});
  for (unsigned b : {kCsum, kGuestCsum, kHostTso4, kGuestTso4, kStatus}) {
    BOOST_TEST((f & bit(b)) == 0u, "bit " << b);
  }
}

BOOST_AUTO_TEST_CASE(acked_subset_is_accepted) {
  const auto offered = offered_features({2, true, true});
  BOOST_TEST(check_acked_features(offered, offered).has_value());
  BOOST_TEST(check_acked_features(offered, bit(v::kFeatureVersion1)).has_value());
  BOOST_TEST(check_acked_features(offered, 0).has_value());
  // Frontends keep the control queue: MQ without CTRL_VQ is legal towards us.
  BOOST_TEST(check_acked_features(offered, bit(kFeatMq) | bit(v::kFeatureVersion1)).has_value());
}

BOOST_AUTO_TEST_CASE(acking_an_unoffered_bit_is_a_protocol_error) {
  const auto offered = offered_features({1, false, false});
  for (std::uint64_t extra : {bit(kCsum), bit(kFeatMq), bit(kFeatMrgRxbuf), bit(v::kFeatureRingPacked),
                              bit(63)}) {
    auto r = check_acked_features(offered, offered | extra);
    BOOST_REQUIRE(!r.has_value());
    BOOST_TEST(static_cast<int>(r.error().code) == static_cast<int>(Errc::kProtocol));
  }
}

BOOST_AUTO_TEST_SUITE_END()
