// The frontend's building blocks without a backend process: DriverQueue (the
// driver side) against viopool's own device-side SplitQueue over one
// GuestMemoryArena, plus the arena allocator, the latency histogram and the
// data patterns. Catches ring-layout and notification disagreements between
// our two halves before a real backend is involved.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <optional>
#include <vector>

#include "integration/frontend/blk_driver.h"
#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "integration/frontend/latency_histogram.h"
#include "tests/component/frontend/printers.h"
#include "vhost-backend/virtio/split_queue.h"

using namespace viopool;
using namespace viopool::frontend;

namespace {

struct RingPair {
  std::unique_ptr<GuestMemoryArena> arena;
  std::unique_ptr<DriverQueue> drv;
  std::optional<virtio::SplitQueue> dev;

  RingPair(std::uint16_t size, virtio::EventIdx event_idx, Indirect indirect,
           std::uint16_t start_idx) {
    ArenaOptions ao;
    ao.size = 8 << 20;
    auto a = GuestMemoryArena::create(ao);
    BOOST_REQUIRE(a.has_value());
    arena = std::move(*a);
    DriverQueueOptions o;
    o.size = size;
    o.event_idx = event_idx;
    o.indirect = indirect;
    o.max_indirect = 8;
    o.start_idx = start_idx;
    auto q = DriverQueue::create(*arena, o);
    BOOST_REQUIRE(q.has_value());
    drv = std::move(*q);
    virtio::SplitQueueConfig c;
    c.desc = arena->host(drv->desc_gpa(), virtio::desc_table_bytes(size));
    c.avail = arena->host(drv->avail_gpa(), virtio::avail_ring_bytes(size));
    c.used = arena->host(drv->used_gpa(), virtio::used_ring_bytes(size));
    c.size = size;
    c.memory = &arena->guest_memory();
    c.event_idx = event_idx;
    c.last_avail_idx = start_idx;
    c.last_used_idx = start_idx;
    auto s = virtio::SplitQueue::create(c);
    BOOST_REQUIRE(s.has_value());
    dev.emplace(std::move(*s));
  }
};

struct RingCase {
  virtio::EventIdx event_idx;
  Indirect indirect;
  std::uint16_t start_idx;
};
std::ostream& operator<<(std::ostream& os, const RingCase& c) {
  return os << "event_idx=" << (c.event_idx == virtio::EventIdx::kYes)
            << " indirect=" << (c.indirect == Indirect::kYes) << " start=" << c.start_idx;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(driver_queue)

BOOST_DATA_TEST_CASE(chains_round_trip_through_the_device_side_queue,
                     boost::unit_test::data::make(std::vector<RingCase>{
                         {virtio::EventIdx::kNo, Indirect::kNo, 0},
                         {virtio::EventIdx::kYes, Indirect::kNo, 65530},
                         {virtio::EventIdx::kYes, Indirect::kYes, 65000},
                         {virtio::EventIdx::kNo, Indirect::kYes, 7},
                     }),
                     rc) {
  RingPair p(16, rc.event_idx, rc.indirect, rc.start_idx);
  auto buf = p.arena->alloc(64 * 1024, 4096);
  BOOST_REQUIRE(buf.has_value());
  std::uint64_t cookie = 1000;
  // 5 rounds of up to 5 chains: 3x the ring, so both 16-bit indexes wrap.
  for (int round = 0; round < 10; ++round) {
    const std::size_t n = 1 + round % 5;
    for (std::size_t i = 0; i < n; ++i) {
      const GuestAddr base{buf->gpa.value + i * 4096};
      const DriverSegment segs[] = {{base, 16, Writable::kNo},
                                    {GuestAddr{base.value + 512}, 1024, Writable::kYes},
                                    {GuestAddr{base.value + 2048}, 1, Writable::kYes}};
      BOOST_REQUIRE(p.drv->add(segs, cookie + i).has_value());
    }
    auto k = p.drv->kick();
    BOOST_REQUIRE(k.has_value());
    for (std::size_t i = 0; i < n; ++i) {
      auto chain = p.dev->pop();
      BOOST_REQUIRE(chain.has_value());
      BOOST_REQUIRE(chain->has_value());
      const auto& c = **chain;
      BOOST_TEST(c.ok());
      BOOST_TEST(c.indirect() == (rc.indirect == Indirect::kYes));
      BOOST_REQUIRE(c.readable().size() == 1u);
      BOOST_REQUIRE(c.writable().size() == 2u);
      BOOST_TEST(c.readable()[0].addr.value == buf->gpa.value + i * 4096);
      BOOST_TEST(c.readable()[0].len == 16u);
      BOOST_TEST(c.writable()[0].len == 1024u);
      BOOST_TEST(c.writable()[1].len == 1u);
      p.dev->push_used(c.head(), static_cast<std::uint32_t>(100 + i));
    }
    std::array<DriverCompletion, 8> out;
    auto got = p.drv->reap(out);
    BOOST_REQUIRE(got.has_value());
    BOOST_REQUIRE(*got == n);
    for (std::size_t i = 0; i < n; ++i) {
      BOOST_TEST(out[i].cookie == cookie + i);
      BOOST_TEST(out[i].len == 100 + i);
    }
    BOOST_TEST(p.drv->in_flight() == 0u);
    BOOST_TEST(p.drv->free_descriptors() == 16u);
    cookie += n;
  }
  BOOST_TEST(p.drv->avail_idx() == static_cast<std::uint16_t>(rc.start_idx + 30));
  BOOST_TEST(p.dev->last_avail_idx() == p.drv->avail_idx());
}

BOOST_DATA_TEST_CASE(kicks_follow_the_devices_notification_wishes,
                     boost::unit_test::data::make({virtio::EventIdx::kNo, virtio::EventIdx::kYes}),
                     event_idx) {
  RingPair p(8, event_idx, Indirect::kNo, 0);
  auto buf = p.arena->alloc(4096, 64);
  BOOST_REQUIRE(buf.has_value());
  const DriverSegment seg[] = {{buf->gpa, 64, Writable::kYes}};
  p.dev->set_notifications(virtio::Notifications::kEnabled);
  BOOST_REQUIRE(p.drv->add(seg, 1).has_value());
  BOOST_TEST(*p.drv->kick() == true);
  BOOST_TEST(*p.drv->kick() == false);  // nothing new: no second kick
  // Disabled before the pop: with EVENT_IDX a pop under enabled notifications
  // moves avail_event and so asks for the next kick.
  p.dev->set_notifications(virtio::Notifications::kDisabled);
  BOOST_REQUIRE(p.dev->pop().has_value());
  BOOST_REQUIRE(p.drv->add(seg, 2).has_value());
  BOOST_TEST(*p.drv->kick() == false);
  BOOST_TEST(p.drv->kicks_suppressed() == 1u);
  BOOST_REQUIRE(p.dev->pop().has_value());
  p.dev->set_notifications(virtio::Notifications::kEnabled);
  BOOST_REQUIRE(p.drv->add(seg, 3).has_value());
  BOOST_TEST(*p.drv->kick() == true);
  BOOST_TEST(p.drv->kicks() == 2u);
}

BOOST_DATA_TEST_CASE(the_device_interrupts_only_when_the_driver_wants_it,
                     boost::unit_test::data::make({virtio::EventIdx::kNo, virtio::EventIdx::kYes}),
                     event_idx) {
  RingPair p(8, event_idx, Indirect::kNo, 0);
  auto buf = p.arena->alloc(4096, 64);
  BOOST_REQUIRE(buf.has_value());
  const DriverSegment seg[] = {{buf->gpa, 64, Writable::kYes}};
  std::array<DriverCompletion, 4> out;
  (void)p.dev->need_notify();  // the first call after create() always says yes

  p.drv->set_interrupts(virtio::Notifications::kDisabled);
  for (int i = 0; i < 3; ++i) {
    BOOST_REQUIRE(p.drv->add(seg, i).has_value());
    BOOST_REQUIRE(p.drv->kick().has_value());
    auto c = p.dev->pop();
    BOOST_REQUIRE((c.has_value() && c->has_value()));
    p.dev->push_used((*c)->head(), 1);
    BOOST_TEST(!p.dev->need_notify());
    BOOST_TEST(*p.drv->reap(out) == 1u);
  }
  p.drv->set_interrupts(virtio::Notifications::kEnabled);
  BOOST_REQUIRE(p.drv->add(seg, 9).has_value());
  BOOST_REQUIRE(p.drv->kick().has_value());
  auto c = p.dev->pop();
  BOOST_REQUIRE((c.has_value() && c->has_value()));
  p.dev->push_used((*c)->head(), 1);
  BOOST_TEST(p.dev->need_notify());
  // wait_used() sees the entry at once, without sleeping on the eventfd.
  auto ready = p.drv->wait_used(std::chrono::milliseconds(0));
  BOOST_REQUIRE(ready.has_value());
  BOOST_TEST(*ready);
}

BOOST_AUTO_TEST_CASE(a_used_entry_for_a_descriptor_not_in_flight_breaks_the_queue) {
  RingPair p(8, virtio::EventIdx::kNo, Indirect::kNo, 0);
  // A misbehaving device publishes a used entry although nothing was ever
  // made available (written by hand: SplitQueue itself would not do that).
  std::byte* used = p.arena->host(p.drv->used_gpa(), virtio::used_ring_bytes(8));
  const virtio::VringUsedElem bogus{5, 0};
  std::memcpy(used + virtio::kUsedRingOffset, &bogus, sizeof(bogus));
  const std::uint16_t idx = 1;
  std::memcpy(used + offsetof(virtio::VringUsed, idx), &idx, sizeof(idx));
  std::array<DriverCompletion, 4> out;
  auto r = p.drv->reap(out);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kProtocol);
  BOOST_TEST(p.drv->broken());
  auto buf = p.arena->alloc(64, 64);
  const DriverSegment seg[] = {{buf->gpa, 64, Writable::kYes}};
  BOOST_TEST(p.drv->add(seg, 1).error().code == Errc::kProtocol);
}

BOOST_AUTO_TEST_CASE(add_refuses_malformed_chains_and_a_full_ring) {
  RingPair p(4, virtio::EventIdx::kNo, Indirect::kNo, 0);
  auto buf = p.arena->alloc(4096, 64);
  BOOST_REQUIRE(buf.has_value());
  const DriverSegment bad_order[] = {{buf->gpa, 64, Writable::kYes}, {buf->gpa, 64, Writable::kNo}};
  BOOST_TEST(p.drv->add(bad_order, 1).error().code == Errc::kInvalidArgument);
  const DriverSegment empty[] = {{buf->gpa, 0, Writable::kNo}};
  BOOST_TEST(p.drv->add(empty, 1).error().code == Errc::kInvalidArgument);
  const DriverSegment three[] = {
      {buf->gpa, 16, Writable::kNo}, {buf->gpa, 64, Writable::kYes}, {buf->gpa, 1, Writable::kYes}};
  BOOST_REQUIRE(p.drv->add(three, 1).has_value());
  BOOST_TEST(p.drv->add(three, 2).error().code == Errc::kResourceExhausted);
  BOOST_TEST(p.drv->free_descriptors() == 1u);
}

BOOST_AUTO_TEST_CASE(arena_places_memory_at_its_guest_base_and_coalesces_frees) {
  ArenaOptions o;
  o.size = 1 << 20;
  o.guest_base = GuestAddr{0x1'0000'0000};
  auto a = GuestMemoryArena::create(o);
  BOOST_REQUIRE(a.has_value());
  auto& arena = **a;
  BOOST_TEST(arena.mem_table_entry().guest_phys_addr.value == 0x1'0000'0000u);
  BOOST_TEST(arena.mem_table_entry().userspace_addr ==
             reinterpret_cast<std::uint64_t>(arena.host_base()));
  std::vector<ArenaBlock> blocks;
  for (int i = 0; i < 10; ++i) {
    auto b = arena.alloc(1000 + i, 4096);
    BOOST_REQUIRE(b.has_value());
    BOOST_TEST(b->gpa.value % 4096 == 0u);
    BOOST_TEST(arena.guest_memory().translate(b->gpa, b->len)->data() == b->host);
    blocks.push_back(*b);
  }
  for (std::size_t i = 0; i < blocks.size(); i += 2) {
    arena.free(blocks[i]);
  }
  for (std::size_t i = 1; i < blocks.size(); i += 2) {
    arena.free(blocks[i]);
  }
  BOOST_TEST(arena.bytes_free() == arena.size());
  auto whole = arena.alloc(arena.size(), 4096);  // only possible if fully coalesced
  BOOST_TEST(whole.has_value());
  BOOST_TEST(arena.alloc(64).error().code == Errc::kResourceExhausted);
}

BOOST_AUTO_TEST_CASE(histogram_percentiles_are_within_two_percent) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) {
    h.record(v * 10);
  }
  BOOST_TEST(h.count() == 100000u);
  BOOST_TEST(h.min() == 10u);
  BOOST_TEST(h.max() == 1000000u);
  BOOST_TEST(h.percentile(0.5) == 500000.0, boost::test_tools::tolerance(0.02));
  BOOST_TEST(h.percentile(0.99) == 990000.0, boost::test_tools::tolerance(0.02));
  BOOST_TEST(h.percentile(0.999) == 999000.0, boost::test_tools::tolerance(0.02));
  for (std::uint64_t v : {0ull, 1ull, 127ull, 128ull, 1000ull, 123456789ull, ~0ull}) {
    const auto b = LatencyHistogram::bucket_of(v);
    BOOST_TEST(LatencyHistogram::bucket_low(b) <= v);
    BOOST_TEST(LatencyHistogram::bucket_high(b) >= v);
  }
  LatencyHistogram other;
  other.record(5);
  h.merge(other);
  BOOST_TEST(h.min() == 5u);
  BOOST_TEST(h.count() == 100001u);
}

BOOST_AUTO_TEST_CASE(patterns_depend_on_seed_and_offset) {
  std::vector<std::byte> a(4096), b(4096);
  fill_pattern(a, 8192, 1);
  BOOST_TEST(!find_pattern_mismatch(a, 8192, 1).has_value());
  BOOST_TEST(find_pattern_mismatch(a, 8192, 2).value() == 0u);  // other seed
  BOOST_TEST(find_pattern_mismatch(a, 8704, 1).value() == 0u);  // other offset
  a[1000] ^= std::byte{1};
  BOOST_TEST(find_pattern_mismatch(a, 8192, 1).value() == 1000u / 8 * 8);
  BOOST_TEST(all_zero(b));
  BOOST_TEST(!all_zero(a));
}

BOOST_AUTO_TEST_SUITE_END()
