// GuestMemory: region validation on the control path and translation of
// guest-supplied ranges, including wrap-around and ranges across regions.
#include <sys/uio.h>

#include <array>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <vector>

#include "tests/unit/virtio/printers.h"
#include "vhost-backend/virtio/guest_memory.h"

namespace viopool::virtio {
namespace {

namespace bdata = boost::unit_test::data;

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();

// Two host buffers mapped at guest-physically adjacent addresses, so a range
// across the boundary must be split into two iovecs with unrelated host bases.
struct TwoRegions {
  static constexpr std::uint64_t kBase = 0x1'0000'0000;
  static constexpr std::uint64_t kSize = 4096;
  std::vector<std::byte> a = std::vector<std::byte>(kSize);
  std::vector<std::byte> b = std::vector<std::byte>(kSize);
  GuestMemory mem;

  TwoRegions() {
    BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{kBase + kSize}, kSize, b.data()}).has_value());
    BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{kBase}, kSize, a.data()}).has_value());
  }
};

BOOST_AUTO_TEST_SUITE(guest_memory)

BOOST_AUTO_TEST_CASE(add_region_rejects_zero_size) {
  std::byte host[16];
  GuestMemory mem;
  auto r = mem.add_region({GuestAddr{0x1000}, 0, host});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kInvalidArgument);
  BOOST_TEST(mem.regions().empty());
}

BOOST_AUTO_TEST_CASE(add_region_rejects_null_host) {
  GuestMemory mem;
  auto r = mem.add_region({GuestAddr{0x1000}, 4096, nullptr});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(add_region_rejects_guest_range_wrapping_2_pow_64) {
  std::byte host[16];
  GuestMemory mem;
  auto r = mem.add_region({GuestAddr{kMaxU64 - 7}, 16, host});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kInvalidArgument);
}

// {start, size} of a second region against a first one at [0x10000, 0x20000).
BOOST_DATA_TEST_CASE(add_region_rejects_overlap,
                     bdata::make(std::vector<std::uint64_t>{0x0f000, 0x1ffff, 0x11000, 0x08000}) ^
                         bdata::make(std::vector<std::uint64_t>{0x02000, 0x01000, 0x01000,
                                                                0x20000}),
                     start, size) {
  std::vector<std::byte> host(0x20000);
  GuestMemory mem;
  BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{0x10000}, 0x10000, host.data()}).has_value());
  auto r = mem.add_region({GuestAddr{start}, size, host.data()});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kInvalidArgument);
  BOOST_TEST(mem.regions().size() == 1u);
}

BOOST_AUTO_TEST_CASE(add_region_accepts_adjacent_regions_and_sorts_them) {
  TwoRegions t;
  BOOST_TEST_REQUIRE(t.mem.regions().size() == 2u);
  BOOST_TEST(t.mem.regions()[0].guest_phys_addr.value == TwoRegions::kBase);
  BOOST_TEST(t.mem.regions()[1].guest_phys_addr.value == TwoRegions::kBase + TwoRegions::kSize);
}

BOOST_AUTO_TEST_CASE(add_region_rejects_more_than_max_regions) {
  std::byte host[16];
  GuestMemory mem;
  for (std::size_t i = 0; i < GuestMemory::kMaxRegions; ++i) {
    BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{0x1000 * (i + 1)}, 16, host}).has_value());
  }
  auto r = mem.add_region({GuestAddr{0x100000}, 16, host});
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kResourceExhausted);
}

BOOST_AUTO_TEST_CASE(clear_removes_all_regions) {
  TwoRegions t;
  t.mem.clear();
  BOOST_TEST(t.mem.regions().empty());
  BOOST_TEST(!t.mem.translate(GuestAddr{TwoRegions::kBase}, 1).has_value());
}

BOOST_AUTO_TEST_CASE(translate_returns_host_span_inside_region) {
  TwoRegions t;
  auto r = t.mem.translate(GuestAddr{TwoRegions::kBase + TwoRegions::kSize + 100}, 200);
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->data() == t.b.data() + 100);
  BOOST_TEST(r->size() == 200u);
}

BOOST_AUTO_TEST_CASE(translate_accepts_whole_region) {
  TwoRegions t;
  auto r = t.mem.translate(GuestAddr{TwoRegions::kBase}, TwoRegions::kSize);
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(r->data() == t.a.data());
}

// {address offset from kBase, length}: each leaves the mapped range somewhere
// (below the first region, past the second, across its end).
const std::vector<std::uint64_t> kOutsideOffsets = {
    kMaxU64, 2 * TwoRegions::kSize, 2 * TwoRegions::kSize - 1, TwoRegions::kSize + 1};
const std::vector<std::uint64_t> kOutsideLens = {1, 1, 2, TwoRegions::kSize};

BOOST_DATA_TEST_CASE(translate_rejects_range_outside_regions,
                     bdata::make(kOutsideOffsets) ^ bdata::make(kOutsideLens), offset, len) {
  TwoRegions t;
  auto r = t.mem.translate(GuestAddr{TwoRegions::kBase + offset}, len);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(translate_rejects_range_spanning_two_regions) {
  TwoRegions t;
  auto r = t.mem.translate(GuestAddr{TwoRegions::kBase + TwoRegions::kSize - 8}, 16);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kOutOfRange);
}

