// SplitQueue against FakeGuestDriver: chain walking (direct and indirect), the
// corrupt-ring vs bad-chain split, index wrap-around, the used ring, and the
// notification protocol with and without EVENT_IDX.
#include <algorithm>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <ostream>
#include <vector>

#include "tests/support/fake_guest_driver.h"
#include "tests/unit/virtio/printers.h"
#include "vhost-backend/virtio/split_queue.h"

namespace viopool::testing {

std::ostream& operator<<(std::ostream& os, Indirect i) {
  return os << (i == Indirect::kYes ? "indirect" : "direct");
}

namespace {

namespace bdata = boost::unit_test::data;
using virtio::DescChain;
using virtio::EventIdx;
using virtio::Notifications;
using virtio::SplitQueue;
using virtio::VringDesc;
using virtio::VringUsedElem;

const std::vector<std::uint32_t> kAllSizes = {1, 2, 16, 256, 1024, 32768};
// Sizes that hold a chain of a few direct descriptors.
const std::vector<std::uint32_t> kChainSizes = {8, 256, 1024, 32768};
const std::vector<Indirect> kIndirect = {Indirect::kNo, Indirect::kYes};

FakeGuestDriverOptions opts(std::uint32_t size, std::uint16_t start_idx = 0,
                            RegionLayout layout = RegionLayout::kOne) {
  FakeGuestDriverOptions o;
  o.queue_size = size;
  o.start_idx = start_idx;
  o.layout = layout;
  // Room for the rings of the largest queue plus test buffers.
  o.region_bytes = std::max<std::uint64_t>(
      std::uint64_t{1} << 20, 2 * (virtio::desc_table_bytes(size) + virtio::avail_ring_bytes(size) +
                                   virtio::used_ring_bytes(size)));
  return o;
}

SplitQueue make_queue(const FakeGuestDriver& drv, EventIdx event_idx) {
  auto q = SplitQueue::create(drv.queue_config(event_idx));
  BOOST_TEST_REQUIRE(q.has_value());
  return std::move(q).value();
}

// A fake guest ring and the device-side queue over it.
struct Ring {
  explicit Ring(const FakeGuestDriverOptions& o = opts(256), EventIdx event_idx = EventIdx::kNo)
      : drv(o), q(make_queue(drv, event_idx)) {}

  FakeBuf buf(std::uint32_t len) { return {drv.alloc(len), len}; }

