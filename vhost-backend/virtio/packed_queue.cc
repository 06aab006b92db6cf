// Packed virtqueue walker and used-descriptor writer (virtio 1.2, 2.8). The ring
// is shared with the guest, a separate agent: descriptor flags are loaded once
// through atomic_ref, the rest of a descriptor is copied once, and each fence
// below names the guest-side barrier it pairs with.
#include "vhost-backend/virtio/packed_queue.h"

#include "vhost-backend/virtio/ring_access.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "vhost-backend/base/check.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("virtio")

namespace viopool::virtio {
namespace {

using ring::aligned;
using ring::load16;
using ring::store16;

PackedDesc read_desc(const std::byte* table, std::uint32_t idx) noexcept {
  return ring::read_desc<PackedDesc>(table, idx);
}

std::uint16_t* flags_field(std::byte* ring, std::uint32_t idx) noexcept {
  return reinterpret_cast<std::uint16_t*>(ring + std::size_t{idx} * sizeof(PackedDesc) +
                                          offsetof(PackedDesc, flags));
}



// 2.8.1: available when AVAIL matches the driver's wrap counter and USED does not.
bool is_available(std::uint16_t flags, bool wrap) noexcept {
  const bool avail = (flags & kPackedDescAvail) != 0;
  const bool used = (flags & kPackedDescUsed) != 0;
  return avail == wrap && used != wrap;
}


// A ring position (idx, wrap) as a number mod 2 * size such that the slot after
// (size - 1, w) is (0, !w) and one more: the wrap counter is the high "digit".
// Takes any idx (a guest's off_wrap may hold one >= size) and reduces it.
std::uint32_t linear_position(std::uint32_t idx, bool wrap, std::uint32_t size) noexcept {
  return (idx + (wrap ? size : 0)) % (2 * size);
}

}  // namespace

Result<PackedQueue> PackedQueue::create(const PackedQueueConfig& config) {
  if (config.desc == nullptr || config.driver_event == nullptr || config.device_event == nullptr ||
      config.memory == nullptr) {
    return fail(Errc::kInvalidArgument, "packed queue config has a null pointer");
  }
  if (config.size == 0 || config.size > kMaxQueueSize) {
    return fail(Errc::kInvalidArgument, "packed queue size is not in 1..32768");
  }
  if (!aligned(config.desc, kPackedDescAlign) || !aligned(config.driver_event, kPackedEventAlign) ||
      !aligned(config.device_event, kPackedEventAlign)) {
    return fail(Errc::kInvalidArgument, "ring area misaligned");
  }
  // The positions come from the frontend (SET_VRING_BASE): a peer, so checked.
  if (config.last_avail_idx >= config.size || config.last_used_idx >= config.size) {
    return fail(Errc::kInvalidArgument, "packed ring position beyond the queue size");
  }
  const std::uint32_t two = 2 * config.size;
  const std::uint32_t outstanding =
      (linear_position(config.last_avail_idx, config.avail_wrap_counter, config.size) + two -
       linear_position(config.last_used_idx, config.used_wrap_counter, config.size)) %
      two;
  if (outstanding > config.size) {
    return fail(Errc::kInvalidArgument, "packed ring used position not within size of avail");
  }
  return PackedQueue(config);
}

PackedQueue::PackedQueue(const PackedQueueConfig& c) noexcept
    : desc_(c.desc),
      driver_event_(c.driver_event),
      device_event_(c.device_event),
      memory_(c.memory),
      size_(c.size),
      event_idx_(c.event_idx == EventIdx::kYes),
      last_avail_idx_(c.last_avail_idx),
      avail_wrap_(c.avail_wrap_counter),
      last_used_idx_(c.last_used_idx),
      used_wrap_(c.used_wrap_counter),
      log_id_(c.log_id) {}

std::uint32_t PackedQueue::linear(std::uint32_t idx, bool wrap) const noexcept {
  return linear_position(idx, wrap, size_);
}

std::uint32_t PackedQueue::outstanding_slots() const noexcept {
  return (linear(last_avail_idx_, avail_wrap_) + 2 * size_ - linear(last_used_idx_, used_wrap_)) %
         (2 * size_);
}

unexpected PackedQueue::mark_broken(const char* what) noexcept {
  broken_error_ = make_error(Errc::kProtocol, what);
  VIOPOOL_LOG_ERROR_RL(
      "packed virtqueue broken, device needs reset: {} last_avail_idx={} wrap={} {}", what,
      last_avail_idx_, avail_wrap_, log_id_);
  return unexpected(broken_error_);
}

Result<bool> PackedQueue::pop_into(DescChain& out) noexcept {
  if (broken()) [[unlikely]] {
    return unexpected(broken_error_);
  }
  // The head's flags are guest-written: read once here, checked for
  // availability, then handed to walk_chain which uses this value only.
  const std::uint16_t head_flags = load16(flags_field(desc_, last_avail_idx_));
  if (!is_available(head_flags, avail_wrap_)) {
    return false;
  }
  // Orders the head flags read above before the reads of the chain's other
  // fields and descriptors; pairs with the driver's write barrier between
  // writing the chain and storing the head descriptor's flags (2.8.21).
  std::atomic_thread_fence(std::memory_order_acquire);
  if (auto walked = walk_chain(head_flags, out); !walked) {
    return mark_broken(walked.error().what);
  }
  // desc_count is in 1..size_ (walk_chain stops at size_ slots), so one
  // subtraction brings the index back below size_.
  std::uint32_t next = std::uint32_t{last_avail_idx_} + out.desc_count();
  if (next >= size_) {
    next -= size_;
    avail_wrap_ = !avail_wrap_;
  }
  last_avail_idx_ = static_cast<std::uint16_t>(next);
  if (event_idx_ && notifications_) {
    // Keeps kicks coming while notifications are on. No fence: before sleeping
    // the device calls set_notifications(kEnabled), which rewrites this and fences.
    store_device_event(kPackedEventDesc, encode_packed_position(last_avail_idx_, avail_wrap_));
  }
  ++stats_.chains;
  if (!out.ok()) [[unlikely]] {
    ++stats_.bad_chains;
    VIOPOOL_LOG_WARN_RL("bad descriptor chain, to be completed with an error: {} id={} {}",
                        out.error().what, out.id(), log_id_);
  }
  return true;
}

Result<std::optional<DescChain>> PackedQueue::pop() noexcept { return pop_fresh(*this); }

Result<void> PackedQueue::walk_chain(std::uint16_t head_flags, DescChain& out) const noexcept {
  out.reset(0);
  std::uint32_t idx = last_avail_idx_;  // < size_: checked by create(), kept by pop_into
  bool wrap = avail_wrap_;
  std::uint32_t count = 0;
  bool seen_writable = false;
  for (;;) {
    // Every field of `d` is guest-written, copied once and validated below.
    PackedDesc d = read_desc(desc_, idx);
    if (count == 0) {
      // Use the flags value pop_into checked, not the copy's re-read.
      d.flags = head_flags;
    } else if (!is_available(d.flags, wrap)) {
      // The driver makes the whole chain available at once (2.8.6): a slot that
      // is not available means we cannot tell where this chain ends.
      return fail(Errc::kProtocol, "ring slot inside a chain is not available");
    }
    ++count;
    if (++idx == size_) {
      idx = 0;
      wrap = !wrap;
    }
    if ((d.flags & kDescIndirect) != 0) {
      // The spec has the device ignore kDescWrite on an indirect descriptor.
      if ((d.flags & kDescNext) != 0) {
        // Still follow NEXT: the ring slots it covers belong to this chain.
        out.set_error(Errc::kProtocol, "indirect descriptor with NEXT");
      } else {
        walk_indirect(d, out, seen_writable);
      }
    } else {
      add_buffer(d, out, seen_writable);
    }
    if ((d.flags & kDescNext) == 0) {
      // 2.8.6: the buffer id is in the chain's last descriptor. It indexes the
      // driver's state and comes back in the used descriptor, hence the check.
      if (d.id >= size_) {
        return fail(Errc::kProtocol, "buffer id beyond the queue size");
      }
      out.head_ = d.id;
      out.id_ = d.id;
      out.desc_count_ = static_cast<std::uint16_t>(count);  // <= size_ <= 32768
      return {};
    }
    if (count == size_) {
      return fail(Errc::kProtocol, "descriptor chain longer than the ring");
    }
  }
}

void PackedQueue::walk_indirect(const PackedDesc& d, DescChain& out,
                                bool& seen_writable) const noexcept {
  // d.len and d.addr are guest-written (copied once by walk_chain), checked here.
  if (d.len == 0 || d.len % sizeof(PackedDesc) != 0) {
    out.set_error(Errc::kProtocol, "indirect table length is 0 or not a multiple of 16");
    return;
  }
  const std::uint32_t entries = d.len / sizeof(PackedDesc);
  if (entries > std::max<std::uint32_t>(size_, kMaxIndirectEntries)) {
    out.set_error(Errc::kProtocol, "indirect table has more entries than the queue or 1024");
    return;
  }
  // One region only: the table is read through a single host pointer.
  auto mapped = memory_->translate(GuestAddr{d.addr}, d.len);
  if (!mapped) {
    out.set_error(Errc::kOutOfRange, "indirect table outside guest memory");
    return;
  }
  out.indirect_ = true;
  const std::byte* table = mapped->data();
  // 2.8.7: table entries follow each other (no `next`), all len / 16 of them are
  // used, and only kDescWrite is meaningful in them: NEXT and id are ignored.
  for (std::uint32_t i = 0; i < entries; ++i) {
    const PackedDesc e = read_desc(table, i);
    if ((e.flags & kDescIndirect) != 0) {
      // The driver must not set it here; we fail the chain rather than guess.
      out.set_error(Errc::kProtocol, "indirect descriptor inside an indirect table");
      return;
    }
    add_buffer(e, out, seen_writable);
  }
}

void PackedQueue::add_buffer(const PackedDesc& d, DescChain& out,
                             bool& seen_writable) const noexcept {
  const bool writable = (d.flags & kDescWrite) != 0;
  if (!writable && seen_writable) {
    out.set_error(Errc::kProtocol, "device-readable buffer after a device-writable one");
  }
  seen_writable = seen_writable || writable;
  // Zero-length buffers carry no bytes, so their address is never used.
  if (d.len != 0 && !memory_->contains(GuestAddr{d.addr}, d.len)) {
    out.set_error(Errc::kOutOfRange, "buffer outside guest memory");
  }
  out.append(GuestAddr{d.addr}, d.len, writable);
}

void PackedQueue::push_used(std::span<const PackedUsedElem> elems) noexcept {
  if (elems.empty()) {
    return;
  }
  std::uint16_t* first_flags_field = nullptr;
  std::uint16_t first_flags = 0;
  [[maybe_unused]] std::uint32_t total = 0;
  [[maybe_unused]] const std::uint32_t outstanding = outstanding_slots();
  for (const PackedUsedElem& e : elems) {
    // Our own values, from popped chains. Clamped so that a device bug can
    // neither stall the ring (0) nor skip past it; debug builds abort instead.
    VIOPOOL_ASSERT(e.id < size_);
    VIOPOOL_ASSERT(e.desc_count >= 1 && e.desc_count <= size_);
    const std::uint32_t skip = std::clamp<std::uint32_t>(e.desc_count, 1, size_);
    total += skip;
    std::byte* slot = desc_ + std::size_t{last_used_idx_} * sizeof(PackedDesc);
    // addr is unused in a used descriptor (2.8.4) and left as the driver wrote it.
    std::memcpy(slot + offsetof(PackedDesc, len), &e.len, sizeof(e.len));
    std::memcpy(slot + offsetof(PackedDesc, id), &e.id, sizeof(e.id));
    const std::uint16_t flags = used_wrap_ ? (kPackedDescAvail | kPackedDescUsed) : 0;
    std::uint16_t* flags_ptr = flags_field(desc_, last_used_idx_);
    if (first_flags_field == nullptr) {
      first_flags_field = flags_ptr;
      first_flags = flags;
    } else {
      // Not yet visible: the driver reads this slot only after the first
      // element's flags, which the release fence below orders after this store.
      store16(flags_ptr, flags);
    }
    std::uint32_t next = std::uint32_t{last_used_idx_} + skip;
    if (next >= size_) {
      next -= size_;
      used_wrap_ = !used_wrap_;
    }
    last_used_idx_ = static_cast<std::uint16_t>(next);
    ++stats_.used;
  }
  // A device cannot complete more ring slots than it popped.
  VIOPOOL_ASSERT(total <= outstanding);
  // Orders the device's writes to the buffers and every id/len/flags written
  // above before the first element's flags store that publishes the batch;
  // pairs with the driver's read barrier between seeing a used descriptor's
  // flags and reading its id and len (2.8.21).
  std::atomic_thread_fence(std::memory_order_release);
  store16(first_flags_field, first_flags);
  used_since_signal_ = true;
}

void PackedQueue::push_used(std::uint16_t id, std::uint32_t len,
                            std::uint16_t desc_count) noexcept {
  const PackedUsedElem elem{id, len, desc_count};
  push_used(std::span<const PackedUsedElem>(&elem, 1));
}

bool PackedQueue::need_notify() noexcept {
  // Orders the used flags stores of push_used() before the driver event load
  // below (store-load, hence a full fence); pairs with the driver's full barrier
  // between writing its event suppression structure and re-checking the next
  // used descriptor, so one side always sees the other's update.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint32_t old = signalled_used_;
  const bool old_valid = signalled_used_valid_;
  const bool pushed = used_since_signal_;
  const std::uint32_t now = linear(last_used_idx_, used_wrap_);
  signalled_used_ = now;
  signalled_used_valid_ = true;
  used_since_signal_ = false;
  // The driver event structure is guest-written: both fields read once, in one
  // 32-bit load (create() checked the 4-byte alignment). Any value is safe:
  // reserved flag bits are ignored and off_wrap only enters the comparison below.
  const std::uint32_t event =
      std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(driver_event_))
          .load(std::memory_order_relaxed);
  const auto off_wrap = static_cast<std::uint16_t>(event & 0xffff);
  const auto flags = static_cast<std::uint16_t>((event >> 16) & 0x3);
  bool notify = false;
  if (flags == kPackedEventDisable) {
    notify = false;
  } else if (flags == kPackedEventDesc && event_idx_) {
    // Notify if the descriptor at off_wrap was written since `old`: its position
    // lies in [old, now) going round the 2 * size position space.
    const std::uint32_t two = 2 * size_;
    const std::uint32_t target =
        linear(packed_position_index(off_wrap), packed_position_wrap(off_wrap));
    notify = !old_valid || (target + two - old) % two < (now + two - old) % two;
  } else {
    // ENABLE; also DESC without EVENT_IDX and the reserved value 3, where a
    // spurious interrupt is harmless and a lost one would hang the guest.
    notify = !old_valid || pushed;
  }
  if (notify) {
    ++stats_.notifies;
  }
  return notify;
}