BOOST_DATA_TEST_CASE(translate_rejects_length_wrapping_2_pow_64,
                     bdata::make({kMaxU64, kMaxU64 - TwoRegions::kBase, kMaxU64 - 99}), len) {
  TwoRegions t;
  auto r = t.mem.translate(GuestAddr{TwoRegions::kBase + 100}, len);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(translate_handles_region_ending_at_top_of_address_space) {
  std::array<std::byte, 64> host{};
  GuestMemory mem;
  BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{kMaxU64 - 63}, 64, host.data()}).has_value());
  auto last = mem.translate(GuestAddr{kMaxU64 - 15}, 16);
  BOOST_TEST_REQUIRE(last.has_value());
  BOOST_TEST(last->data() == host.data() + 48);
  BOOST_TEST(!mem.translate(GuestAddr{kMaxU64 - 15}, 17).has_value());
  BOOST_TEST(!mem.translate(GuestAddr{kMaxU64}, 2).has_value());
  BOOST_TEST(mem.contains(GuestAddr{kMaxU64 - 63}, 64));
  BOOST_TEST(!mem.contains(GuestAddr{kMaxU64}, 2));
}

BOOST_AUTO_TEST_CASE(translate_zero_length_needs_a_mapped_address) {
  TwoRegions t;
  auto in = t.mem.translate(GuestAddr{TwoRegions::kBase + 5}, 0);
  BOOST_TEST_REQUIRE(in.has_value());
  BOOST_TEST(in->empty());
  BOOST_TEST(!t.mem.translate(GuestAddr{TwoRegions::kBase - 1}, 0).has_value());
}

BOOST_AUTO_TEST_CASE(translate_iov_splits_range_across_adjacent_regions) {
  TwoRegions t;
  std::array<iovec, 4> iov{};
  auto r = t.mem.translate_iov(GuestAddr{TwoRegions::kBase + TwoRegions::kSize - 100}, 300, iov);
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST_REQUIRE(*r == 2u);
  BOOST_TEST(iov[0].iov_base == static_cast<void*>(t.a.data() + TwoRegions::kSize - 100));
  BOOST_TEST(iov[0].iov_len == 100u);
  BOOST_TEST(iov[1].iov_base == static_cast<void*>(t.b.data()));
  BOOST_TEST(iov[1].iov_len == 200u);
}

BOOST_AUTO_TEST_CASE(translate_iov_uses_one_iovec_inside_a_region) {
  TwoRegions t;
  std::array<iovec, 1> iov{};
  auto r = t.mem.translate_iov(GuestAddr{TwoRegions::kBase + 8}, 64, iov);
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(*r == 1u);
  BOOST_TEST(iov[0].iov_base == static_cast<void*>(t.a.data() + 8));
}

BOOST_AUTO_TEST_CASE(translate_iov_rejects_gap_between_regions) {
  std::vector<std::byte> a(4096), b(4096);
  GuestMemory mem;
  BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{0x10000}, 4096, a.data()}).has_value());
  BOOST_TEST_REQUIRE(mem.add_region({GuestAddr{0x10000 + 8192}, 4096, b.data()}).has_value());
  std::array<iovec, 4> iov{};
  auto r = mem.translate_iov(GuestAddr{0x10000 + 4000}, 8192, iov);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kOutOfRange);
  BOOST_TEST(!mem.contains(GuestAddr{0x10000 + 4000}, 8192));
}

BOOST_AUTO_TEST_CASE(translate_iov_rejects_too_many_pieces) {
  TwoRegions t;
  std::array<iovec, 1> iov{};
  auto r = t.mem.translate_iov(GuestAddr{TwoRegions::kBase + TwoRegions::kSize - 1}, 2, iov);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kResourceExhausted);
}

BOOST_AUTO_TEST_CASE(translate_iov_rejects_wrapping_range) {
  TwoRegions t;
  std::array<iovec, 4> iov{};
  auto r = t.mem.translate_iov(GuestAddr{TwoRegions::kBase}, kMaxU64, iov);
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(translate_iov_of_zero_length_is_empty) {
  TwoRegions t;
  std::array<iovec, 1> iov{};
  auto r = t.mem.translate_iov(GuestAddr{TwoRegions::kBase}, 0, iov);
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST(*r == 0u);
}

BOOST_AUTO_TEST_CASE(contains_accepts_range_across_adjacent_regions) {
  TwoRegions t;
  BOOST_TEST(t.mem.contains(GuestAddr{TwoRegions::kBase}, 2 * TwoRegions::kSize));
  BOOST_TEST(!t.mem.contains(GuestAddr{TwoRegions::kBase}, 2 * TwoRegions::kSize + 1));
  BOOST_TEST(!t.mem.contains(GuestAddr{TwoRegions::kBase - 1}, 2));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace viopool::virtio
