// DriverQueue in packed layout (virtio 1.2, 2.8) against SimPackedDevice, a
// small device side written here from the spec: it walks available chains,
// checks every descriptor's AVAIL/USED bits against its own wrap counter, and
// writes used descriptors in or out of order. Independent of vhost-backend's
// packed queue, so a disagreement between the two halves shows in one of them.
#include <algorithm>
#include <array>
#include <atomic>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <vector>

#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "tests/component/frontend/printers.h"

namespace viopool::frontend {
// For BOOST_DATA_TEST_CASE over Indirect (found by ADL).
inline std::ostream& operator<<(std::ostream& os, Indirect i) {
  return os << (i == Indirect::kYes ? "indirect" : "direct");
}
}  // namespace viopool::frontend

using namespace viopool;
using namespace viopool::frontend;

namespace {

// A chain as the device read it.
struct SimChain {
  std::uint16_t id = 0;
  std::uint16_t slots = 0;  // ring slots it took
  bool indirect = false;
  std::vector<DriverSegment> bufs;
};

// Ring positions as one free-running count of slots since the start, so the
// simulation's bookkeeping does not share the driver's offset/wrap arithmetic.
class SimPackedDevice {
 public:
  SimPackedDevice(GuestMemoryArena& arena, const DriverQueue& q)
      : arena_(arena),
        size_(q.size()),
        start_off_(q.start_idx() & 0x7fff),
        start_wrap_((q.start_idx() & kPackedWrapBit) != 0) {
    ring_ = reinterpret_cast<PackedDesc*>(arena.host(q.desc_gpa(), sizeof(PackedDesc) * size_));
    driver_event_ = reinterpret_cast<std::uint32_t*>(arena.host(q.avail_gpa(), 4));
    device_event_ = reinterpret_cast<std::uint32_t*>(arena.host(q.used_gpa(), 4));
    BOOST_REQUIRE(ring_ != nullptr);
    BOOST_REQUIRE(driver_event_ != nullptr);
    BOOST_REQUIRE(device_event_ != nullptr);
  }

  // offset | wrap << 15 of the slot `count` slots after the start.
  std::uint16_t position(std::uint64_t count) const {
    const std::uint64_t abs = start_off_ + count;
    const bool wrap = start_wrap_ ^ (((abs / size_) & 1) != 0);
    return packed_position(static_cast<std::uint16_t>(abs % size_), wrap);
  }
  std::uint16_t avail_position() const { return position(avail_count_); }
  std::uint16_t used_position() const { return position(used_count_); }

  // The next available chain, or nullopt when the head slot is not available.
  std::optional<SimChain> pop() {
    if (!available(avail_count_, /*acquire=*/true)) {
      return std::nullopt;
    }
    SimChain c;
    for (;;) {
      // Every slot of a chain must carry this lap's AVAIL/USED bits.
      BOOST_REQUIRE_MESSAGE(available(avail_count_, false), "chain slot not available");
      const PackedDesc d = ring_[slot(avail_count_)];
      ++avail_count_;
      ++c.slots;
      c.id = d.id;  // the last descriptor's id counts (2.8.6)
      if ((d.flags & virtio::kDescIndirect) != 0) {
        BOOST_REQUIRE_MESSAGE(c.slots == 1 && (d.flags & virtio::kDescNext) == 0,
                              "indirect descriptor inside a chain");
        BOOST_REQUIRE(d.len % sizeof(PackedDesc) == 0 && d.len > 0);
        const auto* table =
            reinterpret_cast<const PackedDesc*>(arena_.host(GuestAddr{d.addr}, d.len));
        BOOST_REQUIRE(table != nullptr);
        for (std::size_t i = 0; i < d.len / sizeof(PackedDesc); ++i) {
          c.bufs.push_back(
              {GuestAddr{table[i].addr}, table[i].len,
               (table[i].flags & virtio::kDescWrite) != 0 ? Writable::kYes : Writable::kNo});
        }
        c.indirect = true;
        return c;
      }
      c.bufs.push_back({GuestAddr{d.addr}, d.len,
                        (d.flags & virtio::kDescWrite) != 0 ? Writable::kYes : Writable::kNo});
      if ((d.flags & virtio::kDescNext) == 0) {
        return c;
      }
      BOOST_REQUIRE_MESSAGE(c.slots < size_, "chain longer than the ring");
    }
  }

