// PackedQueue against FakePackedDriver: chain walking (direct and indirect),
// wrap-around of both wrap counters, batched used descriptors, event suppression
// with and without EVENT_IDX, vring base encoding and resume, the corrupt-ring
// vs bad-chain split, and AnyQueue forwarding to either layout.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <ostream>
#include <vector>

#include "tests/support/fake_guest_driver.h"
#include "tests/support/fake_packed_driver.h"
#include "tests/unit/virtio/printers.h"
#include "vhost-backend/virtio/any_queue.h"
#include "vhost-backend/virtio/packed_queue.h"

namespace viopool::testing {

// Defined next to the split ring tests, in the same executable.
std::ostream& operator<<(std::ostream& os, Indirect i);

namespace {

namespace bdata = boost::unit_test::data;
using virtio::AnyQueue;
using virtio::DescChain;
using virtio::EventIdx;
using virtio::Notifications;
using virtio::PackedDesc;
using virtio::PackedQueue;
using virtio::PackedUsedElem;
using virtio::UsedElem;

// Packed queue sizes need not be powers of two.
const std::vector<std::uint32_t> kAllSizes = {1, 3, 16, 100, 256, 32768};
const std::vector<std::uint32_t> kChainSizes = {8, 13, 256, 32768};
const std::vector<Indirect> kIndirect = {Indirect::kNo, Indirect::kYes};

FakePackedDriverOptions opts(std::uint32_t size, std::uint16_t start_idx = 0,
                             bool start_wrap = true) {
  FakePackedDriverOptions o;
  o.queue_size = size;
  o.start_idx = start_idx;
  o.start_wrap = start_wrap;
  o.region_bytes =
      std::max<std::uint64_t>(std::uint64_t{1} << 20, 2 * virtio::packed_desc_ring_bytes(size));
  return o;
}

PackedQueue make_queue(const FakePackedDriver& drv, EventIdx event_idx) {
  auto q = PackedQueue::create(drv.queue_config(event_idx));
  BOOST_TEST_REQUIRE(q.has_value());
  return std::move(q).value();
}

struct Ring {
  explicit Ring(const FakePackedDriverOptions& o = opts(256), EventIdx event_idx = EventIdx::kNo)
      : drv(o), q(make_queue(drv, event_idx)) {}

  FakeBuf buf(std::uint32_t len) { return {drv.alloc(len), len}; }

