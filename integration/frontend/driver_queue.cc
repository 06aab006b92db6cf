// DriverQueue: split and packed ring driver side. Shared ring fields are
// accessed through std::atomic_ref so that each index or flags store and load
// has the ordering the virtio memory model asks of a driver (virtio 1.2,
// 2.7.13 and 2.7.7 for split, 2.8.21 and 2.8.10 for packed).
#include "integration/frontend/driver_queue.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace viopool::frontend {

namespace {

using virtio::VringDesc;
using virtio::VringUsedElem;

std::uint16_t load_acquire(std::uint16_t& f) noexcept {
  return std::atomic_ref<std::uint16_t>(f).load(std::memory_order_acquire);
}
std::uint16_t load_relaxed(std::uint16_t& f) noexcept {
  return std::atomic_ref<std::uint16_t>(f).load(std::memory_order_relaxed);
}
void store_release(std::uint16_t& f, std::uint16_t v) noexcept {
  std::atomic_ref<std::uint16_t>(f).store(v, std::memory_order_release);
}
void store_relaxed(std::uint16_t& f, std::uint16_t v) noexcept {
  std::atomic_ref<std::uint16_t>(f).store(v, std::memory_order_relaxed);
}
// Event suppression structures move as one 32-bit word, so neither side ever
// pairs new flags with a stale off_wrap.
std::uint32_t load_relaxed(std::uint32_t& f) noexcept {
  return std::atomic_ref<std::uint32_t>(f).load(std::memory_order_relaxed);
}
void store_relaxed(std::uint32_t& f, std::uint32_t v) noexcept {
  std::atomic_ref<std::uint32_t>(f).store(v, std::memory_order_relaxed);
}

// virtio 1.2, 2.7.10: with EVENT_IDX the other side wants a notification when
// the index moves from `old_idx` past `event` to `new_idx`.
bool need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old_idx) noexcept {
  return static_cast<std::uint16_t>(new_idx - event - 1) <
         static_cast<std::uint16_t>(new_idx - old_idx);
}

}  // namespace

Result<std::unique_ptr<DriverQueue>> DriverQueue::create(GuestMemoryArena& arena,
                                                         const DriverQueueOptions& o) {
  const bool packed = o.layout == RingLayout::kPacked;
  if (packed) {
    if (o.size == 0 || o.size > virtio::kMaxQueueSize) {
      return fail(Errc::kInvalidArgument, "packed queue size must be 1 to 32768");
    }
    if ((o.start_idx & 0x7fff) >= o.size) {
      return fail(Errc::kInvalidArgument, "packed start offset beyond the queue size");
    }
  } else if (o.size == 0 || (o.size & (o.size - 1)) != 0) {
    return fail(Errc::kInvalidArgument, "queue size must be a power of two");
  }
  if (o.indirect == Indirect::kYes && o.max_indirect == 0) {
    return fail(Errc::kInvalidArgument, "indirect tables need at least one entry");
  }
  std::unique_ptr<DriverQueue> q(new DriverQueue());
  q->arena_ = &arena;
  q->packed_ = packed;
  q->size_ = o.size;
  q->start_idx_ = o.start_idx;
  q->event_idx_ = o.event_idx == virtio::EventIdx::kYes;
  q->indirect_ = o.indirect == Indirect::kYes;
  q->max_indirect_ = o.max_indirect;

  // Each area on its own 4 KiB page (more than the 16/2/4-byte alignment the
  // spec requires), so the device's used-ring writes do not share a cache
  // line with the driver's avail-ring writes. Packed: the descriptor ring and
  // the driver / device event suppression structures (16 and 4 bytes aligned).
  auto desc = arena.alloc(virtio::desc_table_bytes(o.size), 4096);
  if (!desc) {
    return unexpected(desc.error());
  }
  q->desc_ = *desc;
  auto avail =
      arena.alloc(packed ? sizeof(PackedEventSuppress) : virtio::avail_ring_bytes(o.size), 4096);
  if (!avail) {
    return unexpected(avail.error());
  }
  q->avail_ = *avail;
  auto used =
      arena.alloc(packed ? sizeof(PackedEventSuppress) : virtio::used_ring_bytes(o.size), 4096);
  if (!used) {
    return unexpected(used.error());
  }
  q->used_ = *used;
  if (q->indirect_) {
    auto t = arena.alloc(std::uint64_t{o.size} * o.max_indirect * sizeof(VringDesc),
                         virtio::kDescTableAlign);
    if (!t) {
      return unexpected(t.error());
    }
    q->indirect_tables_ = *t;
  }

  q->kick_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  q->call_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->kick_fd_ < 0 || q->call_fd_ < 0) {
    return fail(Errc::kIo, "eventfd for the virtqueue failed", errno);
  }

  q->next_.resize(o.size);
  q->chain_len_.assign(o.size, 0);
  q->cookie_.assign(o.size, 0);
  for (std::uint16_t i = 0; i < o.size; ++i) {
    q->next_[i] = static_cast<std::uint16_t>(i + 1);
  }
  q->free_head_ = 0;
  q->num_free_ = o.size;
  if (packed) {
    q->packed_init();
    return q;
  }
  q->avail_shadow_ = o.start_idx;
  q->avail_published_ = o.start_idx;
  q->kicked_at_ = o.start_idx;
  q->last_used_ = o.start_idx;
  // Both indexes start at the vring base: backends (libvhost-user) read
  // used->idx when they get SET_VRING_ADDR and compare it with the base.
  store_relaxed(q->avail_idx_field(), o.start_idx);
  store_relaxed(q->used_idx_field(), o.start_idx);
  q->set_interrupts(virtio::Notifications::kEnabled);
  return q;
}