  FakeGuestDriver drv;
  SplitQueue q;
};

DescChain pop_one(SplitQueue& q) {
  auto r = q.pop();
  BOOST_TEST_REQUIRE(r.has_value());
  BOOST_TEST_REQUIRE(r->has_value());
  return **r;
}

void require_broken(SplitQueue& q) {
  auto r = q.pop();
  BOOST_TEST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kProtocol);
  BOOST_TEST(q.broken());
}

// Pops a chain that must be bad with `code`, then checks that the queue goes on.
void require_bad_chain_then_recovery(Ring& r, Errc code) {
  const std::uint16_t before = r.q.last_avail_idx();
  const DescChain bad = pop_one(r.q);
  BOOST_TEST(!bad.ok());
  BOOST_TEST(bad.error().code == code);
  BOOST_TEST(!r.q.broken());
  BOOST_TEST(r.q.last_avail_idx() == static_cast<std::uint16_t>(before + 1));
  r.q.push_used(bad.head(), 0);
  BOOST_TEST_REQUIRE(r.drv.pop_used().has_value());

  const FakeBuf good = r.buf(32);
  const std::uint16_t head = r.drv.add_chain({{good}}, {});
  const DescChain next = pop_one(r.q);
  BOOST_TEST(next.ok());
  BOOST_TEST(next.head() == head);
}

BOOST_AUTO_TEST_SUITE(split_queue)

// ---- create ----

BOOST_DATA_TEST_CASE(create_rejects_size_not_power_of_two_up_to_32768,
                     bdata::make({0u, 3u, 100u, 32769u, 65536u}), size) {
  FakeGuestDriver drv(opts(4));
  auto config = drv.queue_config();
  config.size = size;
  auto q = SplitQueue::create(config);
  BOOST_TEST_REQUIRE(!q.has_value());
  BOOST_TEST(q.error().code == Errc::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(create_rejects_misaligned_ring_areas) {
  FakeGuestDriver drv(opts(4));
  auto desc = drv.queue_config();
  desc.desc += 8;
  auto avail = drv.queue_config();
  avail.avail += 1;
  auto used = drv.queue_config();
  used.used += 2;
  for (const auto& config : {desc, avail, used}) {
    auto q = SplitQueue::create(config);
    BOOST_TEST_REQUIRE(!q.has_value());
    BOOST_TEST(q.error().code == Errc::kInvalidArgument);
  }
}

BOOST_AUTO_TEST_CASE(create_rejects_missing_memory) {
  FakeGuestDriver drv(opts(4));
  auto config = drv.queue_config();
  config.memory = nullptr;
  auto q = SplitQueue::create(config);
  BOOST_TEST_REQUIRE(!q.has_value());
  BOOST_TEST(q.error().code == Errc::kInvalidArgument);
}

// ---- pop: well-formed chains ----

BOOST_DATA_TEST_CASE(pop_returns_nothing_on_empty_ring, bdata::make(kAllSizes), size) {
  Ring r(opts(size));
  auto popped = r.q.pop();
  BOOST_TEST_REQUIRE(popped.has_value());
  BOOST_TEST(!popped->has_value());
  BOOST_TEST(!r.q.has_pending());
  BOOST_TEST(r.q.last_avail_idx() == 0u);
}

BOOST_DATA_TEST_CASE(pop_returns_single_buffer_chain,
                     bdata::make(kAllSizes) * bdata::make(kIndirect), size, indirect) {
  Ring r(opts(size));
  const FakeBuf b = r.buf(64);
  const std::uint16_t head = r.drv.add_chain({{b}}, {}, indirect);
  BOOST_TEST(r.q.has_pending());

  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.head() == head);
  BOOST_TEST(c.indirect() == (indirect == Indirect::kYes));
  BOOST_TEST_REQUIRE(c.buffers().size() == 1u);
  BOOST_TEST(c.buffers()[0].addr == b.addr);
  BOOST_TEST(c.buffers()[0].len == 64u);
  BOOST_TEST(!c.buffers()[0].device_writable);
  BOOST_TEST(c.readable_bytes() == 64u);
  BOOST_TEST(c.writable_bytes() == 0u);
  BOOST_TEST(r.q.last_avail_idx() == 1u);
  BOOST_TEST(!r.q.has_pending());
}

BOOST_DATA_TEST_CASE(pop_splits_readable_and_writable_buffers,
                     bdata::make(kChainSizes) * bdata::make(kIndirect), size, indirect) {
  Ring r(opts(size));
  const FakeBuf r0 = r.buf(16), r1 = r.buf(100), w0 = r.buf(512), w1 = r.buf(7), w2 = r.buf(1);
  const std::uint16_t head = r.drv.add_chain({{r0, r1}}, {{w0, w1, w2}}, indirect);

  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.head() == head);
  BOOST_TEST_REQUIRE(c.readable().size() == 2u);
  BOOST_TEST_REQUIRE(c.writable().size() == 3u);
  BOOST_TEST(c.readable()[0].addr == r0.addr);
  BOOST_TEST(c.readable()[1].addr == r1.addr);
  BOOST_TEST(c.writable()[0].addr == w0.addr);
  BOOST_TEST(c.writable()[2].addr == w2.addr);
  for (const auto& b : c.writable()) {
    BOOST_TEST(b.device_writable);
  }
  BOOST_TEST(c.readable_bytes() == 116u);
  BOOST_TEST(c.writable_bytes() == 520u);
}

BOOST_AUTO_TEST_CASE(pop_returns_chains_in_avail_order) {
  Ring r;
  std::vector<std::uint16_t> heads;
  for (std::uint32_t i = 0; i < 5; ++i) {
    heads.push_back(r.drv.add_chain({{r.buf(8)}}, {{r.buf(8)}}));
  }
  for (std::uint16_t head : heads) {
    BOOST_TEST(pop_one(r.q).head() == head);
  }
  auto empty = r.q.pop();
  BOOST_TEST_REQUIRE(empty.has_value());
  BOOST_TEST(!empty->has_value());
}

BOOST_AUTO_TEST_CASE(pop_follows_direct_descriptors_into_indirect_table) {
  Ring r;
  const FakeBuf hdr = r.buf(16), w0 = r.buf(64), w1 = r.buf(1);
  const VringDesc table[] = {{w0.addr.value, w0.len, virtio::kDescWrite | virtio::kDescNext, 1},
                             {w1.addr.value, w1.len, virtio::kDescWrite, 0}};
  const GuestAddr t = r.drv.make_indirect_table(table);
  const std::uint16_t head = r.drv.alloc_desc();
  const std::uint16_t ind = r.drv.alloc_desc();
  r.drv.write_desc(head, {hdr.addr.value, hdr.len, virtio::kDescNext, ind});
  r.drv.write_desc(ind, {t.value, sizeof(table), virtio::kDescIndirect, 0});
  r.drv.push_avail(head);

  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.indirect());
  BOOST_TEST_REQUIRE(c.buffers().size() == 3u);
  BOOST_TEST(c.readable_bytes() == 16u);
  BOOST_TEST(c.writable_bytes() == 65u);
  BOOST_TEST(c.buffers()[2].addr == w1.addr);
}