void PackedQueue::store_device_event(std::uint16_t flags, std::uint16_t off_wrap) noexcept {
  // One 32-bit store (4-byte alignment checked by create()), so a driver that
  // reads the structure at once never sees DESC with a stale off_wrap.
  const std::uint32_t v = std::uint32_t{off_wrap} | (std::uint32_t{flags} << 16);
  std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(device_event_))
      .store(v, std::memory_order_relaxed);
}

void PackedQueue::set_notifications(Notifications n) noexcept {
  notifications_ = n == Notifications::kEnabled;
  if (!notifications_) {
    store_device_event(kPackedEventDisable, 0);
    return;
  }
  if (event_idx_) {
    // Kick when the driver makes the next slot we will pop available.
    store_device_event(kPackedEventDesc, encode_packed_position(last_avail_idx_, avail_wrap_));
  } else {
    store_device_event(kPackedEventEnable, 0);
  }
  // Orders the device event store above before the caller's re-read of the
  // next descriptor's flags in has_pending() (store-load, hence a full fence);
  // pairs with the driver's full barrier between making descriptors available
  // and reading the device event structure to decide whether to kick.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool PackedQueue::has_pending() const noexcept {
  if (broken()) {
    return false;
  }
  // Guest-written flags, read once; only the AVAIL/USED bits are looked at.
  return is_available(load16(flags_field(desc_, last_avail_idx_)), avail_wrap_);
}

}  // namespace viopool::virtio