DriverQueue::~DriverQueue() {
  if (kick_fd_ >= 0) {
    ::close(kick_fd_);
  }
  if (call_fd_ >= 0) {
    ::close(call_fd_);
  }
  if (arena_ != nullptr) {
    arena_->free(indirect_tables_);
    arena_->free(used_);
    arena_->free(avail_);
    arena_->free(desc_);
  }
}

std::uint64_t DriverQueue::desc_user_addr() const noexcept { return arena_->user_addr(desc_.gpa); }
std::uint64_t DriverQueue::avail_user_addr() const noexcept {
  return arena_->user_addr(avail_.gpa);
}
std::uint64_t DriverQueue::used_user_addr() const noexcept { return arena_->user_addr(used_.gpa); }

VringDesc* DriverQueue::desc_table() const noexcept {
  return reinterpret_cast<VringDesc*>(desc_.host);
}
std::uint16_t* DriverQueue::avail_ring() const noexcept {
  return reinterpret_cast<std::uint16_t*>(avail_.host + virtio::kAvailRingOffset);
}
std::uint16_t& DriverQueue::avail_flags_field() const noexcept {
  return *reinterpret_cast<std::uint16_t*>(avail_.host);
}
std::uint16_t& DriverQueue::avail_idx_field() const noexcept {
  return *reinterpret_cast<std::uint16_t*>(avail_.host + offsetof(virtio::VringAvail, idx));
}
std::uint16_t& DriverQueue::used_event_field() const noexcept {
  return *reinterpret_cast<std::uint16_t*>(avail_.host + virtio::used_event_offset(size_));
}
std::uint16_t& DriverQueue::used_flags_field() const noexcept {
  return *reinterpret_cast<std::uint16_t*>(used_.host);
}
std::uint16_t& DriverQueue::used_idx_field() const noexcept {
  return *reinterpret_cast<std::uint16_t*>(used_.host + offsetof(virtio::VringUsed, idx));
}
std::uint16_t& DriverQueue::avail_event_field() const noexcept {
  return *reinterpret_cast<std::uint16_t*>(used_.host + virtio::avail_event_offset(size_));
}