  FakePackedDriver drv;
  PackedQueue q;
};

DescChain pop_one(PackedQueue& q) {
  auto r = q.pop();
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST_REQUIRE(r->has_value());
  return **r;
}

void require_broken(PackedQueue& q) {
  const std::uint16_t avail = q.last_avail_idx_encoded();
  auto r = q.pop();
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kProtocol);
  BOOST_TEST(q.broken());
  BOOST_TEST(!q.has_pending());
  BOOST_TEST(q.last_avail_idx_encoded() == avail);
  BOOST_TEST(!q.pop().has_value());  // stays broken
}

// Pops a chain that must be bad with `code` and span `slots` ring slots,
// completes it, then checks that the queue goes on.
void require_bad_chain_then_recovery(Ring& r, Errc code, std::uint16_t id, std::uint16_t slots) {
  const DescChain bad = pop_one(r.q);
  BOOST_TEST(!bad.ok());
  BOOST_TEST(bad.error().code == code);
  BOOST_TEST(bad.id() == id);
  BOOST_TEST(bad.desc_count() == slots);
  BOOST_TEST(!r.q.broken());
  BOOST_TEST(r.q.last_avail_idx() == slots);
  r.q.push_used(bad.id(), 0, bad.desc_count());
  auto used = r.drv.pop_used();
  BOOST_TEST_REQUIRE(used.has_value());
  BOOST_TEST(used->id == id);

  const FakeBuf good = r.buf(32);
  const std::uint16_t next_id = r.drv.add_chain({{good}}, {});
  const DescChain next = pop_one(r.q);
  BOOST_TEST(next.ok());
  BOOST_TEST(next.id() == next_id);
  BOOST_TEST(r.q.stats().bad_chains == 1u);
}

BOOST_AUTO_TEST_SUITE(packed_queue)

// ---- create ----

BOOST_DATA_TEST_CASE(create_rejects_size_outside_1_to_32768, bdata::make({0u, 32769u, 65536u}),
                     size) {
  FakePackedDriver drv(opts(4));
  auto config = drv.queue_config();
  config.size = size;
  auto q = PackedQueue::create(config);
  BOOST_TEST_REQUIRE(!q.has_value());
  BOOST_TEST(q.error().code == Errc::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(create_rejects_misaligned_areas_and_null_memory) {
  FakePackedDriver drv(opts(4));
  auto desc = drv.queue_config();
  desc.desc += 8;
  auto driver = drv.queue_config();
  driver.driver_event += 2;
  auto device = drv.queue_config();
  device.device_event += 2;
  auto memory = drv.queue_config();
  memory.memory = nullptr;
  for (const auto& config : {desc, driver, device, memory}) {
    auto q = PackedQueue::create(config);
    BOOST_TEST_REQUIRE(!q.has_value());
    BOOST_TEST(q.error().code == Errc::kInvalidArgument);
  }
}

BOOST_AUTO_TEST_CASE(create_rejects_positions_beyond_size_or_inconsistent) {
  FakePackedDriver drv(opts(8));
  auto avail = drv.queue_config();
  avail.last_avail_idx = 8;
  auto used = drv.queue_config();
  used.last_used_idx = 9;
  // Used ahead of avail: avail (2, wrap 1), used (3, wrap 1).
  auto ahead = drv.queue_config();
  ahead.last_avail_idx = 2;
  ahead.last_used_idx = 3;
  for (const auto& config : {avail, used, ahead}) {
    auto q = PackedQueue::create(config);
    BOOST_TEST_REQUIRE(!q.has_value());
    BOOST_TEST(q.error().code == Errc::kInvalidArgument);
  }
  // A whole ring outstanding is fine: avail (2, wrap 0) is size slots past used (2, wrap 1).
  auto full = drv.queue_config();
  full.last_avail_idx = 2;
  full.avail_wrap_counter = false;
  full.last_used_idx = 2;
  BOOST_TEST(PackedQueue::create(full).has_value());
}

// ---- pop: well-formed chains ----

BOOST_DATA_TEST_CASE(pop_returns_nothing_on_empty_ring, bdata::make(kAllSizes), size) {
  Ring r(opts(size));
  auto popped = r.q.pop();
  BOOST_TEST_REQUIRE(popped.has_value());
  BOOST_TEST(!popped->has_value());
  BOOST_TEST(!r.q.has_pending());
  BOOST_TEST(r.q.last_avail_idx() == 0u);
  BOOST_TEST(r.q.avail_wrap_counter());
}

BOOST_DATA_TEST_CASE(pop_returns_single_buffer_chain,
                     bdata::make(kAllSizes) * bdata::make(kIndirect), size, indirect) {
  Ring r(opts(size));
  const FakeBuf b = r.buf(64);
  const std::uint16_t id = r.drv.add_chain({{b}}, {}, indirect);
  BOOST_TEST(r.q.has_pending());

  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.id() == id);
  BOOST_TEST(c.head() == id);
  BOOST_TEST(c.desc_count() == 1u);
  BOOST_TEST(c.indirect() == (indirect == Indirect::kYes));
  BOOST_TEST_REQUIRE(c.buffers().size() == 1u);
  BOOST_TEST(c.buffers()[0].addr == b.addr);
  BOOST_TEST(c.buffers()[0].len == 64u);
  BOOST_TEST(!c.buffers()[0].device_writable);
  BOOST_TEST(!r.q.has_pending());
  // A one-slot ring wraps at once.
  BOOST_TEST(r.q.last_avail_idx() == (size == 1 ? 0u : 1u));
  BOOST_TEST(r.q.avail_wrap_counter() == (size != 1));
}

BOOST_DATA_TEST_CASE(pop_splits_readable_and_writable_buffers,
                     bdata::make(kChainSizes) * bdata::make(kIndirect), size, indirect) {
  Ring r(opts(size));
  const FakeBuf r0 = r.buf(16), r1 = r.buf(100), w0 = r.buf(512), w1 = r.buf(7), w2 = r.buf(1);
  const std::uint16_t id = r.drv.add_chain({{r0, r1}}, {{w0, w1, w2}}, indirect);

  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.id() == id);
  BOOST_TEST(c.desc_count() == (indirect == Indirect::kYes ? 1u : 5u));
  BOOST_TEST_REQUIRE(c.readable().size() == 2u);
  BOOST_TEST_REQUIRE(c.writable().size() == 3u);
  BOOST_TEST(c.readable()[0].addr == r0.addr);
  BOOST_TEST(c.readable()[1].addr == r1.addr);
  BOOST_TEST(c.writable()[0].addr == w0.addr);
  BOOST_TEST(c.writable()[2].addr == w2.addr);
  BOOST_TEST(c.readable_bytes() == 116u);
  BOOST_TEST(c.writable_bytes() == 520u);
  BOOST_TEST(r.q.last_avail_idx() == c.desc_count());
}

BOOST_AUTO_TEST_CASE(pop_takes_id_from_last_descriptor_and_chains_in_ring_order) {
  Ring r;
  std::vector<std::uint16_t> ids;
  for (std::uint32_t i = 0; i < 5; ++i) {
    ids.push_back(r.drv.add_chain({{r.buf(8)}}, {{r.buf(8), r.buf(8)}}));
  }
  // The fake puts kUnusedId in every descriptor but the last.
  BOOST_TEST(r.drv.read_desc(0).id == FakePackedDriver::kUnusedId);
  for (std::uint16_t id : ids) {
    const DescChain c = pop_one(r.q);
    BOOST_TEST(c.id() == id);
    BOOST_TEST(c.desc_count() == 3u);
  }
  BOOST_TEST(r.q.last_avail_idx() == 15u);
  BOOST_TEST(!r.q.has_pending());
}

BOOST_AUTO_TEST_CASE(pop_accepts_chain_as_long_as_the_ring) {
  Ring r(opts(8));
  std::vector<FakeBuf> bufs;
  for (int i = 0; i < 8; ++i) {
    bufs.push_back(r.buf(4));
  }
  const std::uint16_t id = r.drv.add_chain(bufs, {});
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.id() == id);
  BOOST_TEST(c.desc_count() == 8u);
  BOOST_TEST(c.buffers().size() == 8u);
  BOOST_TEST(r.q.last_avail_idx() == 0u);
  BOOST_TEST(!r.q.avail_wrap_counter());
}

