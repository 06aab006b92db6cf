// FeatureSet operations, negotiation against the offered set, and the names
// used to print feature sets.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "tests/unit/virtio/printers.h"
#include "vhost-backend/virtio/features.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::virtio {
namespace {

namespace bdata = boost::unit_test::data;

BOOST_AUTO_TEST_SUITE(features)

BOOST_DATA_TEST_CASE(with_sets_only_that_bit, bdata::make({0u, 1u, 24u, 29u, 32u, 34u, 63u}), bit) {
  const FeatureSet f = FeatureSet{}.with(bit);
  BOOST_TEST(f.has(bit));
  BOOST_TEST(f.bits() == std::uint64_t{1} << bit);
  BOOST_TEST(f.without(bit).bits() == 0u);
}

BOOST_AUTO_TEST_CASE(bits_beyond_63_are_never_set) {
  const FeatureSet f = FeatureSet{~std::uint64_t{0}};
  BOOST_TEST(!f.has(64));
  BOOST_TEST(!f.has(1000));
  BOOST_TEST(FeatureSet{}.with(64).bits() == 0u);
}

BOOST_AUTO_TEST_CASE(negotiate_accepts_subset_of_offered) {
  const FeatureSet offered =
      FeatureSet{}.with(kFeatureVersion1).with(kFeatureRingEventIdx).with(kFeatureRingIndirectDesc);
  const FeatureSet acked = FeatureSet{}.with(kFeatureVersion1).with(kFeatureRingEventIdx);
  auto r = negotiate(offered, acked);
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->bits() == acked.bits());
}

BOOST_AUTO_TEST_CASE(negotiate_accepts_empty_ack) {
  auto r = negotiate(FeatureSet{}.with(kFeatureVersion1), FeatureSet{});
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->bits() == 0u);
}

BOOST_DATA_TEST_CASE(negotiate_rejects_acked_bits_not_offered,
                     bdata::make({0u, kFeatureRingPacked, kFeatureLogAll, 63u}), extra_bit) {
  const FeatureSet offered = FeatureSet{}.with(kFeatureVersion1).with(kFeatureRingEventIdx);
  auto r = negotiate(offered, offered.with(extra_bit));
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kProtocol);
}

BOOST_AUTO_TEST_CASE(contains_is_subset) {
  const FeatureSet a = FeatureSet{}.with(1).with(2);
  BOOST_TEST(a.contains(FeatureSet{}.with(2)));
  BOOST_TEST(a.contains(FeatureSet{}));
  BOOST_TEST(!a.contains(FeatureSet{}.with(3)));
}

BOOST_AUTO_TEST_CASE(to_string_names_known_bits_in_order) {
  const FeatureSet f = FeatureSet{}
                           .with(kFeatureVersion1)
                           .with(kFeatureRingEventIdx)
                           .with(kFeatureProtocolFeatures)
                           .with(kFeatureLogAll);
  BOOST_TEST(to_string(f) == "LOG_ALL|RING_EVENT_IDX|PROTOCOL_FEATURES|VERSION_1");
}

BOOST_AUTO_TEST_CASE(to_string_prints_unknown_bits_by_number) {
  BOOST_TEST(to_string(FeatureSet{}.with(5).with(kFeatureRingPacked).with(63)) ==
             "bit5|RING_PACKED|bit63");
  BOOST_TEST(to_string(FeatureSet{}) == "none");
}

BOOST_AUTO_TEST_CASE(feature_name_knows_transport_bits_only) {
  BOOST_TEST(feature_name(kFeatureAccessPlatform) == std::string("ACCESS_PLATFORM"));
  BOOST_TEST(feature_name(kFeatureNotifyOnEmpty) == std::string("NOTIFY_ON_EMPTY"));
  BOOST_TEST(feature_name(kFeatureAnyLayout) == std::string("ANY_LAYOUT"));
  BOOST_TEST(feature_name(kFeatureRingIndirectDesc) == std::string("RING_INDIRECT_DESC"));
  BOOST_TEST(feature_name(0) == nullptr);
  BOOST_TEST(feature_name(64) == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace viopool::virtio