Result<void> DriverQueue::add(std::span<const DriverSegment> segs, std::uint64_t cookie) noexcept {
  if (broken_) {
    return fail(Errc::kProtocol, "virtqueue is broken");
  }
  if (segs.empty() || segs.size() > 0xffff) {
    return fail(Errc::kInvalidArgument, "a chain needs 1 to 65535 buffers");
  }
  bool seen_writable = false;
  for (const auto& s : segs) {
    if (s.len == 0) {
      return fail(Errc::kInvalidArgument, "zero-length buffer in a chain");
    }
    if (s.writable == Writable::kYes) {
      seen_writable = true;
    } else if (seen_writable) {
      return fail(Errc::kInvalidArgument, "readable buffer after a writable one");
    }
  }
  if (packed_) {
    return packed_add(segs, cookie);
  }
  const bool use_indirect = indirect_ && segs.size() > 1;
  const std::size_t ndesc = use_indirect ? 1 : segs.size();
  if (use_indirect && segs.size() > max_indirect_) {
    return fail(Errc::kResourceExhausted, "chain longer than the indirect table");
  }
  if (ndesc > num_free_) {
    return fail(Errc::kResourceExhausted, "no free descriptors");
  }

  VringDesc* table = desc_table();
  const std::uint16_t head = free_head_;
  if (use_indirect) {
    // The table belongs to the head descriptor and is reused with it.
    auto* ind = reinterpret_cast<VringDesc*>(
        indirect_tables_.host + std::uint64_t{head} * max_indirect_ * sizeof(VringDesc));
    for (std::size_t i = 0; i < segs.size(); ++i) {
      const bool last = i + 1 == segs.size();
      ind[i] = VringDesc{
          segs[i].addr.value, segs[i].len,
          static_cast<std::uint16_t>((segs[i].writable == Writable::kYes ? virtio::kDescWrite : 0) |
                                     (last ? 0 : virtio::kDescNext)),
          static_cast<std::uint16_t>(last ? 0 : i + 1)};
    }
    const GuestAddr ind_gpa{indirect_tables_.gpa.value +
                            std::uint64_t{head} * max_indirect_ * sizeof(VringDesc)};
    table[head] =
        VringDesc{ind_gpa.value, static_cast<std::uint32_t>(segs.size() * sizeof(VringDesc)),
                  virtio::kDescIndirect, 0};
    free_head_ = next_[head];
  } else {
    std::uint16_t idx = head;
    for (std::size_t i = 0; i < segs.size(); ++i) {
      const bool last = i + 1 == segs.size();
      const std::uint16_t nxt = next_[idx];
      table[idx] = VringDesc{
          segs[i].addr.value, segs[i].len,
          static_cast<std::uint16_t>((segs[i].writable == Writable::kYes ? virtio::kDescWrite : 0) |
                                     (last ? 0 : virtio::kDescNext)),
          static_cast<std::uint16_t>(last ? 0 : nxt)};
      if (last) {
        free_head_ = nxt;
      } else {
        idx = nxt;
      }
    }
  }
  num_free_ = static_cast<std::uint16_t>(num_free_ - ndesc);
  chain_len_[head] = static_cast<std::uint16_t>(ndesc);
  cookie_[head] = cookie;
  ++in_flight_;

  // The slot itself is plain memory: the device reads it only after it sees
  // avail->idx move, and publish() orders this write before that store.
  avail_ring()[avail_shadow_ & (size_ - 1)] = head;
  ++avail_shadow_;
  return {};
}

void DriverQueue::publish() noexcept {
  if (packed_) {
    packed_publish();
    return;
  }
  if (avail_published_ == avail_shadow_) {
    return;
  }
  // Release: the descriptors and avail ring slots written by add() become
  // visible to the device before the new avail->idx does.
  store_release(avail_idx_field(), avail_shadow_);
  avail_published_ = avail_shadow_;
}

