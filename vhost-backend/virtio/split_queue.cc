// Split virtqueue walker and used-ring writer. The ring is shared with the
// guest, a separate agent: fields it writes are loaded once through atomic_ref
// (ring indices) or copied once (descriptors), and each fence below names the
// guest-side barrier it pairs with.
#include "vhost-backend/virtio/split_queue.h"

#include "vhost-backend/virtio/ring_access.h"

#include <atomic>
#include <bit>
#include <cstring>

#include "vhost-backend/base/check.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("virtio")

namespace viopool::virtio {
namespace {

using ring::aligned;
using ring::load16;
using ring::store16;

VringDesc read_desc(const std::byte* table, std::uint32_t idx) noexcept {
  return ring::read_desc<VringDesc>(table, idx);
}




}  // namespace

// ---- DescChain ----

void DescChain::reset(std::uint16_t head) noexcept {
  head_ = head;
  id_ = head;
  desc_count_ = 1;
  count_ = 0;
  readable_count_ = 0;
  indirect_ = false;
  readable_bytes_ = 0;
  writable_bytes_ = 0;
  error_ = make_error(Errc::kOk, "");
}

void DescChain::set_error(Errc code, const char* what) noexcept {
  if (ok()) {
    error_ = make_error(code, what);
  }
}

void DescChain::append(GuestAddr addr, std::uint32_t len, bool device_writable) noexcept {
  if (!ok()) {
    return;
  }
  if (count_ == kMaxBuffers) {
    // A legal chain (the spec allows up to the queue size) that we cannot hold.
    set_error(Errc::kUnsupported, "chain has more buffers than DescChain::kMaxBuffers");
    return;
  }
  // Field by field: GCC builds a ChainBuffer temporary on the stack and copies
  // it with two overlapping loads that defeat store forwarding, a stall on
  // every buffer of every chain.
  ChainBuffer& b = buffers_[count_++];
  b.addr = addr;
  b.len = len;
  b.device_writable = device_writable;
  // At most kMaxBuffers * (2^32 - 1) in total: no 64-bit overflow.
  if (device_writable) {
    writable_bytes_ += len;
  } else {
    // walk_chain rejects readable-after-writable, so readable buffers are a prefix.
    ++readable_count_;
    readable_bytes_ += len;
  }
}

// ---- SplitQueue ----

Result<SplitQueue> SplitQueue::create(const SplitQueueConfig& config) {
  if (config.desc == nullptr || config.avail == nullptr || config.used == nullptr ||
      config.memory == nullptr) {
    return fail(Errc::kInvalidArgument, "split queue config has a null pointer");
  }
  if (config.size == 0 || config.size > kMaxQueueSize || !std::has_single_bit(config.size)) {
    return fail(Errc::kInvalidArgument, "queue size is not a power of two in 1..32768");
  }
  if (!aligned(config.desc, kDescTableAlign) || !aligned(config.avail, kAvailAlign) ||
      !aligned(config.used, kUsedAlign)) {
    return fail(Errc::kInvalidArgument, "ring area misaligned");
  }
  return SplitQueue(config);
}

SplitQueue::SplitQueue(const SplitQueueConfig& c) noexcept
    : desc_(c.desc),
      avail_flags_(reinterpret_cast<std::uint16_t*>(c.avail + offsetof(VringAvail, flags))),
      avail_idx_(reinterpret_cast<std::uint16_t*>(c.avail + offsetof(VringAvail, idx))),
      avail_ring_(reinterpret_cast<std::uint16_t*>(c.avail + kAvailRingOffset)),
      used_event_(reinterpret_cast<std::uint16_t*>(c.avail + used_event_offset(c.size))),
      used_flags_(reinterpret_cast<std::uint16_t*>(c.used + offsetof(VringUsed, flags))),
      used_idx_(reinterpret_cast<std::uint16_t*>(c.used + offsetof(VringUsed, idx))),
      used_ring_(c.used + kUsedRingOffset),
      avail_event_(reinterpret_cast<std::uint16_t*>(c.used + avail_event_offset(c.size))),
      memory_(c.memory),
      size_(c.size),
      mask_(static_cast<std::uint16_t>(c.size - 1)),
      event_idx_(c.event_idx == EventIdx::kYes),
      last_avail_idx_(c.last_avail_idx),
      avail_shadow_(c.last_avail_idx),
      last_used_idx_(c.last_used_idx),
      log_id_(c.log_id) {}

unexpected SplitQueue::mark_broken(const char* what) noexcept {
  broken_error_ = make_error(Errc::kProtocol, what);
  VIOPOOL_LOG_ERROR_RL("virtqueue broken, device needs reset: {} last_avail_idx={} {}", what,
                       last_avail_idx_, log_id_);
  return unexpected(broken_error_);
}

void SplitQueue::prefetch_ahead() const noexcept {
  // The driver wrote the next chains' descriptors and first buffers (the
  // request headers) on another CPU: ask for them before they are needed,
  // descriptors four chains ahead, headers two ahead (their descriptors
  // asked for two pops ago), so the misses overlap instead of stalling the
  // walk one after the other. Hints only: nothing read here is trusted.
  constexpr std::uint16_t kDescAhead = 4;
  constexpr std::uint16_t kHeaderAhead = 2;
  const auto pending = static_cast<std::uint16_t>(avail_shadow_ - last_avail_idx_);
  if (pending > kDescAhead) {
    const std::uint16_t h =
        load16(&avail_ring_[static_cast<std::uint16_t>(last_avail_idx_ + kDescAhead) & mask_]);
    if (h < size_) {
      __builtin_prefetch(desc_ + std::size_t{h} * sizeof(VringDesc));
    }
  }
  if (pending > kHeaderAhead) {
    const std::uint16_t h =
        load16(&avail_ring_[static_cast<std::uint16_t>(last_avail_idx_ + kHeaderAhead) & mask_]);
    if (h < size_) {
      // The first buffer, or the indirect table that describes it.
      const VringDesc d = read_desc(desc_, h);
      if (auto b = memory_->translate(GuestAddr{d.addr}, std::min<std::uint32_t>(d.len, 128));
          b && b->size() > 64) {
        __builtin_prefetch(b->data());
        __builtin_prefetch(b->data() + 64);
      } else if (b && !b->empty()) {
        __builtin_prefetch(b->data());
      }
    }
  }
}

Result<bool> SplitQueue::pop_into(DescChain& out) noexcept {
  if (broken()) [[unlikely]] {
    return unexpected(broken_error_);
  }
  if (avail_shadow_ == last_avail_idx_) {
    // Everything seen so far is popped: look for more. avail->idx is guest-written,
    // read once here and validated against the queue size before it is kept.
    const std::uint16_t avail_idx = load16(avail_idx_);
    if (avail_idx == last_avail_idx_) {
      return false;
    }
    if (static_cast<std::uint16_t>(avail_idx - last_avail_idx_) > size_) {
      return mark_broken("avail index moved more than the queue size");
    }
    // Orders the avail->idx read above before the reads of the ring slots and
    // descriptors it publishes; pairs with the driver's write barrier between
    // filling them and storing avail->idx.
    std::atomic_thread_fence(std::memory_order_acquire);
    avail_shadow_ = avail_idx;
  }
  // The slot lies below avail_shadow_, so the fence above covers it. The head is
  // guest-written: read once, checked against the queue size here.
  const std::uint16_t head = load16(&avail_ring_[last_avail_idx_ & mask_]);
  if (head >= size_) {
    return mark_broken("avail ring head index out of range");
  }
  prefetch_ahead();
  if (auto walked = walk_chain(head, out); !walked) {
    return mark_broken(walked.error().what);
  }
  ++last_avail_idx_;
  if (event_idx_ && notifications_) {
    // Keeps kicks coming while notifications are on. No fence: before sleeping the
    // device calls set_notifications(kEnabled), which rewrites this and fences.
    store16(avail_event_, last_avail_idx_);
  }
  ++stats_.chains;
  if (!out.ok()) [[unlikely]] {
    ++stats_.bad_chains;
    VIOPOOL_LOG_WARN_RL("bad descriptor chain, to be completed with an error: {} head={} {}",
                        out.error().what, head, log_id_);
  }
  return true;
}

Result<std::optional<DescChain>> SplitQueue::pop() noexcept { return pop_fresh(*this); }

Result<void> SplitQueue::walk_chain(std::uint16_t head, DescChain& out) const noexcept {
  out.reset(head);
  const std::byte* table = desc_;
  std::uint32_t table_size = size_;
  std::uint32_t idx = head;  // < size_: checked by pop_into
  std::uint32_t visited = 0;
  bool seen_writable = false;
  for (;;) {
    // A chain with more descriptors than its table holds must revisit one.
    if (visited == table_size) {
      return fail(Errc::kProtocol, "descriptor loop");
    }
    ++visited;
    // idx < table_size: the head was checked by pop_into, every `next` below.
    // All fields of `d` are guest-written and validated here before use.
    const VringDesc d = read_desc(table, idx);
    if ((d.flags & kDescIndirect) != 0) {
      // The spec has the device ignore kDescWrite on an indirect descriptor.
      if (out.indirect()) {
        out.set_error(Errc::kProtocol, "indirect descriptor inside an indirect table");
        return {};
      }
      if ((d.flags & kDescNext) != 0) {
        out.set_error(Errc::kProtocol, "indirect descriptor with NEXT");
        return {};
      }
      if (d.len == 0 || d.len % sizeof(VringDesc) != 0) {
        out.set_error(Errc::kProtocol, "indirect table length is 0 or not a multiple of 16");
        return {};
      }
      const std::uint32_t entries = d.len / sizeof(VringDesc);
      if (entries > std::max<std::uint32_t>(size_, kMaxIndirectEntries)) {
        out.set_error(Errc::kProtocol, "indirect table has more entries than the queue or 1024");
        return {};
      }
      // One region only: the table is read through a single host pointer.
      auto mapped = memory_->translate(GuestAddr{d.addr}, d.len);
      if (!mapped) {
        out.set_error(Errc::kOutOfRange, "indirect table outside guest memory");
        return {};
      }
      table = mapped->data();
      table_size = entries;  // >= 1: len checked above
      idx = 0;
      visited = 0;
      out.indirect_ = true;
      continue;
    }
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
    if ((d.flags & kDescNext) == 0) {
      return {};
    }
    if (d.next >= table_size) {
      return fail(Errc::kProtocol, "descriptor next index out of range");
    }
    idx = d.next;
  }
}

void SplitQueue::write_used(std::uint32_t id, std::uint32_t len) noexcept {
  // Our own value (a head from a popped chain), not the guest's.
  VIOPOOL_ASSERT(id < size_);
  const VringUsedElem elem{id, len};
  const auto slot = static_cast<std::size_t>(last_used_idx_ & mask_);
  std::memcpy(used_ring_ + slot * sizeof(VringUsedElem), &elem, sizeof(elem));
  ++last_used_idx_;
  ++stats_.used;
}

void SplitQueue::publish_used() noexcept {
  // Orders the used ring entries written above before the used->idx store that
  // publishes them; pairs with the driver's read barrier between loading
  // used->idx and reading the entries.
  std::atomic_thread_fence(std::memory_order_release);
  store16(used_idx_, last_used_idx_);
}

void SplitQueue::push_used(std::uint16_t head, std::uint32_t len) noexcept {
  // A device cannot complete more chains than it popped.
  VIOPOOL_ASSERT(static_cast<std::uint16_t>(last_avail_idx_ - last_used_idx_) >= 1);
  write_used(head, len);
  publish_used();
}

void SplitQueue::push_used(std::span<const VringUsedElem> elems) noexcept {
  if (elems.empty()) {
    return;
  }
  VIOPOOL_ASSERT(static_cast<std::uint16_t>(last_avail_idx_ - last_used_idx_) >= elems.size());
  for (const VringUsedElem& e : elems) {
    write_used(e.id, e.len);
  }
  publish_used();
}

bool SplitQueue::need_notify() noexcept {
  // Orders the used->idx store of publish_used() before the loads of used_event
  // / avail->flags below (store-load, hence a full fence); pairs with the
  // driver's full barrier between writing used_event (or clearing NO_INTERRUPT)
  // and re-reading used->idx, so one side always sees the other's update.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint16_t old = signalled_used_;
  const bool old_valid = signalled_used_valid_;
  signalled_used_ = last_used_idx_;
  signalled_used_valid_ = true;
  bool notify = false;
  if (event_idx_) {
    // used_event is guest-written, read once; any value is valid since it only
    // enters this modulo-2^16 comparison (vring_need_event).
    const std::uint16_t used_event = load16(used_event_);
    notify = !old_valid || static_cast<std::uint16_t>(last_used_idx_ - used_event - 1) <
                               static_cast<std::uint16_t>(last_used_idx_ - old);
  } else if (!old_valid || old != last_used_idx_) {
    // avail->flags is guest-written, read once; only NO_INTERRUPT is looked at.
    notify = (load16(avail_flags_) & kAvailFlagNoInterrupt) == 0;
  }
  if (notify) {
    ++stats_.notifies;
  }
  return notify;
}

void SplitQueue::set_notifications(Notifications n) noexcept {
  notifications_ = n == Notifications::kEnabled;
  if (event_idx_) {
    // Disabling leaves avail_event behind last_avail_idx, so the driver stops
    // kicking until its index laps it (once per 2^16 chains, like Linux vhost).
    if (notifications_) {
      store16(avail_event_, last_avail_idx_);
    }
  } else {
    store16(used_flags_, notifications_ ? 0 : kUsedFlagNoNotify);
  }
  if (notifications_) {
    // Orders the avail_event / used->flags store above before the caller's
    // re-read of avail->idx in has_pending() (store-load, hence a full fence);
    // pairs with the driver's full barrier between storing avail->idx and
    // reading avail_event / used->flags to decide whether to kick.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

bool SplitQueue::has_pending() const noexcept {
  if (broken()) {
    return false;
  }
  // Any other avail->idx means work, or a corrupt index that the next pop reports.
  return avail_shadow_ != last_avail_idx_ || load16(avail_idx_) != last_avail_idx_;
}

}  // namespace viopool::virtio