BOOST_AUTO_TEST_CASE(pop_into_reuses_caller_chain) {
  Ring r;
  const std::uint16_t h0 = r.drv.add_chain({{r.buf(8), r.buf(8)}}, {});
  const std::uint16_t h1 = r.drv.add_chain({}, {{r.buf(4)}});
  DescChain c;
  auto first = r.q.pop_into(c);
  BOOST_TEST_REQUIRE(first.has_value());
  BOOST_TEST(*first);
  BOOST_TEST(c.head() == h0);
  auto second = r.q.pop_into(c);
  BOOST_TEST_REQUIRE(second.has_value());
  BOOST_TEST(*second);
  BOOST_TEST(c.head() == h1);
  BOOST_TEST(c.buffers().size() == 1u);
  BOOST_TEST(c.readable_bytes() == 0u);
  BOOST_TEST(c.writable_bytes() == 4u);
  auto third = r.q.pop_into(c);
  BOOST_TEST_REQUIRE(third.has_value());
  BOOST_TEST(!*third);
}

BOOST_AUTO_TEST_CASE(pop_accepts_zero_length_buffer_at_any_address) {
  Ring r;
  const std::uint16_t head =
      r.drv.add_chain({{FakeBuf{GuestAddr{std::numeric_limits<std::uint64_t>::max()}, 0}}}, {});
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.head() == head);
  BOOST_TEST(c.readable_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(pop_accepts_buffer_spanning_adjacent_regions) {
  Ring r(opts(16, 0, RegionLayout::kTwoAdjacent));
  const auto& r0 = r.drv.memory().regions()[0];
  const GuestAddr straddle{r0.guest_phys_addr.value + r0.size - 100};
  r.drv.add_chain({}, {{FakeBuf{straddle, 200}}});
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.writable_bytes() == 200u);
}

BOOST_AUTO_TEST_CASE(chain_byte_totals_do_not_wrap_at_4_gib) {
  Ring r;
  // A large region that pop only validates against and never dereferences.
  const GuestAddr big{std::uint64_t{1} << 44};
  std::byte* host = r.drv.bytes(r.drv.alloc(16), 16).data();
  BOOST_TEST_REQUIRE(r.drv.memory().add_region({big, std::uint64_t{1} << 36, host}).has_value());
  const std::uint32_t max_len = std::numeric_limits<std::uint32_t>::max();
  r.drv.add_chain({{FakeBuf{big, max_len}, FakeBuf{big, max_len}}},
                  {{FakeBuf{big, max_len}, FakeBuf{big, max_len}, FakeBuf{big, max_len}}});
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.readable_bytes() == 2 * std::uint64_t{max_len});
  BOOST_TEST(c.writable_bytes() == 3 * std::uint64_t{max_len});
}

BOOST_DATA_TEST_CASE(pop_accepts_chain_of_exactly_max_buffers, bdata::make(kIndirect), indirect) {
  Ring r(opts(512));
  const FakeBuf b = r.buf(4);
  const std::vector<FakeBuf> bufs(DescChain::kMaxBuffers, b);
  r.drv.add_chain(bufs, {}, indirect);
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.buffers().size() == DescChain::kMaxBuffers);
  BOOST_TEST(c.readable_bytes() == 4u * DescChain::kMaxBuffers);
}

// ---- 16-bit index wrap-around and resume ----