Result<bool> DriverQueue::kick() noexcept {
  if (packed_) {
    return packed_kick();
  }
  publish();
  if (kicked_at_ == avail_published_) {
    return false;  // nothing new since the last decision
  }
  // Full fence: orders our avail->idx store before the load of the device's
  // suppression field below (store->load). Without it we could read a stale
  // NO_NOTIFY/avail_event while the device reads a stale avail->idx, and
  // both sides would go to sleep.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool notify;
  if (event_idx_) {
    const std::uint16_t event = load_relaxed(avail_event_field());
    notify = need_event(event, avail_published_, kicked_at_);
  } else {
    notify = (load_relaxed(used_flags_field()) & virtio::kUsedFlagNoNotify) == 0;
  }
  kicked_at_ = avail_published_;
  if (!notify) {
    ++kicks_suppressed_;
    return false;
  }
  return notify_device();
}

Result<bool> DriverQueue::notify_device() noexcept {
  const std::uint64_t one = 1;
  for (;;) {
    const ssize_t n = ::write(kick_fd_, &one, sizeof(one));
    if (n == sizeof(one)) {
      break;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      break;  // counter saturated: the device has a kick pending anyway
    }
    return fail(Errc::kIo, "writing the kick eventfd failed", n < 0 ? errno : 0);
  }
  ++kicks_;
  return true;
}

bool DriverQueue::has_used() const noexcept {
  if (packed_) {
    return packed_has_used();
  }
  return load_relaxed(used_idx_field()) != last_used_;
}

void DriverQueue::free_chain(std::uint16_t head) noexcept {
  std::uint16_t n = chain_len_[head];
  // Walk our own links (next_), not the shared table, which the device could
  // have rewritten.
  std::uint16_t tail = head;
  for (std::uint16_t i = 1; i < n; ++i) {
    tail = next_[tail];
  }
  next_[tail] = free_head_;
  free_head_ = head;
  num_free_ = static_cast<std::uint16_t>(num_free_ + n);
  chain_len_[head] = 0;
  --in_flight_;
}

Result<std::size_t> DriverQueue::reap(std::span<DriverCompletion> out) noexcept {
  if (broken_) {
    return fail(Errc::kProtocol, "virtqueue is broken");
  }
  if (packed_) {
    return packed_reap(out);
  }
  // Acquire: the used elements the device wrote before moving used->idx are
  // visible once we see the new index.
  const std::uint16_t used_idx = load_acquire(used_idx_field());
  const auto pending = static_cast<std::uint16_t>(used_idx - last_used_);
  if (pending > in_flight_) {
    broken_ = true;
    return fail(Errc::kProtocol, "device moved used->idx past the chains in flight");
  }
  const auto* ring = reinterpret_cast<const VringUsedElem*>(used_.host + virtio::kUsedRingOffset);
  std::size_t n = 0;
  while (n < out.size() && last_used_ != used_idx) {
    const VringUsedElem e = ring[last_used_ & (size_ - 1)];
    if (e.id >= size_ || chain_len_[e.id] == 0) {
      broken_ = true;
      return fail(Errc::kProtocol, "device returned a descriptor that is not in flight");
    }
    out[n++] = DriverCompletion{cookie_[e.id], e.len};
    free_chain(static_cast<std::uint16_t>(e.id));
    ++last_used_;
  }
  if (n > 0 && event_idx_) {
    // Keep used_event where the device reaches it: right at last_used_ when
    // interrupts are wanted, half the index space away when they are not.
    store_relaxed(used_event_field(),
                  interrupts_ ? last_used_ : static_cast<std::uint16_t>(last_used_ + 0x7fff));
  }
  return n;
}

void DriverQueue::set_interrupts(virtio::Notifications n) noexcept {
  interrupts_ = n == virtio::Notifications::kEnabled;
  if (packed_) {
    packed_write_driver_event();
  } else if (event_idx_) {
    // With EVENT_IDX the device ignores the flags and compares used_event.
    store_relaxed(used_event_field(),
                  interrupts_ ? last_used_ : static_cast<std::uint16_t>(last_used_ + 0x7fff));
  } else {
    store_relaxed(avail_flags_field(), interrupts_ ? 0 : virtio::kAvailFlagNoInterrupt);
  }
}