  // Writes the used descriptor for `c` at the used position (2.8.7): id and
  // len, then AVAIL = USED = the used wrap counter, released.
  void push_used(const SimChain& c, std::uint32_t len) {
    PackedDesc& d = ring_[slot(used_count_)];
    d.id = c.id;
    d.len = len;
    const bool wrap = (position(used_count_) & kPackedWrapBit) != 0;
    std::atomic_ref<std::uint16_t>(d.flags).store(wrap ? (kPackedDescAvail | kPackedDescUsed) : 0,
                                                  std::memory_order_release);
    used_count_ += c.slots;
  }
  // A used descriptor with any id, for misbehaving-device tests.
  void push_bogus_used(std::uint16_t id) { push_used(SimChain{id, 1, false, {}}, 0); }

  // Device event suppression: what the driver reads before kicking.
  void set_kick_mode(std::uint16_t flags, std::uint16_t off_wrap = 0) {
    std::atomic_ref<std::uint32_t>(*device_event_)
        .store(std::uint32_t{off_wrap} | std::uint32_t{flags} << 16, std::memory_order_seq_cst);
  }

  // Whether the driver event suppression structure asks for an interrupt for
  // the used descriptors written since the last call (2.8.10).
  bool need_interrupt() {
    const std::uint64_t old_count = signalled_count_;
    signalled_count_ = used_count_;
    if (old_count == used_count_) {
      return false;
    }
    const std::uint32_t ev =
        std::atomic_ref<std::uint32_t>(*driver_event_).load(std::memory_order_seq_cst);
    const auto flags = static_cast<std::uint16_t>(ev >> 16);
    if (flags == kPackedEventDisable) {
      return false;
    }
    if (flags != kPackedEventDesc) {
      return true;
    }
    // The event's slot count: the one matching off_wrap in the two laps up to
    // used_count_ (the driver never asks about a slot it has not reaped up to).
    const auto off_wrap = static_cast<std::uint16_t>(ev & 0xffff);
    for (std::uint64_t back = 0; back < 2u * size_; ++back) {
      if (back > used_count_) {
        break;
      }
      if (position(used_count_ - back) == off_wrap) {
        const std::uint64_t event = used_count_ - back;
        return event >= old_count && event < used_count_;
      }
    }
    BOOST_FAIL("driver event off_wrap matches no recent position");
    return false;
  }

 private:
  std::uint16_t slot(std::uint64_t count) const { return position(count) & 0x7fff; }
  bool available(std::uint64_t count, bool acquire) const {
    const std::uint16_t f =
        std::atomic_ref<std::uint16_t>(ring_[slot(count)].flags)
            .load(acquire ? std::memory_order_acquire : std::memory_order_relaxed);
    const bool wrap = (position(count) & kPackedWrapBit) != 0;
    return ((f & kPackedDescAvail) != 0) == wrap && ((f & kPackedDescUsed) != 0) != wrap;
  }

  GuestMemoryArena& arena_;
  std::uint16_t size_;
  std::uint16_t start_off_;
  bool start_wrap_;
  PackedDesc* ring_ = nullptr;
  std::uint32_t* driver_event_ = nullptr;
  std::uint32_t* device_event_ = nullptr;
  std::uint64_t avail_count_ = 0;
  std::uint64_t used_count_ = 0;
  std::uint64_t signalled_count_ = 0;
};

struct PackedPair {
  std::unique_ptr<GuestMemoryArena> arena;
  std::unique_ptr<DriverQueue> drv;
  std::optional<SimPackedDevice> dev;
  ArenaBlock buf;

  PackedPair(std::uint16_t size, virtio::EventIdx event_idx, Indirect indirect,
             std::uint16_t start = kPackedFreshStart) {
    ArenaOptions ao;
    ao.size = 8 << 20;
    auto a = GuestMemoryArena::create(ao);
    BOOST_REQUIRE(a.has_value());
    arena = std::move(*a);
    DriverQueueOptions o;
    o.layout = RingLayout::kPacked;
    o.size = size;
    o.event_idx = event_idx;
    o.indirect = indirect;
    o.max_indirect = 8;
    o.start_idx = start;
    auto q = DriverQueue::create(*arena, o);
    BOOST_REQUIRE(q.has_value());
    drv = std::move(*q);
    dev.emplace(*arena, *drv);
    auto b = arena->alloc(1 << 20, 4096);
    BOOST_REQUIRE(b.has_value());
    buf = *b;
  }