BOOST_DATA_TEST_CASE(pop_and_push_used_across_16bit_index_wrap,
                     bdata::make(kAllSizes) * bdata::make(kIndirect), size, indirect) {
  const std::uint16_t start = 65530;
  Ring r(opts(size, start));
  const std::uint32_t batch = std::min<std::uint32_t>(size, 3);
  std::uint16_t expect_idx = start;
  for (int round = 0; round < 8; ++round) {
    std::vector<std::uint16_t> heads;
    for (std::uint32_t i = 0; i < batch; ++i) {
      heads.push_back(r.drv.add_chain({{r.buf(8)}}, {}, indirect));
    }
    std::vector<VringUsedElem> done;
    for (std::uint16_t head : heads) {
      const DescChain c = pop_one(r.q);
      BOOST_TEST(c.ok());
      BOOST_TEST(c.head() == head);
      done.push_back({c.head(), static_cast<std::uint32_t>(round)});
    }
    r.q.push_used(done);
    expect_idx = static_cast<std::uint16_t>(expect_idx + batch);
    BOOST_TEST(r.q.last_avail_idx() == expect_idx);
    BOOST_TEST(r.q.last_used_idx() == expect_idx);
    BOOST_TEST(r.drv.used_idx() == expect_idx);
    for (std::uint16_t head : heads) {
      const auto used = r.drv.pop_used();
      BOOST_TEST_REQUIRE(used.has_value());
      BOOST_TEST(used->id == head);
      BOOST_TEST(used->len == static_cast<std::uint32_t>(round));
    }
  }
  // The indices wrapped past 65535.
  BOOST_TEST(expect_idx < start);
}

BOOST_DATA_TEST_CASE(pop_accepts_full_ring_across_index_wrap, bdata::make({1u, 4u, 256u}), size) {
  Ring r(opts(size, 65535));
  for (std::uint32_t i = 0; i < size; ++i) {
    r.drv.add_chain({{r.buf(1)}}, {});
  }
  for (std::uint32_t i = 0; i < size; ++i) {
    BOOST_TEST(pop_one(r.q).ok());
  }
  BOOST_TEST(!r.q.broken());
  BOOST_TEST(r.q.last_avail_idx() == static_cast<std::uint16_t>(65535 + size));
}

BOOST_AUTO_TEST_CASE(queue_resumes_at_configured_indices) {
  FakeGuestDriver drv(opts(8, 1000));
  auto config = drv.queue_config();
  config.last_used_idx = 999;  // one chain from before the reconnect is still in flight
  auto q = SplitQueue::create(config);
  BOOST_TEST_REQUIRE(q.has_value());
  const std::uint16_t head = drv.add_chain({{FakeBuf{drv.alloc(8), 8}}}, {});
  const DescChain c = pop_one(*q);
  BOOST_TEST(c.head() == head);
  BOOST_TEST(q->last_avail_idx() == 1001u);
  q->push_used(head, 0);
  BOOST_TEST(q->last_used_idx() == 1000u);
  BOOST_TEST(drv.used_elem(999 % 8).id == head);
}

// ---- pop: corrupt ring (queue breaks) ----

BOOST_DATA_TEST_CASE(pop_rejects_avail_idx_beyond_queue_size,
                     bdata::make(kAllSizes) * bdata::make({0u, 65500u}), size, start) {
  Ring r(opts(size, static_cast<std::uint16_t>(start)));
  r.drv.set_avail_idx(static_cast<std::uint16_t>(start + size + 1));
  require_broken(r.q);
  BOOST_TEST(r.q.last_avail_idx() == static_cast<std::uint16_t>(start));
  // Sticky: a repaired index does not revive the queue.
  r.drv.set_avail_idx(static_cast<std::uint16_t>(start));
  r.drv.add_chain({{r.buf(8)}}, {});
  require_broken(r.q);
  BOOST_TEST(!r.q.has_pending());
}

BOOST_DATA_TEST_CASE(pop_rejects_head_index_beyond_queue_size, bdata::make(kAllSizes), size) {
  Ring r(opts(size));
  r.drv.set_avail_slot(0, static_cast<std::uint16_t>(size));
  r.drv.set_avail_idx(1);
  require_broken(r.q);
  BOOST_TEST(r.q.last_avail_idx() == 0u);
}

BOOST_DATA_TEST_CASE(pop_breaks_queue_on_descriptor_self_loop, bdata::make(kAllSizes), size) {
  Ring r(opts(size));
  const std::uint16_t head = r.drv.add_chain({{r.buf(8)}}, {});
  r.drv.set_desc_flags(head, virtio::kDescNext);
  r.drv.set_desc_next(head, head);
  require_broken(r.q);
}