Result<bool> DriverQueue::wait_used(std::chrono::milliseconds limit) noexcept {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  // Re-arms at last_used_ too with EVENT_IDX (used_event / off_wrap).
  if (!interrupts_ || event_idx_) {
    set_interrupts(virtio::Notifications::kEnabled);
  }
  for (;;) {
    // Full fence: the used_event / flags store above must be visible before we
    // re-read used->idx, or a completion written in between would neither be
    // seen here nor signalled (the device read the old used_event).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (has_used()) {
      return true;
    }
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      return false;
    }
    pollfd p{call_fd_, POLLIN, 0};
    const int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) {
      return fail(Errc::kIo, "poll on the call eventfd failed", errno);
    }
    if (r > 0) {
      std::uint64_t v = 0;
      // Drains the counter; EAGAIN (already drained) is harmless.
      (void)!::read(call_fd_, &v, sizeof(v));
    }
  }
}

// ---- Packed ring (virtio 1.2, 2.8) ----
//
// The driver fills ring slots in order from avail_shadow_, flipping its wrap
// counter each time it passes the end; the device writes one used descriptor
// per chain, in order from its own used position, and moves on by the chain's
// slot count. So the slots between last_used_ and avail_shadow_ are exactly
// the ones in flight, and num_free_ is the rest of the ring.

namespace {

constexpr std::uint16_t kOffsetMask = 0x7fff;

std::uint16_t position_offset(std::uint16_t pos) noexcept { return pos & kOffsetMask; }
bool position_wrap(std::uint16_t pos) noexcept { return (pos & kPackedWrapBit) != 0; }

// AVAIL/USED bits of a descriptor the driver makes available in a lap with
// wrap counter `wrap` (2.8.1: AVAIL = wrap, USED = !wrap).
std::uint16_t avail_bits(bool wrap) noexcept { return wrap ? kPackedDescAvail : kPackedDescUsed; }

// A descriptor the device has used in the lap with used wrap counter `wrap`.
bool is_used(std::uint16_t flags, bool wrap) noexcept {
  const bool avail = (flags & kPackedDescAvail) != 0;
  const bool used = (flags & kPackedDescUsed) != 0;
  return avail == used && used == wrap;
}

}  // namespace

PackedDesc* DriverQueue::packed_ring() const noexcept {
  return reinterpret_cast<PackedDesc*>(desc_.host);
}
std::uint32_t& DriverQueue::driver_event_word() const noexcept {
  return *reinterpret_cast<std::uint32_t*>(avail_.host);
}
std::uint32_t& DriverQueue::device_event_word() const noexcept {
  return *reinterpret_cast<std::uint32_t*>(used_.host);
}

void DriverQueue::packed_init() noexcept {
  const std::uint16_t start = position_offset(start_idx_);
  const bool wrap = position_wrap(start_idx_);
  // Slots before the start offset look used in this lap, the others used in
  // the previous one: none is available to the device, none is a completion
  // for us. For a fresh ring (offset 0, wrap 1) that is the zeroed ring. The
  // device reads nothing before SET_VRING_ADDR, so plain stores do.
  const std::uint16_t used_this_lap = wrap ? (kPackedDescAvail | kPackedDescUsed) : 0;
  const std::uint16_t used_last_lap = wrap ? 0 : (kPackedDescAvail | kPackedDescUsed);
  PackedDesc* ring = packed_ring();
  for (std::uint16_t i = 0; i < size_; ++i) {
    ring[i].flags = i < start ? used_this_lap : used_last_lap;
  }
  avail_shadow_ = start_idx_;
  avail_published_ = start_idx_;
  kicked_at_ = start_idx_;
  last_used_ = start_idx_;
  pending_off_.assign(size_, 0);
  pending_flags_.assign(size_, 0);
  // The device event area stays zeroed: kPackedEventEnable until the device
  // says otherwise.
  set_interrupts(virtio::Notifications::kEnabled);
}