BOOST_AUTO_TEST_CASE(pop_into_reuses_caller_chain) {
  Ring r;
  r.drv.add_chain({{r.buf(8), r.buf(8)}}, {{r.buf(8)}});
  const std::uint16_t second = r.drv.add_chain({{r.buf(4)}}, {}, Indirect::kYes);
  DescChain chain;
  BOOST_TEST_REQUIRE(r.q.pop_into(chain).value());
  BOOST_TEST(chain.buffers().size() == 3u);
  BOOST_TEST_REQUIRE(r.q.pop_into(chain).value());
  BOOST_TEST(chain.id() == second);
  BOOST_TEST(chain.buffers().size() == 1u);
  BOOST_TEST(chain.desc_count() == 1u);
  BOOST_TEST(chain.indirect());
  BOOST_TEST(!r.q.pop_into(chain).value());
}

// ---- wrap-around ----

// Chains of 1..3 descriptors (or one indirect slot) go round a ring whose size
// is not a multiple of the chain lengths, so chains straddle the ring end; both
// wrap counters flip many times and the driver sees every completion.
BOOST_DATA_TEST_CASE(pop_and_push_used_wrap_the_ring_many_times,
                     bdata::make({1u, 3u, 7u, 64u}) * bdata::make(kIndirect), size, indirect) {
  Ring r(opts(size));
  int avail_flips = 0;
  int used_flips = 0;
  bool avail_wrap = r.q.avail_wrap_counter();
  bool used_wrap = r.q.used_wrap_counter();
  const std::uint32_t rounds = 10 * size + 20;
  for (std::uint32_t i = 0; i < rounds; ++i) {
    const std::uint32_t n = std::min<std::uint32_t>(1 + i % 3, size);
    std::vector<FakeBuf> readable;
    for (std::uint32_t k = 0; k + 1 < n; ++k) {
      readable.push_back(r.buf(8));
    }
    const FakeBuf w = r.buf(16);
    const std::uint16_t id = r.drv.add_chain(readable, {{w}}, indirect);
    const DescChain c = pop_one(r.q);
    BOOST_TEST_REQUIRE(c.ok());
    BOOST_TEST_REQUIRE(c.id() == id);
    BOOST_TEST_REQUIRE(c.buffers().size() == n);
    BOOST_TEST_REQUIRE(c.desc_count() == (indirect == Indirect::kYes ? 1u : n));
    avail_flips += r.q.avail_wrap_counter() != avail_wrap ? 1 : 0;
    avail_wrap = r.q.avail_wrap_counter();

    r.q.push_used(c.id(), i, c.desc_count());
    used_flips += r.q.used_wrap_counter() != used_wrap ? 1 : 0;
    used_wrap = r.q.used_wrap_counter();
    auto used = r.drv.pop_used();
    BOOST_TEST_REQUIRE(used.has_value());
    BOOST_TEST_REQUIRE(used->id == id);
    BOOST_TEST_REQUIRE(used->len == i);
    BOOST_TEST_REQUIRE(!r.drv.pop_used().has_value());
    BOOST_TEST_REQUIRE(r.q.last_avail_idx() == r.drv.next_avail_idx());
    BOOST_TEST_REQUIRE(r.q.avail_wrap_counter() == r.drv.avail_wrap());
    BOOST_TEST_REQUIRE(r.q.last_used_idx() == r.drv.next_used_idx());
    BOOST_TEST_REQUIRE(r.q.used_wrap_counter() == r.drv.used_wrap());
  }
  BOOST_TEST(avail_flips >= 4);
  BOOST_TEST(used_flips == avail_flips);
  BOOST_TEST(r.q.stats().chains == rounds);
  BOOST_TEST(r.q.stats().used == rounds);
}

BOOST_DATA_TEST_CASE(pop_and_complete_a_full_ring_repeatedly, bdata::make({1u, 5u, 256u}), size) {
  Ring r(opts(size, static_cast<std::uint16_t>(size / 2)));
  for (int lap = 0; lap < 3; ++lap) {
    std::vector<UsedElem> done;
    for (std::uint32_t i = 0; i < size; ++i) {
      r.drv.add_chain({{r.buf(8)}}, {});
    }
    BOOST_TEST(r.drv.free_slots() == 0u);
    for (std::uint32_t i = 0; i < size; ++i) {
      const DescChain c = pop_one(r.q);
      done.push_back({c.id(), 0, c.desc_count()});
    }
    BOOST_TEST(!r.q.has_pending());
    r.q.push_used(done);
    for (std::uint32_t i = 0; i < size; ++i) {
      auto used = r.drv.pop_used();
      BOOST_TEST_REQUIRE(used.has_value());
      BOOST_TEST(used->id == done[i].id);
    }
    BOOST_TEST(!r.drv.pop_used().has_value());
    BOOST_TEST(r.drv.free_slots() == size);
  }
}