  // A chain of `n` buffers (1..4): header readable, the rest writable, at
  // addresses derived from `cookie` so the device side can check them.
  std::vector<DriverSegment> chain(std::uint64_t cookie, std::size_t n) const {
    const std::uint64_t base = buf.gpa.value + (cookie % 200) * 4096;
    std::vector<DriverSegment> s;
    s.push_back({GuestAddr{base}, 16, Writable::kNo});
    for (std::size_t i = 1; i < n; ++i) {
      s.push_back({GuestAddr{base + 512 * i}, static_cast<std::uint32_t>(100 * i + cookie % 7),
                   Writable::kYes});
    }
    return s;
  }
};

void check_same(const SimChain& got, const std::vector<DriverSegment>& want) {
  BOOST_REQUIRE_EQUAL(got.bufs.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    BOOST_TEST(got.bufs[i].addr.value == want[i].addr.value);
    BOOST_TEST(got.bufs[i].len == want[i].len);
    BOOST_TEST((got.bufs[i].writable == want[i].writable));
  }
}

struct PackedCase {
  std::uint16_t size;
  virtio::EventIdx event_idx;
  Indirect indirect;
  std::uint16_t start;
};
std::ostream& operator<<(std::ostream& os, const PackedCase& c) {
  return os << "size=" << c.size << " event_idx=" << (c.event_idx == virtio::EventIdx::kYes)
            << " indirect=" << (c.indirect == Indirect::kYes) << " start=0x" << std::hex << c.start
            << std::dec;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(packed_driver_queue)

BOOST_DATA_TEST_CASE(chains_round_trip_and_the_ring_wraps_many_times,
                     boost::unit_test::data::make(std::vector<PackedCase>{
                         {16, virtio::EventIdx::kNo, Indirect::kNo, kPackedFreshStart},
                         {16, virtio::EventIdx::kYes, Indirect::kYes, kPackedFreshStart},
                         {7, virtio::EventIdx::kYes, Indirect::kNo, kPackedFreshStart},
                         {8, virtio::EventIdx::kNo, Indirect::kNo, 0x0005},  // resumed, wrap 0
                         {5, virtio::EventIdx::kNo, Indirect::kYes, packed_position(3, true)},
                     }),
                     pc) {
  PackedPair p(pc.size, pc.event_idx, pc.indirect, pc.start);
  BOOST_TEST((p.drv->layout() == RingLayout::kPacked));
  BOOST_TEST(p.drv->avail_idx() == pc.start);
  std::uint64_t cookie = 1;
  std::uint64_t slots_total = 0;
  for (int round = 0; round < 60; ++round) {
    const std::size_t len = 1 + round % 4;  // buffers per chain
    const std::size_t slots_each = pc.indirect == Indirect::kYes && len > 1 ? 1 : len;
    std::size_t n = 1 + round % 3;
    while (n * slots_each > pc.size) {
      --n;
    }
    BOOST_REQUIRE(n > 0);
    std::vector<std::vector<DriverSegment>> added;
    for (std::size_t i = 0; i < n; ++i) {
      added.push_back(p.chain(cookie + i, len));
      BOOST_REQUIRE(p.drv->add(added.back(), cookie + i).has_value());
    }
    BOOST_TEST(p.drv->free_descriptors() == pc.size - n * slots_each);
    // Nothing is visible before publish(): the head flags are stored last.
    BOOST_TEST(!p.dev->pop().has_value());
    BOOST_REQUIRE(p.drv->kick().has_value());
    BOOST_TEST(p.drv->avail_idx() == p.dev->position(slots_total + n * slots_each));
    std::vector<SimChain> popped;
    for (std::size_t i = 0; i < n; ++i) {
      auto c = p.dev->pop();
      BOOST_REQUIRE(c.has_value());
      BOOST_TEST(c->slots == slots_each);
      BOOST_TEST(c->indirect == (slots_each == 1 && len > 1));
      check_same(*c, added[i]);
      popped.push_back(*c);
    }
    BOOST_TEST(!p.dev->pop().has_value());
    // Out of order on odd rounds: the device names chains by buffer id.
    if (round % 2 == 1) {
      std::reverse(popped.begin(), popped.end());
    }
    std::vector<std::uint64_t> want_cookies;
    for (const auto& c : popped) {
      const auto it = std::find_if(added.begin(), added.end(), [&](const auto& a) {
        return a[0].addr.value == c.bufs[0].addr.value;
      });
      want_cookies.push_back(cookie + static_cast<std::uint64_t>(it - added.begin()));
      p.dev->push_used(c, static_cast<std::uint32_t>(want_cookies.back() * 3));
    }
    BOOST_TEST(p.drv->has_used());
    std::array<DriverCompletion, 8> out;
    auto got = p.drv->reap(out);
    BOOST_REQUIRE(got.has_value());
    BOOST_REQUIRE_EQUAL(*got, n);
    for (std::size_t i = 0; i < n; ++i) {
      BOOST_TEST(out[i].cookie == want_cookies[i]);
      BOOST_TEST(out[i].len == want_cookies[i] * 3);
    }
    BOOST_TEST(!p.drv->has_used());
    BOOST_TEST(p.drv->in_flight() == 0u);
    BOOST_TEST(p.drv->free_descriptors() == pc.size);
    BOOST_TEST(p.drv->last_used_idx() == p.dev->used_position());
    cookie += n;
    slots_total += n * slots_each;
  }
  BOOST_TEST(slots_total > 4u * pc.size);  // the wrap counters flipped several times
  BOOST_TEST(p.drv->avail_idx() == p.dev->avail_position());
}

BOOST_DATA_TEST_CASE(a_full_ring_with_random_completion_order_keeps_ids_and_slots_straight,
                     boost::unit_test::data::make({Indirect::kNo, Indirect::kYes}), indirect) {
  PackedPair p(16, virtio::EventIdx::kYes, indirect);
  std::mt19937 rng(7);
  std::deque<SimChain> device_held;
  std::uint64_t next_cookie = 1;
  std::uint64_t completed = 0;
  std::vector<std::uint64_t> outstanding;  // cookies in flight
  for (int step = 0; step < 300; ++step) {
    // Fill until the ring refuses.
    for (;;) {
      const std::size_t len = 1 + rng() % 3;
      auto segs = p.chain(next_cookie, len);
      auto r = p.drv->add(segs, next_cookie);
      if (!r) {
        BOOST_REQUIRE(r.error().code == Errc::kResourceExhausted);
        break;
      }
      outstanding.push_back(next_cookie++);
    }
    BOOST_REQUIRE(p.drv->kick().has_value());
    while (auto c = p.dev->pop()) {
      device_held.push_back(*c);
    }
    // Complete a random subset in a random order.
    std::shuffle(device_held.begin(), device_held.end(), rng);
    const std::size_t k = device_held.empty() ? 0 : 1 + rng() % device_held.size();
    for (std::size_t i = 0; i < k; ++i) {
      p.dev->push_used(device_held.front(), 1);
      device_held.pop_front();
    }
    std::array<DriverCompletion, 16> out;
    std::size_t reaped = 0;
    for (;;) {
      auto got = p.drv->reap(out);
      BOOST_REQUIRE(got.has_value());
      if (*got == 0) {
        break;
      }
      for (std::size_t i = 0; i < *got; ++i) {
        auto it = std::find(outstanding.begin(), outstanding.end(), out[i].cookie);
        BOOST_REQUIRE(it != outstanding.end());
        outstanding.erase(it);
      }
      reaped += *got;
    }
    BOOST_REQUIRE_EQUAL(reaped, k);
    completed += k;
    BOOST_TEST(p.drv->in_flight() == device_held.size());
    std::size_t held_slots = 0;
    for (const auto& c : device_held) {
      held_slots += c.slots;
    }
    BOOST_TEST(p.drv->free_descriptors() == 16u - held_slots);
  }
  BOOST_TEST(completed >= 300u);
}

BOOST_AUTO_TEST_CASE(kicks_follow_the_device_event_suppression_structure) {
  PackedPair p(4, virtio::EventIdx::kYes, Indirect::kNo);
  const auto seg = p.chain(1, 1);
  std::array<DriverCompletion, 4> out;
  auto round_trip = [&] {
    while (auto c = p.dev->pop()) {
      p.dev->push_used(*c, 0);
    }
    while (*p.drv->reap(out) != 0) {
    }
  };
  // ENABLE (the zeroed area): every kick with something new notifies.
  BOOST_REQUIRE(p.drv->add(seg, 1).has_value());
  BOOST_TEST(*p.drv->kick() == true);
  BOOST_TEST(*p.drv->kick() == false);  // nothing new
  round_trip();
  // DISABLE: no kick.
  p.dev->set_kick_mode(kPackedEventDisable);
  BOOST_REQUIRE(p.drv->add(seg, 2).has_value());
  BOOST_TEST(*p.drv->kick() == false);
  BOOST_TEST(p.drv->kicks_suppressed() == 1u);
  round_trip();
  // DESC one slot ahead in this lap (the device is at slot 2): the kick for
  // slot 2 is not wanted.
  BOOST_REQUIRE(p.dev->avail_position() == packed_position(2, true));
  p.dev->set_kick_mode(kPackedEventDesc, packed_position(3, true));
  BOOST_REQUIRE(p.drv->add(seg, 3).has_value());  // slot 2
  BOOST_TEST(*p.drv->kick() == false);
  round_trip();
  // DESC at the device's own position, slot 3 of wrap 1, and a batch that
  // crosses the ring's end (slots 3 and 0 of wrap 0): the event lies in the
  // previous lap now and inside the batch, so kick.
  p.dev->set_kick_mode(kPackedEventDesc, p.dev->avail_position());
  BOOST_REQUIRE(p.drv->add(seg, 4).has_value());
  BOOST_REQUIRE(p.drv->add(seg, 5).has_value());
  BOOST_TEST(p.drv->avail_idx() == packed_position(3, true));
  BOOST_TEST(*p.drv->kick() == true);
  BOOST_TEST(p.drv->avail_idx() == packed_position(1, false));
  round_trip();
  // DESC at a position already passed: the device is not waiting for us.
  p.dev->set_kick_mode(kPackedEventDesc, packed_position(0, false));
  BOOST_REQUIRE(p.drv->add(seg, 6).has_value());  // slot 1
  BOOST_TEST(*p.drv->kick() == false);
  round_trip();
  // Own position again (slot 2 of wrap 0), batch wrapping to wrap 1: kick.
  p.dev->set_kick_mode(kPackedEventDesc, p.dev->avail_position());
  BOOST_REQUIRE(p.drv->add(seg, 7).has_value());
  BOOST_REQUIRE(p.drv->add(seg, 8).has_value());
  BOOST_TEST(*p.drv->kick() == true);
  BOOST_TEST(p.drv->avail_idx() == packed_position(0, true));
  BOOST_TEST(p.drv->kicks() == 3u);
  BOOST_TEST(p.drv->kicks_suppressed() == 3u);
}

BOOST_DATA_TEST_CASE(the_device_interrupts_only_when_the_driver_wants_it,
                     boost::unit_test::data::make({virtio::EventIdx::kNo, virtio::EventIdx::kYes}),
                     event_idx) {
  PackedPair p(4, event_idx, Indirect::kNo);
  const auto seg = p.chain(1, 2);  // two slots each: used positions skip
  std::array<DriverCompletion, 4> out;
  p.drv->set_interrupts(virtio::Notifications::kDisabled);
  for (int i = 0; i < 5; ++i) {
    BOOST_REQUIRE(p.drv->add(seg, i).has_value());
    BOOST_REQUIRE(p.drv->kick().has_value());
    auto c = p.dev->pop();
    BOOST_REQUIRE(c.has_value());
    p.dev->push_used(*c, 1);
    BOOST_TEST(!p.dev->need_interrupt());
    BOOST_TEST(*p.drv->reap(out) == 1u);
  }
  p.drv->set_interrupts(virtio::Notifications::kEnabled);
  for (int i = 0; i < 5; ++i) {
    BOOST_REQUIRE(p.drv->add(seg, 10 + i).has_value());
    BOOST_REQUIRE(p.drv->add(seg, 20 + i).has_value());
    BOOST_REQUIRE(p.drv->kick().has_value());
    auto a = p.dev->pop();
    auto b = p.dev->pop();
    BOOST_REQUIRE((a.has_value() && b.has_value()));
    p.dev->push_used(*a, 1);
    BOOST_TEST(p.dev->need_interrupt());
    p.dev->push_used(*b, 1);
    // With EVENT_IDX the driver asked about the first completion only; without
    // it every completion may signal.
    BOOST_TEST(p.dev->need_interrupt() == (event_idx == virtio::EventIdx::kNo));
    auto ready = p.drv->wait_used(std::chrono::milliseconds(0));
    BOOST_REQUIRE(ready.has_value());
    BOOST_TEST(*ready);
    BOOST_TEST(*p.drv->reap(out) == 2u);
  }
  auto idle = p.drv->wait_used(std::chrono::milliseconds(0));
  BOOST_REQUIRE(idle.has_value());
  BOOST_TEST(!*idle);
}

BOOST_AUTO_TEST_CASE(a_used_id_that_is_not_in_flight_breaks_the_queue) {
  PackedPair p(8, virtio::EventIdx::kNo, Indirect::kNo);
  std::array<DriverCompletion, 4> out;
  // Nothing in flight at all.
  p.dev->push_bogus_used(5);
  auto r = p.drv->reap(out);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().code == Errc::kProtocol);
  BOOST_TEST(p.drv->broken());
  const auto seg = p.chain(1, 1);
  BOOST_TEST(p.drv->add(seg, 1).error().code == Errc::kProtocol);

  // The same buffer completed twice.
  PackedPair q(8, virtio::EventIdx::kNo, Indirect::kNo);
  BOOST_REQUIRE(q.drv->add(seg, 1).has_value());
  BOOST_REQUIRE(q.drv->kick().has_value());
  auto c = q.dev->pop();
  BOOST_REQUIRE(c.has_value());
  q.dev->push_used(*c, 0);
  q.dev->push_used(*c, 0);
  auto got = q.drv->reap(out);
  BOOST_TEST(!got.has_value());
  BOOST_TEST(q.drv->broken());

  // An id beyond the ring.
  PackedPair s(8, virtio::EventIdx::kNo, Indirect::kNo);
  BOOST_REQUIRE(s.drv->add(seg, 1).has_value());
  BOOST_REQUIRE(s.drv->kick().has_value());
  s.dev->push_bogus_used(0x7777);
  BOOST_TEST(s.drv->reap(out).error().code == Errc::kProtocol);
}

BOOST_AUTO_TEST_CASE(indirect_chains_take_one_slot_and_a_full_ring_is_refused) {
  PackedPair p(4, virtio::EventIdx::kNo, Indirect::kYes);
  const auto three = p.chain(1, 3);
  for (std::uint64_t i = 0; i < 4; ++i) {
    BOOST_REQUIRE(p.drv->add(three, i).has_value());
  }
  BOOST_TEST(p.drv->free_descriptors() == 0u);
  BOOST_TEST(p.drv->add(three, 9).error().code == Errc::kResourceExhausted);
  const auto too_long = p.chain(1, 4);
  std::vector<DriverSegment> nine(9, too_long[1]);
  nine[0] = too_long[0];
  PackedPair q(4, virtio::EventIdx::kNo, Indirect::kYes);
  BOOST_TEST(q.drv->add(nine, 1).error().code == Errc::kResourceExhausted);  // max_indirect 8
  // Without indirect tables a chain takes one slot per buffer.
  PackedPair d(4, virtio::EventIdx::kNo, Indirect::kNo);
  BOOST_REQUIRE(d.drv->add(three, 1).has_value());
  BOOST_TEST(d.drv->free_descriptors() == 1u);
  BOOST_TEST(d.drv->add(three, 2).error().code == Errc::kResourceExhausted);
}

BOOST_AUTO_TEST_CASE(positions_carry_the_wrap_counter_in_bit_15) {
  PackedPair p(4, virtio::EventIdx::kNo, Indirect::kNo);
  BOOST_TEST(p.drv->start_idx() == 0x8000u);
  BOOST_TEST(p.drv->avail_idx() == 0x8000u);
  const auto four = p.chain(1, 4);
  BOOST_REQUIRE(p.drv->add(four, 1).has_value());
  BOOST_TEST(p.drv->avail_idx() == 0x8000u);  // not yet published
  BOOST_REQUIRE(p.drv->kick().has_value());
  BOOST_TEST(p.drv->avail_idx() == 0x0000u);  // a whole lap: offset 0, wrap counter 0
  auto c = p.dev->pop();
  BOOST_REQUIRE(c.has_value());
  p.dev->push_used(*c, 0);
  std::array<DriverCompletion, 2> out;
  BOOST_TEST(*p.drv->reap(out) == 1u);
  BOOST_TEST(p.drv->last_used_idx() == 0x0000u);
  // Creation checks what it is given.
  DriverQueueOptions o;
  o.layout = RingLayout::kPacked;
  o.size = 6;  // packed sizes need not be powers of two
  o.start_idx = packed_position(6, true);
  BOOST_TEST(DriverQueue::create(*p.arena, o).error().code == Errc::kInvalidArgument);
  o.start_idx = packed_position(5, false);
  BOOST_TEST(DriverQueue::create(*p.arena, o).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