Result<void> DriverQueue::packed_add(std::span<const DriverSegment> segs,
                                     std::uint64_t cookie) noexcept {
  const bool use_indirect = indirect_ && segs.size() > 1;
  const std::size_t ndesc = use_indirect ? 1 : segs.size();
  if (use_indirect && segs.size() > max_indirect_) {
    return fail(Errc::kResourceExhausted, "chain longer than the indirect table");
  }
  if (ndesc > num_free_) {
    return fail(Errc::kResourceExhausted, "no free descriptors");
  }
  // Buffer ids cannot run out before ring slots do: every chain in flight
  // holds at least one slot, and there are as many ids as slots.
  const std::uint16_t id = free_head_;
  free_head_ = next_[id];

  PackedDesc* ring = packed_ring();
  std::uint16_t off = position_offset(avail_shadow_);
  bool wrap = position_wrap(avail_shadow_);
  const std::uint16_t head_off = off;
  std::uint16_t head_flags = 0;
  auto advance = [&] {
    if (++off == size_) {
      off = 0;
      wrap = !wrap;
    }
  };
  if (use_indirect) {
    // The table belongs to the buffer id and is reused with it. In a table
    // only WRITE counts (2.8.19); entries follow each other without NEXT.
    const std::uint64_t table_off = std::uint64_t{id} * max_indirect_ * sizeof(PackedDesc);
    auto* ind = reinterpret_cast<PackedDesc*>(indirect_tables_.host + table_off);
    for (std::size_t i = 0; i < segs.size(); ++i) {
      ind[i] =
          PackedDesc{segs[i].addr.value, segs[i].len, 0,
                     segs[i].writable == Writable::kYes ? virtio::kDescWrite : std::uint16_t{0}};
    }
    PackedDesc& d = ring[off];
    d.addr = indirect_tables_.gpa.value + table_off;
    d.len = static_cast<std::uint32_t>(segs.size() * sizeof(PackedDesc));
    d.id = id;
    head_flags = static_cast<std::uint16_t>(virtio::kDescIndirect | avail_bits(wrap));
    advance();
  } else {
    for (std::size_t i = 0; i < segs.size(); ++i) {
      const bool last = i + 1 == segs.size();
      const auto flags =
          static_cast<std::uint16_t>((segs[i].writable == Writable::kYes ? virtio::kDescWrite : 0) |
                                     (last ? 0 : virtio::kDescNext) | avail_bits(wrap));
      PackedDesc& d = ring[off];
      d.addr = segs[i].addr.value;
      d.len = segs[i].len;
      d.id = id;  // the device reads it from the last one; every slot carries it
      if (i == 0) {
        head_flags = flags;  // stored by publish(), after everything else
      } else {
        // The device reads this slot only after it has seen the head's flags,
        // whose release store in publish() orders this one before it.
        store_relaxed(d.flags, flags);
      }
      advance();
    }
  }
  num_free_ = static_cast<std::uint16_t>(num_free_ - ndesc);
  chain_len_[id] = static_cast<std::uint16_t>(ndesc);
  cookie_[id] = cookie;
  ++in_flight_;
  pending_off_[pending_] = head_off;
  pending_flags_[pending_] = head_flags;
  ++pending_;
  added_since_kick_ += static_cast<std::uint32_t>(ndesc);
  avail_shadow_ = packed_position(off, wrap);
  return {};
}

void DriverQueue::packed_publish() noexcept {
  PackedDesc* ring = packed_ring();
  // Last head first: the device walks the ring in order and stops at the first
  // slot it does not see as available, so the whole batch appears at once
  // when the first pending head's flags land.
  for (std::uint16_t i = pending_; i-- > 0;) {
    // Release: the chain's other descriptors, its indirect table and its
    // buffers are visible to the device before its head turns available.
    store_release(ring[pending_off_[i]].flags, pending_flags_[i]);
  }
  pending_ = 0;
  avail_published_ = avail_shadow_;
}