// ---- push_used ----

BOOST_AUTO_TEST_CASE(push_used_batch_writes_in_given_order_skipping_desc_count) {
  Ring r(opts(16));
  const std::uint16_t a = r.drv.add_chain({{r.buf(8)}}, {{r.buf(8)}});            // 2 slots
  const std::uint16_t b = r.drv.add_chain({{r.buf(8)}}, {});                      // 1 slot
  const std::uint16_t c = r.drv.add_chain({{r.buf(8), r.buf(8)}}, {{r.buf(8)}});  // 3 slots
  const DescChain ca = pop_one(r.q), cb = pop_one(r.q), cc = pop_one(r.q);
  BOOST_TEST(r.q.last_avail_idx() == 6u);

  // Completed out of order: c first, then a, then b.
  const std::vector<PackedUsedElem> elems = {{cc.id(), 30, cc.desc_count()},
                                             {ca.id(), 10, ca.desc_count()},
                                             {cb.id(), 20, cb.desc_count()}};
  r.q.push_used(elems);
  BOOST_TEST(r.q.last_used_idx() == 6u);
  BOOST_TEST(r.q.stats().used == 3u);
  // Used descriptors sit at the used positions: 0, 0 + 3, 3 + 2.
  const std::uint16_t used_flags = virtio::kPackedDescAvail | virtio::kPackedDescUsed;
  BOOST_TEST(r.drv.read_desc(0).id == c);
  BOOST_TEST(r.drv.read_desc(0).len == 30u);
  BOOST_TEST(r.drv.read_desc(0).flags == used_flags);
  BOOST_TEST(r.drv.read_desc(3).id == a);
  BOOST_TEST(r.drv.read_desc(3).flags == used_flags);
  BOOST_TEST(r.drv.read_desc(5).id == b);
  BOOST_TEST(r.drv.read_desc(5).flags == used_flags);
  for (auto [id, len] : {std::pair<std::uint16_t, std::uint32_t>{c, 30}, {a, 10}, {b, 20}}) {
    auto used = r.drv.pop_used();
    BOOST_TEST_REQUIRE(used.has_value());
    BOOST_TEST(used->id == id);
    BOOST_TEST(used->len == len);
  }
  BOOST_TEST(!r.drv.pop_used().has_value());
}

BOOST_AUTO_TEST_CASE(push_used_batch_across_ring_end_uses_each_slots_wrap_counter) {
  Ring r(opts(4, 3));                 // starts at slot 3 with both wrap counters set
  r.drv.add_chain({{r.buf(8)}}, {});  // slot 3
  r.drv.add_chain({{r.buf(8)}}, {});  // slot 0, next lap
  const DescChain c0 = pop_one(r.q), c1 = pop_one(r.q);
  const std::vector<PackedUsedElem> elems = {{c0.id(), 1, 1}, {c1.id(), 2, 1}};
  r.q.push_used(elems);
  BOOST_TEST(r.drv.read_desc(3).flags == (virtio::kPackedDescAvail | virtio::kPackedDescUsed));
  BOOST_TEST(r.drv.read_desc(0).flags == 0u);  // used under wrap counter 0
  BOOST_TEST(!r.q.used_wrap_counter());
  BOOST_TEST(r.drv.pop_used().has_value());
  BOOST_TEST(r.drv.pop_used().has_value());
}

// ---- event suppression ----

BOOST_AUTO_TEST_CASE(need_notify_without_event_idx_follows_driver_flags) {
  Ring r;
  BOOST_TEST(r.q.need_notify());   // first call
  BOOST_TEST(!r.q.need_notify());  // nothing new
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.push_used(pop_one(r.q).id(), 0, 1);
  BOOST_TEST(r.q.need_notify());
  BOOST_TEST(!r.q.need_notify());

  r.drv.set_driver_event(virtio::kPackedEventDisable, 0);
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.push_used(pop_one(r.q).id(), 0, 1);
  BOOST_TEST(!r.q.need_notify());

  // DESC without EVENT_IDX is not allowed to the driver; treated as ENABLE.
  r.drv.set_driver_event(virtio::kPackedEventDesc, 0x7fff);
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.push_used(pop_one(r.q).id(), 0, 1);
  BOOST_TEST(r.q.need_notify());
  BOOST_TEST(r.q.stats().notifies == 3u);
}

BOOST_AUTO_TEST_CASE(need_notify_first_call_honours_disable) {
  Ring r;
  r.drv.set_driver_event(virtio::kPackedEventDisable, 0);
  BOOST_TEST(!r.q.need_notify());
}