BOOST_DATA_TEST_CASE(pop_breaks_queue_on_descriptor_loop, bdata::make(kChainSizes), size) {
  Ring r(opts(size));
  const std::uint16_t head = r.drv.add_chain({{r.buf(8), r.buf(8)}}, {{r.buf(8)}});
  const std::uint16_t last = r.drv.read_desc(r.drv.read_desc(head).next).next;
  r.drv.set_desc_flags(last, virtio::kDescWrite | virtio::kDescNext);
  r.drv.set_desc_next(last, head);
  require_broken(r.q);
}

BOOST_DATA_TEST_CASE(pop_breaks_queue_on_next_out_of_range, bdata::make(kAllSizes), size) {
  Ring r(opts(size));
  const std::uint16_t head = r.drv.add_chain({{r.buf(8)}}, {});
  r.drv.set_desc_flags(head, virtio::kDescNext);
  r.drv.set_desc_next(head, static_cast<std::uint16_t>(size));
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(pop_breaks_queue_on_loop_inside_indirect_table) {
  Ring r(opts(16));
  const FakeBuf b = r.buf(8);
  const VringDesc table[] = {{b.addr.value, b.len, virtio::kDescNext, 1},
                             {b.addr.value, b.len, virtio::kDescNext, 2},
                             {b.addr.value, b.len, virtio::kDescNext, 0}};
  const std::uint16_t head = r.drv.alloc_desc();
  r.drv.write_desc(
      head, {r.drv.make_indirect_table(table).value, sizeof(table), virtio::kDescIndirect, 0});
  r.drv.push_avail(head);
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(pop_breaks_queue_on_next_beyond_indirect_table) {
  Ring r(opts(16));
  const FakeBuf b = r.buf(8);
  // next = 2 is inside the queue size but outside this 2-entry table.
  const VringDesc table[] = {{b.addr.value, b.len, virtio::kDescNext, 1},
                             {b.addr.value, b.len, virtio::kDescNext, 2}};
  const std::uint16_t head = r.drv.alloc_desc();
  r.drv.write_desc(
      head, {r.drv.make_indirect_table(table).value, sizeof(table), virtio::kDescIndirect, 0});
  r.drv.push_avail(head);
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(pop_breaks_queue_on_loop_behind_a_bad_buffer) {
  Ring r(opts(1024));
  const std::uint16_t head =
      r.drv.add_chain({{FakeBuf{GuestAddr{0x10}, 8}, r.buf(8)}}, {});  // first buffer unmapped
  const std::uint16_t second = r.drv.read_desc(head).next;
  r.drv.set_desc_flags(second, virtio::kDescNext);
  r.drv.set_desc_next(second, head);
  require_broken(r.q);
}

BOOST_AUTO_TEST_CASE(broken_queue_still_completes_popped_chains) {
  Ring r;
  const std::uint16_t head = r.drv.add_chain({{r.buf(8)}}, {});
  BOOST_TEST(pop_one(r.q).head() == head);
  r.drv.set_avail_idx(static_cast<std::uint16_t>(r.drv.avail_idx() + 300));
  require_broken(r.q);
  r.q.push_used(head, 5);
  const auto used = r.drv.pop_used();
  BOOST_TEST_REQUIRE(used.has_value());
  BOOST_TEST(used->id == head);
  BOOST_TEST(used->len == 5u);
}

// ---- pop: bad chains (completed with an error, queue goes on) ----

BOOST_DATA_TEST_CASE(pop_flags_buffer_outside_guest_memory, bdata::make(kIndirect), indirect) {
  Ring r;
  const auto& region = r.drv.memory().regions()[0];
  const GuestAddr past_end{region.guest_phys_addr.value + region.size - 4};
  r.drv.add_chain({{r.buf(8)}}, {{FakeBuf{past_end, 8}}}, indirect);
  require_bad_chain_then_recovery(r, Errc::kOutOfRange);
}

BOOST_DATA_TEST_CASE(pop_flags_buffer_wrapping_the_address_space, bdata::make(kIndirect),
                     indirect) {
  Ring r;
  const GuestAddr near_top{std::numeric_limits<std::uint64_t>::max() - 10};
  r.drv.add_chain({{FakeBuf{near_top, 100}}}, {}, indirect);
  require_bad_chain_then_recovery(r, Errc::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(pop_flags_buffer_spanning_unmapped_gap) {
  Ring r(opts(16, 0, RegionLayout::kTwoWithGap));
  const auto& r0 = r.drv.memory().regions()[0];
  r.drv.add_chain({}, {{FakeBuf{GuestAddr{r0.guest_phys_addr.value + r0.size - 8}, 16}}});
  require_bad_chain_then_recovery(r, Errc::kOutOfRange);
}

BOOST_DATA_TEST_CASE(pop_flags_readable_after_writable, bdata::make(kIndirect), indirect) {
  Ring r;
  const FakeBuf w = r.buf(8), rd = r.buf(8);
  const FakeSegment segs[] = {{w.addr, w.len, Writable::kYes}, {rd.addr, rd.len, Writable::kNo}};
  r.drv.add_segments(segs, indirect);
  require_bad_chain_then_recovery(r, Errc::kProtocol);
}

BOOST_DATA_TEST_CASE(pop_flags_chain_longer_than_max_buffers, bdata::make(kIndirect), indirect) {
  Ring r(opts(512));
  const std::vector<FakeBuf> bufs(DescChain::kMaxBuffers + 1, r.buf(4));
  r.drv.add_chain(bufs, {}, indirect);
  const DescChain c = pop_one(r.q);
  BOOST_TEST(!c.ok());
  BOOST_TEST(c.error().code == Errc::kUnsupported);
  BOOST_TEST(c.buffers().size() == DescChain::kMaxBuffers);
  BOOST_TEST(!r.q.broken());
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_table_outside_guest_memory) {
  Ring r;
  const std::uint16_t head = r.drv.alloc_desc();
  r.drv.write_desc(head, {0x1000, 32, virtio::kDescIndirect, 0});
  r.drv.push_avail(head);
  require_bad_chain_then_recovery(r, Errc::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_table_spanning_two_regions) {
  Ring r(opts(16, 0, RegionLayout::kTwoAdjacent));
  const FakeBuf b = r.buf(8);
  const auto& r0 = r.drv.memory().regions()[0];
  const GuestAddr table{r0.guest_phys_addr.value + r0.size - sizeof(VringDesc)};
  const VringDesc entries[] = {{b.addr.value, b.len, virtio::kDescNext, 1},
                               {b.addr.value, b.len, 0, 0}};
  r.drv.write(table, std::as_bytes(std::span(entries).first(1)));
  r.drv.write(GuestAddr{table.value + sizeof(VringDesc)},
              std::as_bytes(std::span(entries).last(1)));
  const std::uint16_t head = r.drv.alloc_desc();
  r.drv.write_desc(head, {table.value, sizeof(entries), virtio::kDescIndirect, 0});
  r.drv.push_avail(head);
  require_bad_chain_then_recovery(r, Errc::kOutOfRange);
}

// Indirect descriptor lengths that are not a whole, non-empty table.
BOOST_DATA_TEST_CASE(pop_flags_indirect_table_of_bad_length, bdata::make({0u, 8u, 17u, 40u}), len) {
  Ring r;
  const GuestAddr table = r.drv.alloc(64);
  const std::uint16_t head = r.drv.alloc_desc();
  r.drv.write_desc(head, {table.value, len, virtio::kDescIndirect, 0});
  r.drv.push_avail(head);
  require_bad_chain_then_recovery(r, Errc::kProtocol);
}

// Linux's virtio_blk puts seg_max + 2 descriptors in one table whatever the
// queue size: a table larger than the queue is served, up to 1024 entries.
BOOST_AUTO_TEST_CASE(indirect_table_larger_than_queue_is_served) {
  Ring r(opts(4));
  const FakeBuf b = r.buf(4);
  const std::vector<FakeBuf> bufs(6, b);
  r.drv.add_chain(bufs, {}, Indirect::kYes);
  const DescChain c = pop_one(r.q);
  BOOST_TEST(c.ok());
  BOOST_TEST(c.buffers().size() == 6u);
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_table_over_1024_entries) {
  Ring r(opts(4));
  const FakeBuf b = r.buf(4);
  const std::vector<FakeBuf> bufs(virtio::kMaxIndirectEntries + 1, b);
  r.drv.add_chain(bufs, {}, Indirect::kYes);
  require_bad_chain_then_recovery(r, Errc::kProtocol);
}

BOOST_AUTO_TEST_CASE(pop_flags_nested_indirect) {
  Ring r;
  const FakeBuf b = r.buf(8);
  const VringDesc inner[] = {{b.addr.value, b.len, 0, 0}};
  const GuestAddr inner_table = r.drv.make_indirect_table(inner);
  const VringDesc outer[] = {{b.addr.value, b.len, virtio::kDescNext, 1},
                             {inner_table.value, sizeof(inner), virtio::kDescIndirect, 0}};
  const std::uint16_t head = r.drv.alloc_desc();
  r.drv.write_desc(
      head, {r.drv.make_indirect_table(outer).value, sizeof(outer), virtio::kDescIndirect, 0});
  r.drv.push_avail(head);
  require_bad_chain_then_recovery(r, Errc::kProtocol);
}

BOOST_AUTO_TEST_CASE(pop_flags_indirect_with_next) {
  Ring r;
  const FakeBuf b = r.buf(8);
  const VringDesc table[] = {{b.addr.value, b.len, 0, 0}};
  const std::uint16_t head = r.drv.alloc_desc();
  const std::uint16_t other = r.drv.alloc_desc();
  r.drv.write_desc(other, {b.addr.value, b.len, 0, 0});
  r.drv.write_desc(head, {r.drv.make_indirect_table(table).value, sizeof(table),
                          virtio::kDescIndirect | virtio::kDescNext, other});
  r.drv.push_avail(head);
  require_bad_chain_then_recovery(r, Errc::kProtocol);
}

// ---- used ring ----

BOOST_AUTO_TEST_CASE(push_used_writes_head_and_len_in_completion_order) {
  Ring r(opts(8));
  const std::uint16_t h0 = r.drv.add_chain({{r.buf(8)}}, {{r.buf(64)}});
  const std::uint16_t h1 = r.drv.add_chain({{r.buf(8)}}, {{r.buf(64)}});
  pop_one(r.q);
  pop_one(r.q);
  r.q.push_used(h1, 33);
  BOOST_TEST(r.drv.used_idx() == 1u);
  r.q.push_used(h0, 64);
  BOOST_TEST(r.drv.used_idx() == 2u);
  BOOST_TEST(r.drv.used_elem(0).id == h1);
  BOOST_TEST(r.drv.used_elem(0).len == 33u);
  BOOST_TEST(r.drv.used_elem(1).id == h0);
  BOOST_TEST(r.drv.used_elem(1).len == 64u);
  BOOST_TEST(r.q.last_used_idx() == 2u);
  const std::size_t free_before = r.drv.free_descriptors();
  BOOST_TEST(r.drv.pop_used().has_value());
  BOOST_TEST(r.drv.pop_used().has_value());
  BOOST_TEST(!r.drv.pop_used().has_value());
  BOOST_TEST(r.drv.free_descriptors() == free_before + 4);
  BOOST_TEST(r.q.stats().used == 2u);
}

BOOST_AUTO_TEST_CASE(push_used_batch_publishes_all_entries) {
  Ring r(opts(8));
  std::vector<VringUsedElem> done;
  for (std::uint32_t i = 0; i < 3; ++i) {
    r.drv.add_chain({}, {{r.buf(16)}});
    done.push_back({pop_one(r.q).head(), 10 + i});
  }
  r.q.push_used(std::span<const VringUsedElem>{});
  BOOST_TEST(r.drv.used_idx() == 0u);
  r.q.push_used(done);
  BOOST_TEST(r.drv.used_idx() == 3u);
  for (const VringUsedElem& e : done) {
    const auto used = r.drv.pop_used();
    BOOST_TEST_REQUIRE(used.has_value());
    BOOST_TEST(used->id == e.id);
    BOOST_TEST(used->len == e.len);
  }
}

// ---- notifications ----

BOOST_DATA_TEST_CASE(need_notify_without_event_idx_follows_no_interrupt_flag,
                     bdata::make({std::uint16_t{0}, virtio::kAvailFlagNoInterrupt}) ^
                         bdata::make({true, false}),
                     avail_flags, expected) {
  Ring r(opts(8));
  r.drv.set_avail_flags(avail_flags);
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.push_used(pop_one(r.q).head(), 0);
  BOOST_TEST(r.q.need_notify() == expected);
  BOOST_TEST(r.q.stats().notifies == (expected ? 1u : 0u));
}

BOOST_AUTO_TEST_CASE(need_notify_without_event_idx_is_false_with_nothing_new) {
  Ring r(opts(8));
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.push_used(pop_one(r.q).head(), 0);
  BOOST_TEST(r.q.need_notify());
  BOOST_TEST(!r.q.need_notify());
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.push_used(pop_one(r.q).head(), 0);
  BOOST_TEST(r.q.need_notify());
}

BOOST_AUTO_TEST_CASE(need_notify_with_event_idx_notifies_on_first_call) {
  Ring r(opts(8), EventIdx::kYes);
  r.drv.set_used_event(100);  // far away: only the first-call rule fires
  BOOST_TEST(r.q.need_notify());
  BOOST_TEST(!r.q.need_notify());
}

// pushed: entries completed since the last notification; event_offset: used_event
// relative to used->idx before them. The guest wants an interrupt when used->idx
// moves past used_event, i.e. used_event in [old, new).
BOOST_DATA_TEST_CASE(need_notify_with_event_idx_fires_when_used_idx_passes_used_event,
                     bdata::make({0u, 65534u}) *
                         (bdata::make({1, 1, 3, 3, 3, 3}) ^ bdata::make({0, -1, 0, 2, 3, 100}) ^
                          bdata::make({true, false, true, true, false, false})),
                     start, pushed, event_offset, expected) {
  Ring r(opts(8, static_cast<std::uint16_t>(start)), EventIdx::kYes);
  BOOST_TEST(r.q.need_notify());  // first call; also records the current used->idx
  std::vector<VringUsedElem> done;
  for (int i = 0; i < pushed; ++i) {
    r.drv.add_chain({{r.buf(8)}}, {});
    done.push_back({pop_one(r.q).head(), 0});
  }
  r.drv.set_used_event(static_cast<std::uint16_t>(start + event_offset));
  r.q.push_used(done);
  BOOST_TEST(r.q.need_notify() == expected);
  BOOST_TEST(!r.q.need_notify());  // nothing new since
}

BOOST_AUTO_TEST_CASE(set_notifications_without_event_idx_toggles_no_notify_flag) {
  Ring r(opts(8));
  r.q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(r.drv.used_flags() == virtio::kUsedFlagNoNotify);
  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.drv.used_flags() == 0u);
  BOOST_TEST(r.drv.avail_event() == 0u);
}

BOOST_AUTO_TEST_CASE(set_notifications_with_event_idx_moves_avail_event) {
  Ring r(opts(8, 65534), EventIdx::kYes);
  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.drv.avail_event() == 65534u);
  BOOST_TEST(r.drv.used_flags() == 0u);

  // While enabled, each pop asks for a kick at the next entry.
  r.drv.add_chain({{r.buf(8)}}, {});
  r.drv.add_chain({{r.buf(8)}}, {});
  pop_one(r.q);
  BOOST_TEST(r.drv.avail_event() == 65535u);

  // Disabled: avail_event stays behind and used->flags is left alone.
  r.q.set_notifications(Notifications::kDisabled);
  pop_one(r.q);
  BOOST_TEST(r.drv.avail_event() == 65535u);
  BOOST_TEST(r.drv.used_flags() == 0u);
  BOOST_TEST(r.q.last_avail_idx() == 0u);

  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.drv.avail_event() == 0u);
}

BOOST_AUTO_TEST_CASE(has_pending_sees_chains_added_after_reenabling) {
  Ring r(opts(8), EventIdx::kYes);
  r.q.set_notifications(Notifications::kDisabled);
  BOOST_TEST(!r.q.has_pending());
  r.drv.add_chain({{r.buf(8)}}, {});
  r.drv.add_chain({{r.buf(8)}}, {});
  r.q.set_notifications(Notifications::kEnabled);
  BOOST_TEST(r.q.has_pending());
  pop_one(r.q);
  BOOST_TEST(r.q.has_pending());
  pop_one(r.q);
  BOOST_TEST(!r.q.has_pending());
}

// ---- counters ----

BOOST_AUTO_TEST_CASE(stats_count_chains_bad_chains_and_used) {
  Ring r;
  r.drv.add_chain({{r.buf(8)}}, {});
  r.drv.add_chain({{FakeBuf{GuestAddr{0x10}, 8}}}, {});
  const DescChain good = pop_one(r.q);
  const DescChain bad = pop_one(r.q);
  r.q.push_used(good.head(), 0);
  r.q.push_used(bad.head(), 0);
  BOOST_TEST(r.q.stats().chains == 2u);
  BOOST_TEST(r.q.stats().bad_chains == 1u);
  BOOST_TEST(r.q.stats().used == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace viopool::testing