Result<bool> DriverQueue::packed_kick() noexcept {
  packed_publish();
  if (added_since_kick_ == 0) {
    return false;  // nothing new since the last decision
  }
  // Full fence: orders our head flag stores before the load of the device
  // event suppression structure (store->load), as in the split kick().
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint32_t ev = load_relaxed(device_event_word());
  const auto off_wrap = static_cast<std::uint16_t>(ev & 0xffff);
  const auto flags = static_cast<std::uint16_t>(ev >> 16);
  bool notify = true;  // ENABLE, or a mode the device may not use: kicking is always safe
  if (flags == kPackedEventDisable) {
    notify = false;
  } else if (flags == kPackedEventDesc && event_idx_ && added_since_kick_ < 0x8000) {
    // One 16-bit index space where this lap's offsets are 0..size-1 and the
    // previous lap's -size..-1; the device's off_wrap is never ahead of us.
    const std::uint16_t new_idx = position_offset(avail_published_);
    std::uint16_t event = position_offset(off_wrap);
    if (position_wrap(off_wrap) != position_wrap(avail_published_)) {
      event = static_cast<std::uint16_t>(event - size_);
    }
    const auto old_idx = static_cast<std::uint16_t>(new_idx - added_since_kick_);
    notify = need_event(event, new_idx, old_idx);
  }
  added_since_kick_ = 0;
  kicked_at_ = avail_published_;
  if (!notify) {
    ++kicks_suppressed_;
    return false;
  }
  return notify_device();
}

bool DriverQueue::packed_has_used() const noexcept {
  const std::uint16_t flags = load_relaxed(packed_ring()[position_offset(last_used_)].flags);
  return is_used(flags, position_wrap(last_used_));
}

Result<std::size_t> DriverQueue::packed_reap(std::span<DriverCompletion> out) noexcept {
  PackedDesc* ring = packed_ring();
  std::uint32_t off = position_offset(last_used_);
  bool wrap = position_wrap(last_used_);
  std::size_t n = 0;
  while (n < out.size()) {
    PackedDesc& d = ring[off];
    // Acquire: the id and len the device wrote, and the buffers it filled,
    // are visible once we see its flags.
    if (!is_used(load_acquire(d.flags), wrap)) {
      break;
    }
    const std::uint16_t id = d.id;
    const std::uint32_t len = d.len;
    // The id comes from the device: check it against our own state before it
    // indexes anything.
    if (id >= size_ || chain_len_[id] == 0) {
      broken_ = true;
      last_used_ = packed_position(static_cast<std::uint16_t>(off), wrap);
      return fail(Errc::kProtocol, "device returned a buffer id that is not in flight");
    }
    out[n++] = DriverCompletion{cookie_[id], len};
    const std::uint16_t slots = chain_len_[id];
    next_[id] = free_head_;
    free_head_ = id;
    num_free_ = static_cast<std::uint16_t>(num_free_ + slots);
    chain_len_[id] = 0;
    --in_flight_;
    // The next used descriptor comes after as many slots as this chain took.
    off += slots;
    if (off >= size_) {
      off -= size_;
      wrap = !wrap;
    }
  }
  last_used_ = packed_position(static_cast<std::uint16_t>(off), wrap);
  if (n > 0 && event_idx_ && interrupts_) {
    packed_write_driver_event();  // off_wrap follows last_used_
  }
  return n;
}

void DriverQueue::packed_write_driver_event() noexcept {
  // DESC asks for an interrupt once the device writes the used descriptor at
  // last_used_, i.e. the next completion; DISABLE works with or without
  // EVENT_IDX, so it is all busy-polling needs.
  std::uint16_t flags = kPackedEventDisable;
  std::uint16_t off_wrap = 0;
  if (interrupts_) {
    flags = event_idx_ ? kPackedEventDesc : kPackedEventEnable;
    off_wrap = event_idx_ ? last_used_ : 0;
  }
  store_relaxed(driver_event_word(), std::uint32_t{off_wrap} | std::uint32_t{flags} << 16);
}

}  // namespace viopool::frontend