// With EVENT_IDX the driver asks for an interrupt once the used descriptor at
// off_wrap is written. Four one-slot completions from slot 6 of an 8-slot ring
// cover positions (6,1) (7,1) (0,0) (1,0).
BOOST_DATA_TEST_CASE(need_notify_with_event_idx_fires_when_off_wrap_is_written,
                     bdata::make({0, 1, 2, 3, 4, 5}), event_step) {
  Ring r(opts(8, 6), EventIdx::kYes);
  BOOST_TEST(r.q.need_notify());  // first call; records the used position
  const std::uint16_t positions[] = {
      virtio::encode_packed_position(5, true),  virtio::encode_packed_position(6, true),
      virtio::encode_packed_position(7, true),  virtio::encode_packed_position(0, false),
      virtio::encode_packed_position(1, false), virtio::encode_packed_position(2, false)};
  const bool expected[] = {false, true, true, true, true, false};
  r.drv.set_driver_event(virtio::kPackedEventDesc, positions[event_step]);
  std::vector<PackedUsedElem> done;
  for (int i = 0; i < 4; ++i) {
    r.drv.add_chain({{r.buf(8)}}, {});
    const DescChain c = pop_one(r.q);
    done.push_back({c.id(), 0, 1});
  }
  r.q.push_used(done);
  BOOST_TEST(r.q.need_notify() == expected[event_step]);
  BOOST_TEST(!r.q.need_notify());  // nothing new since
}

BOOST_AUTO_TEST_CASE(need_notify_with_event_idx_ignores_same_slot_of_other_lap) {
  Ring r(opts(8), EventIdx::kYes);
  BOOST_TEST(r.q.need_notify());
  // Slot 1 with the wrong wrap counter: half a position space away.
  r.drv.set_driver_event(virtio::kPackedEventDesc, virtio::encode_packed_position(1, false));
  for (int i = 0; i < 3; ++i) {
    r.drv.add_chain({{r.buf(8)}}, {});
    r.q.push_used(pop_one(r.q).id(), 0, 1);
  }
  BOOST_TEST(!r.q.need_notify());
}

BOOST_AUTO_TEST_CASE(set_notifications_without_event_idx_writes_enable_and_disable) {
  Ring r;
  r.q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(r.drv.device_event_flags() == virtio::kPackedEventDisable);
  r.drv.add_chain({{r.buf(8)}}, {});
  BOOST_TEST(!r.drv.last_add_needs_kick());
  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.drv.device_event_flags() == virtio::kPackedEventEnable);
  r.drv.add_chain({{r.buf(8)}}, {});
  BOOST_TEST(r.drv.last_add_needs_kick());
}

BOOST_AUTO_TEST_CASE(set_notifications_with_event_idx_points_at_next_avail_slot) {
  Ring r(opts(4), EventIdx::kYes);
  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.drv.device_event_flags() == virtio::kPackedEventDesc);
  BOOST_TEST(r.drv.device_event_off_wrap() == virtio::encode_packed_position(0, true));
  // Pops keep off_wrap at the next slot, across the ring end.
  for (int i = 0; i < 5; ++i) {
    r.drv.add_chain({{r.buf(8)}}, {});
    BOOST_TEST(r.drv.last_add_needs_kick());
    const DescChain c = pop_one(r.q);
    r.q.push_used(c.id(), 0, 1);
    BOOST_TEST_REQUIRE(r.drv.pop_used().has_value());
    BOOST_TEST(r.drv.device_event_off_wrap() == r.q.last_avail_idx_encoded());
  }
  BOOST_TEST(r.drv.device_event_off_wrap() == virtio::encode_packed_position(1, false));

  r.q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(r.drv.device_event_flags() == virtio::kPackedEventDisable);
  r.drv.add_chain({{r.buf(8)}}, {});
  BOOST_TEST(!r.drv.last_add_needs_kick());
  pop_one(r.q);
  // While disabled, pops do not re-enable kicks.
  BOOST_TEST(r.drv.device_event_flags() == virtio::kPackedEventDisable);
}

BOOST_AUTO_TEST_CASE(has_pending_sees_chains_added_after_reenabling) {
  Ring r(opts(256), EventIdx::kYes);
  r.q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(!r.q.has_pending());
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.q.has_pending());
  pop_one(r.q);
  BOOST_TEST(!r.q.has_pending());
}

// ---- vring base encoding and resume ----

BOOST_AUTO_TEST_CASE(vring_base_encoding_puts_wrap_counter_in_bit_15) {
  BOOST_TEST(virtio::encode_packed_position(5, true) == 0x8005u);
  BOOST_TEST(virtio::encode_packed_position(5, false) == 0x0005u);
  BOOST_TEST(virtio::packed_position_index(0x8005) == 5u);
  BOOST_TEST(virtio::packed_position_wrap(0x8005));
  BOOST_TEST(!virtio::packed_position_wrap(0x7fff));
  virtio::PackedQueueConfig c;
  c.set_vring_base(0x0003, 0x8006);
  BOOST_TEST(c.last_avail_idx == 3u);
  BOOST_TEST(!c.avail_wrap_counter);
  BOOST_TEST(c.last_used_idx == 6u);
  BOOST_TEST(c.used_wrap_counter);
}

BOOST_AUTO_TEST_CASE(queue_resumes_from_encoded_vring_base) {
  FakePackedDriver drv(opts(8));
  std::uint16_t avail_base = 0;
  std::uint16_t used_base = 0;
  std::uint16_t in_flight = 0;
  {
    PackedQueue q = make_queue(drv, EventIdx::kNo);
    // Go past the ring end, leaving one two-slot chain popped but not completed.
    for (int i = 0; i < 5; ++i) {
      drv.add_chain({{FakeBuf{drv.alloc(8), 8}}}, {});
      const DescChain c = pop_one(q);
      q.push_used(c.id(), 0, 1);
      BOOST_TEST_REQUIRE(drv.pop_used().has_value());
    }
    drv.add_chain({{FakeBuf{drv.alloc(8), 8}, FakeBuf{drv.alloc(8), 8}}}, {});
    const DescChain pending = pop_one(q);
    in_flight = pending.id();
    avail_base = q.last_avail_idx_encoded();
    used_base = q.last_used_idx_encoded();
    BOOST_TEST(avail_base == virtio::encode_packed_position(7, true));
    BOOST_TEST(used_base == virtio::encode_packed_position(5, true));
  }
  auto config = drv.queue_config();
  config.set_vring_base(avail_base, used_base);
  auto resumed = PackedQueue::create(config);
  BOOST_TEST_REQUIRE(resumed.has_value());
  PackedQueue& q = *resumed;
  BOOST_TEST(q.last_avail_idx_encoded() == avail_base);
  BOOST_TEST(q.last_used_idx_encoded() == used_base);

  // The new queue completes the in-flight chain and pops across the ring end.
  q.push_used(in_flight, 7, 2);
  auto used = drv.pop_used();
  BOOST_TEST_REQUIRE(used.has_value());
  BOOST_TEST(used->id == in_flight);
  BOOST_TEST(used->len == 7u);
  const std::uint16_t id =
      drv.add_chain({{FakeBuf{drv.alloc(8), 8}, FakeBuf{drv.alloc(8), 8}}}, {});
  const DescChain c = pop_one(q);
  BOOST_TEST(c.id() == id);
  BOOST_TEST(c.desc_count() == 2u);
  BOOST_TEST(q.last_avail_idx_encoded() == virtio::encode_packed_position(1, false));
  q.push_used(c.id(), 0, c.desc_count());
  BOOST_TEST(drv.pop_used().has_value());
  BOOST_TEST(q.last_used_idx_encoded() == virtio::encode_packed_position(1, false));
}

BOOST_AUTO_TEST_CASE(queue_starts_at_resumed_position_with_wrap_counter_clear) {
  Ring r(opts(8, 6, false));
  BOOST_TEST(!r.q.has_pending());  // ring content from the previous lap
  const std::uint16_t id = r.drv.add_chain({{r.buf(8)}}, {{r.buf(8)}});  // slots 6, 7
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.id() == id);
  BOOST_TEST(r.q.last_avail_idx() == 0u);
  BOOST_TEST(r.q.avail_wrap_counter());
}

// ---- corrupt ring: the queue breaks ----

BOOST_DATA_TEST_CASE(pop_breaks_queue_on_chain_longer_than_ring, bdata::make({1u, 3u, 8u}), size) {
  Ring r(opts(size));
  std::vector<PackedDesc> descs(size, PackedDesc{r.drv.alloc(8).value, 8, 0, virtio::kDescNext});
  r.drv.add_raw(descs);
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(pop_breaks_queue_on_unavailable_slot_mid_chain) {
  Ring r(opts(8));
  const std::uint64_t a = r.drv.alloc(8).value;
  const PackedDesc descs[] = {{a, 8, FakePackedDriver::kUnusedId, virtio::kDescNext}, {a, 8, 0, 0}};
  r.drv.add_raw(descs);
  // Slot 1 made to look like the previous lap's used descriptor.
  r.drv.set_desc_flags(1, 0);
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(pop_breaks_queue_on_mid_chain_slot_of_the_wrong_lap) {
  Ring r(opts(2, 1));  // the chain starts at slot 1 and continues at slot 0 next lap
  const std::uint64_t a = r.drv.alloc(8).value;
  const PackedDesc descs[] = {{a, 8, FakePackedDriver::kUnusedId, virtio::kDescNext}, {a, 8, 0, 0}};
  r.drv.add_raw(descs);
  // Slot 0 marked available for the current lap rather than the next one.
  r.drv.set_desc_flags(0, FakePackedDriver::avail_bits(true));
  require_broken(r.q);
}

BOOST_DATA_TEST_CASE(pop_breaks_queue_on_buffer_id_beyond_size, bdata::make(kIndirect), indirect) {
  Ring r(opts(16));
  const std::uint64_t a = r.drv.alloc(8).value;
  if (indirect == Indirect::kYes) {
    const PackedDesc table[] = {{a, 8, 0, 0}};
    const GuestAddr t = r.drv.make_indirect_table(table);
    const PackedDesc ring[] = {{t.value, sizeof(PackedDesc), 16, virtio::kDescIndirect}};
    r.drv.add_raw(ring);
  } else {
    const PackedDesc ring[] = {{a, 8, 0, virtio::kDescNext}, {a, 8, 0xffff, 0}};
    r.drv.add_raw(ring);
  }
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(broken_queue_still_completes_popped_chains) {
  Ring r(opts(8));
  const std::uint16_t id = r.drv.add_chain({{r.buf(8)}}, {});
  const DescChain c = pop_one(r.q);
  const PackedDesc bad[] = {{r.drv.alloc(8).value, 8, 8, 0}};
  r.drv.add_raw(bad);
  require_broken(r.q);
  r.q.push_used(c.id(), 3, c.desc_count());
  auto used = r.drv.pop_used();
  BOOST_TEST_REQUIRE(used.has_value());
  BOOST_TEST(used->id == id);
  BOOST_TEST(used->len == 3u);
}

// ---- bad chains: popped with an error, the queue goes on ----

BOOST_DATA_TEST_CASE(pop_flags_buffer_outside_guest_memory, bdata::make(kIndirect), indirect) {
  Ring r;
  const std::uint16_t id = r.drv.add_segments({{{GuestAddr{0x10}, 8, Writable::kNo}}}, indirect);
  require_bad_chain_then_recovery(r, Errc::kOutOfRange, id, 1);
}

BOOST_DATA_TEST_CASE(pop_flags_readable_after_writable, bdata::make(kIndirect), indirect) {
  Ring r;
  const FakeBuf w = r.buf(8), rd = r.buf(8);
  const std::uint16_t id = r.drv.add_segments(
      {{{w.addr, w.len, Writable::kYes}, {rd.addr, rd.len, Writable::kNo}}}, indirect);
  require_bad_chain_then_recovery(r, Errc::kProtocol, id, indirect == Indirect::kYes ? 1 : 2);
}

BOOST_DATA_TEST_CASE(pop_flags_chain_longer_than_max_buffers, bdata::make(kIndirect), indirect) {
  Ring r(opts(512));
  std::vector<FakeBuf> bufs(DescChain::kMaxBuffers + 1, r.buf(4));
  const std::uint16_t id = r.drv.add_chain(bufs, {}, indirect);
  require_bad_chain_then_recovery(
      r, Errc::kUnsupported, id,
      indirect == Indirect::kYes ? 1 : static_cast<std::uint16_t>(DescChain::kMaxBuffers + 1));
}

BOOST_AUTO_TEST_CASE(pop_flags_nested_indirect) {
  Ring r;
  const PackedDesc inner[] = {{r.drv.alloc(8).value, 8, 0, 0}};
  const GuestAddr inner_table = r.drv.make_indirect_table(inner);
  const PackedDesc outer[] = {{r.drv.alloc(8).value, 8, 0, 0},
                              {inner_table.value, sizeof(PackedDesc), 0, virtio::kDescIndirect}};
  const GuestAddr outer_table = r.drv.make_indirect_table(outer);
  const PackedDesc ring[] = {{outer_table.value, sizeof(outer), 7, virtio::kDescIndirect}};
  r.drv.add_raw(ring);
  require_bad_chain_then_recovery(r, Errc::kProtocol, 7, 1);
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_with_next_and_skips_its_slots) {
  Ring r;
  const PackedDesc table[] = {{r.drv.alloc(8).value, 8, 0, 0}};
  const GuestAddr t = r.drv.make_indirect_table(table);
  const PackedDesc ring[] = {
      {t.value, sizeof(PackedDesc), 0,
       static_cast<std::uint16_t>(virtio::kDescIndirect | virtio::kDescNext)},
      {r.drv.alloc(8).value, 8, 9, 0}};
  r.drv.add_raw(ring);
  require_bad_chain_then_recovery(r, Errc::kProtocol, 9, 2);
}

BOOST_DATA_TEST_CASE(pop_flags_indirect_table_of_bad_length, bdata::make({0u, 8u, 17u, 40u}), len) {
  Ring r;
  const PackedDesc table[] = {{r.drv.alloc(8).value, 8, 0, 0},
                              {r.drv.alloc(8).value, 8, 0, 0},
                              {r.drv.alloc(8).value, 8, 0, 0}};
  const GuestAddr t = r.drv.make_indirect_table(table);
  const PackedDesc ring[] = {{t.value, len, 3, virtio::kDescIndirect}};
  r.drv.add_raw(ring);
  require_bad_chain_then_recovery(r, Errc::kProtocol, 3, 1);
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_table_over_1024_entries) {
  Ring r(opts(4));
  const std::size_t n = virtio::kMaxIndirectEntries + 1;
  std::vector<PackedDesc> table(n, PackedDesc{r.drv.alloc(8).value, 8, 0, 0});
  const GuestAddr t = r.drv.make_indirect_table(table);
  const PackedDesc ring[] = {
      {t.value, static_cast<std::uint32_t>(n * sizeof(PackedDesc)), 2, virtio::kDescIndirect}};
  r.drv.add_raw(ring);
  require_bad_chain_then_recovery(r, Errc::kProtocol, 2, 1);
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_table_outside_guest_memory) {
  Ring r;
  const PackedDesc ring[] = {{0x10, sizeof(PackedDesc), 1, virtio::kDescIndirect}};
  r.drv.add_raw(ring);
  require_bad_chain_then_recovery(r, Errc::kOutOfRange, 1, 1);
}

BOOST_AUTO_TEST_CASE(stats_count_chains_bad_chains_used_and_notifies) {
  Ring r;
  r.drv.add_chain({{r.buf(8)}}, {});
  r.drv.add_segments({{{GuestAddr{0x10}, 8, Writable::kNo}}});
  const DescChain a = pop_one(r.q), b = pop_one(r.q);
  const std::vector<PackedUsedElem> done = {{a.id(), 0, a.desc_count()},
                                            {b.id(), 0, b.desc_count()}};
  r.q.push_used(done);
  BOOST_TEST(r.q.need_notify());
  BOOST_TEST(r.q.stats().chains == 2u);
  BOOST_TEST(r.q.stats().bad_chains == 1u);
  BOOST_TEST(r.q.stats().used == 2u);
  BOOST_TEST(r.q.stats().notifies == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- AnyQueue ----

BOOST_AUTO_TEST_SUITE(any_queue)

BOOST_AUTO_TEST_CASE(any_queue_forwards_to_packed_queue) {
  FakePackedDriver drv(opts(4));
  auto created = AnyQueue::create(drv.queue_config());
  BOOST_TEST_REQUIRE(created.has_value());
  AnyQueue& q = *created;
  BOOST_TEST(q.packed());
  BOOST_TEST(q.packed_queue() != nullptr);
  BOOST_TEST(q.split_queue() == nullptr);
  BOOST_TEST(q.size() == 4u);
  BOOST_TEST(!q.has_pending());

  // Two two-slot chains fill the 4-slot ring.
  std::vector<std::uint16_t> ids;
  for (int i = 0; i < 2; ++i) {
    ids.push_back(drv.add_chain({{FakeBuf{drv.alloc(8), 8}, FakeBuf{drv.alloc(8), 8}}}, {}));
  }
  BOOST_TEST(q.has_pending());
  std::vector<UsedElem> done;
  DescChain c;
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST_REQUIRE(q.pop_into(c).value());
    BOOST_TEST(c.id() == ids[static_cast<std::size_t>(i)]);
    BOOST_TEST(c.desc_count() == 2u);
    done.push_back({c.id(), 5, c.desc_count()});
  }
  q.push_used(done);
  BOOST_TEST(q.need_notify());
  BOOST_TEST(drv.pop_used()->id == ids[0]);
  BOOST_TEST(drv.pop_used()->id == ids[1]);

  // An indirect chain in the next lap, completed through the DescChain overload.
  const std::uint16_t id = drv.add_chain({{FakeBuf{drv.alloc(8), 8}}}, {}, Indirect::kYes);
  BOOST_TEST_REQUIRE(q.pop_into(c).value());
  BOOST_TEST(c.id() == id);
  q.push_used(c, 9);
  auto last = drv.pop_used();
  BOOST_TEST_REQUIRE(last.has_value());
  BOOST_TEST(last->id == id);
  BOOST_TEST(last->len == 9u);

  std::uint16_t avail = 0;
  std::uint16_t used = 0;
  q.vring_base(avail, used);
  BOOST_TEST(avail == virtio::encode_packed_position(1, false));
  BOOST_TEST(used == virtio::encode_packed_position(1, false));

  q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(drv.device_event_flags() == virtio::kPackedEventDisable);
  BOOST_TEST(!q.broken());
  BOOST_TEST(q.stats().chains == 3u);
}

BOOST_AUTO_TEST_CASE(any_queue_forwards_to_split_queue_in_batches) {
  FakeGuestDriverOptions o;
  o.queue_size = 256;
  o.start_idx = 65530;  // the free-running indices wrap during the test
  FakeGuestDriver drv(o);
  auto created = AnyQueue::create(drv.queue_config());
  BOOST_TEST_REQUIRE(created.has_value());
  AnyQueue& q = *created;
  BOOST_TEST(!q.packed());
  BOOST_TEST(q.split_queue() != nullptr);
  BOOST_TEST(q.size() == 256u);

  // More completions than one stack batch of the split forwarding.
  std::vector<UsedElem> done;
  for (int i = 0; i < 100; ++i) {
    drv.add_chain({{FakeBuf{drv.alloc(8), 8}}}, {});
  }
  BOOST_TEST(q.has_pending());
  DescChain c;
  for (int i = 0; i < 100; ++i) {
    BOOST_TEST_REQUIRE(q.pop_into(c).value());
    BOOST_TEST(c.id() == c.head());
    BOOST_TEST(c.desc_count() == 1u);
    done.push_back({c.id(), static_cast<std::uint32_t>(i), 0});
  }
  q.push_used(done);
  for (int i = 0; i < 100; ++i) {
    auto used = drv.pop_used();
    BOOST_TEST_REQUIRE(used.has_value());
    BOOST_TEST(used->id == done[static_cast<std::size_t>(i)].id);
    BOOST_TEST(used->len == static_cast<std::uint32_t>(i));
  }
  std::uint16_t avail = 0;
  std::uint16_t used = 0;
  q.vring_base(avail, used);
  BOOST_TEST(avail == static_cast<std::uint16_t>(65530 + 100));
  BOOST_TEST(used == static_cast<std::uint16_t>(65530 + 100));
  BOOST_TEST(q.need_notify());
  q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(drv.used_flags() == virtio::kUsedFlagNoNotify);
  BOOST_TEST(q.stats().used == 100u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace viopool::testing
