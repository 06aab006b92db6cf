// Device side of one virtio split virtqueue: pops descriptor chains the guest
// made available, writes completions to the used ring and decides when the guest
// wants an interrupt (EVENT_IDX or flags). Devices (blk, crypto) parse the chains;
// the vhost layer creates the queue from the frontend's ring addresses.
//
// The guest is the adversary: it shares the rings with us and may rewrite them at
// any moment. Every guest-written field is read once into a local, then checked.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vhost-backend/base/error.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/base/types.h"
#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::virtio {

// Typed booleans.
enum class EventIdx : bool { kNo = false, kYes = true };
enum class Notifications : bool { kDisabled = false, kEnabled = true };

// One guest buffer of a chain, as the guest described it. The range was checked
// to lie inside guest memory when the chain was popped (it may span adjacent
// regions: use GuestMemory::translate_iov, or translate for a single region).
struct ChainBuffer {
  GuestAddr addr;
  std::uint32_t len = 0;
  bool device_writable = false;
};

// A descriptor chain popped from the avail ring: its head id (what push_used
// takes back) and its buffers, device-readable ones first. Fixed capacity: no
// heap allocation on the data path.
//
// A chain is either ok() or bad: the guest broke a per-request rule (see
// SplitQueue::pop_into). A bad chain must still be completed with push_used(head, 0)
// (devices with a status byte report an error when they can) and its buffers,
// which stop at the first fault, must not be used for I/O.
class DescChain {
 public:
  // 256 covers a virtio-blk request with seg_max = 254 (the common queue size
  // 256 minus header and status); devices advertise seg_max <= kMaxBuffers - 2.
  static constexpr std::size_t kMaxBuffers = 256;

  std::uint16_t head() const noexcept { return head_; }
  // The buffer id to hand back in the used element. Split ring: the head index
  // (== head()). Packed ring: the id of the chain's last ring descriptor (also
  // returned by head()).
  std::uint16_t id() const noexcept { return id_; }
  // Ring slots the chain occupied: what a packed ring's used element skips
  // (PackedUsedElem::desc_count). Always 1 for a split ring, where it is unused.
  std::uint16_t desc_count() const noexcept { return desc_count_; }
  std::span<const ChainBuffer> buffers() const noexcept { return {buffers_.data(), count_}; }
  // The device-readable buffers, then the device-writable ones.
  std::span<const ChainBuffer> readable() const noexcept {
    return buffers().first(readable_count_);
  }
  std::span<const ChainBuffer> writable() const noexcept {
    return buffers().subspan(readable_count_);
  }
  // Total bytes of the readable / writable buffers (at most kMaxBuffers * 4 GiB).
  std::uint64_t readable_bytes() const noexcept { return readable_bytes_; }
  std::uint64_t writable_bytes() const noexcept { return writable_bytes_; }
  // True if the chain went through an indirect descriptor table.
  bool indirect() const noexcept { return indirect_; }

  bool ok() const noexcept { return error_.code == Errc::kOk; }
  // Why the chain is bad, or code kOk: kProtocol (malformed), kOutOfRange (a
  // buffer or indirect table outside guest memory), kUnsupported (> kMaxBuffers).
  const Error& error() const noexcept { return error_; }

 private:
  friend class SplitQueue;
  friend class PackedQueue;
  void reset(std::uint16_t head) noexcept;
  // Records the first fault only; later buffers are no longer stored.
  void set_error(Errc code, const char* what) noexcept;
  void append(GuestAddr addr, std::uint32_t len, bool device_writable) noexcept;

  std::uint16_t head_ = 0;
  std::uint16_t id_ = 0;
  std::uint16_t desc_count_ = 1;
  std::uint16_t count_ = 0;
  std::uint16_t readable_count_ = 0;
  bool indirect_ = false;
  std::uint64_t readable_bytes_ = 0;
  std::uint64_t writable_bytes_ = 0;
  Error error_{Errc::kOk, 0, ""};
  std::array<ChainBuffer, kMaxBuffers> buffers_;
};

// pop() of either ring kind: pops into a fresh chain, std::nullopt if the ring
// is empty. Convenience for tests and control paths; the data path reuses one
// chain with pop_into().
template <typename Queue>
Result<std::optional<DescChain>> pop_fresh(Queue& q) noexcept {
  std::optional<DescChain> chain(std::in_place);
  auto popped = q.pop_into(*chain);
  if (!popped) {
    return unexpected(popped.error());
  }
  if (!*popped) {
    chain.reset();
  }
  return chain;
}

// Where the rings are and how to resume. The three pointers are host addresses
// of the already-translated areas, each mapped for at least desc_table_bytes /
// avail_ring_bytes / used_ring_bytes(size) bytes (the vhost layer checks that
// when translating the frontend's ring addresses).
struct SplitQueueConfig {
  std::byte* desc = nullptr;
  std::byte* avail = nullptr;
  std::byte* used = nullptr;
  std::uint32_t size = 0;               // power of two, 1..kMaxQueueSize
  const GuestMemory* memory = nullptr;  // buffers and indirect tables; outlives the queue
  EventIdx event_idx = EventIdx::kNo;   // VIRTIO_RING_F_EVENT_IDX negotiated
  std::uint16_t last_avail_idx = 0;     // from SET_VRING_BASE (0 for a fresh queue)
  std::uint16_t last_used_idx = 0;      // from the used ring or inflight state on resume
  std::string_view log_id;              // "dev=blk0 q=0": identity on its log lines
};

// Per-queue counters, written only by the polling thread.
struct SplitQueueStats {
  std::uint64_t chains = 0;      // chains popped, bad ones included
  std::uint64_t bad_chains = 0;  // chains popped with !ok()
  std::uint64_t used = 0;        // used entries written
  std::uint64_t notifies = 0;    // need_notify() answered true
};

// Owned and driven by one polling thread; no method blocks, none but create()
// allocates, and none is thread-safe. The queue keeps no reference to the config beyond the
// ring pointers and `memory`.
class SplitQueue {
 public:
  // Checks the config (kInvalidArgument: null pointer or memory, size not a
  // power of two in 1..32768, an area misaligned for its type). Control path.
  // Writes nothing to the rings: call set_notifications() to set the initial
  // notification state.
  static Result<SplitQueue> create(const SplitQueueConfig& config);

  // Movable, not copyable: two copies would both advance the same ring.
  SplitQueue(SplitQueue&&) noexcept = default;
  SplitQueue& operator=(SplitQueue&&) noexcept = default;
  SplitQueue(const SplitQueue&) = delete;
  SplitQueue& operator=(const SplitQueue&) = delete;

  // Pops the next available chain into `out` (reused, so the 4 KiB chain is not
  // copied). Returns true if a chain was popped, false if the ring is empty.
  //
  // Two kinds of guest faults:
  //  - A corrupt ring returns Errc::kProtocol and marks the queue broken(): every
  //    later pop fails the same way and the device sets NEEDS_RESET. That is:
  //    avail->idx more than `size` ahead of last_avail_idx, a head index >= size,
  //    a descriptor loop (more descriptors than the table holds, direct or
  //    indirect) and a `next` index outside its table. last_avail_idx does not
  //    move.
  //  - A bad chain is still popped (true, last_avail_idx moves) with
  //    out.error() set, and the queue goes on: a buffer outside guest memory,
  //    a device-readable buffer after a device-writable one, more than
  //    kMaxBuffers buffers, an indirect descriptor that also has NEXT, lies in
  //    an indirect table, has a length of 0 or not a multiple of 16 or more than
  //    `size` entries, or whose table is not inside one memory region.
  // The walk goes on after a bad-chain fault (without storing buffers) so a loop
  // behind it still breaks the queue; it stops at a faulty indirect descriptor.
  // On error, `out` holds nothing usable.
  Result<bool> pop_into(DescChain& out) noexcept;
  // Same as pop_into, returning a fresh chain (std::nullopt if the ring is empty).
  Result<std::optional<DescChain>> pop() noexcept;

  // Completes a chain: writes {head, len} to the used ring and publishes it.
  // `head` comes from a popped DescChain; `len` is the number of bytes written
  // to its writable buffers. Works on a broken queue too.
  void push_used(std::uint16_t head, std::uint32_t len) noexcept;
  // Same for a batch, with one used->idx update for all of them.
  void push_used(std::span<const VringUsedElem> elems) noexcept;

  // True if the guest should get an interrupt for the entries pushed since the
  // previous call: with EVENT_IDX, when used->idx moved past used_event (the
  // guest's vring_need_event rule); without, when anything was pushed and the
  // guest did not set VRING_AVAIL_F_NO_INTERRUPT. The first call after create()
  // answers true (without EVENT_IDX: unless NO_INTERRUPT), so a resumed queue
  // never loses an interrupt. Issues a full fence; call once per burst.
  bool need_notify() noexcept;

  // Asks the guest to kick (kEnabled) or not (kDisabled) when it adds buffers:
  // VRING_USED_F_NO_NOTIFY, or avail_event with EVENT_IDX. Before sleeping on
  // the kick eventfd call set_notifications(kEnabled) and then has_pending():
  // buffers added before the guest saw the change raise no kick.
  void set_notifications(Notifications n) noexcept;

  // True if the guest made chains available that pop has not taken yet
  // (false on a broken queue).
  bool has_pending() const noexcept;

  bool broken() const noexcept { return broken_error_.code != Errc::kOk; }
  std::uint16_t last_avail_idx() const noexcept { return last_avail_idx_; }
  std::uint16_t last_used_idx() const noexcept { return last_used_idx_; }
  std::uint32_t size() const noexcept { return size_; }
  const SplitQueueStats& stats() const noexcept { return stats_; }

 private:
  explicit SplitQueue(const SplitQueueConfig& config) noexcept;
  // Walks the chain at `head` (< size_) into `out`. An error means ring
  // corruption; bad-chain faults are recorded in `out`.
  Result<void> walk_chain(std::uint16_t head, DescChain& out) const noexcept;
  void prefetch_ahead() const noexcept;
  unexpected mark_broken(const char* what) noexcept;
  // Writes one used entry at last_used_idx and advances it (not yet published).
  void write_used(std::uint32_t id, std::uint32_t len) noexcept;
  // Stores last_used_idx to used->idx, after a release fence.
  void publish_used() noexcept;

  // Ring areas (alignment checked by create()).
  std::byte* desc_;
  std::uint16_t* avail_flags_;
  std::uint16_t* avail_idx_;
  std::uint16_t* avail_ring_;
  std::uint16_t* used_event_;
  std::uint16_t* used_flags_;
  std::uint16_t* used_idx_;
  std::byte* used_ring_;
  std::uint16_t* avail_event_;

  const GuestMemory* memory_;
  std::uint32_t size_;
  std::uint16_t mask_;
  bool event_idx_;
  bool notifications_ = true;
  // Code kOk until the ring is found corrupt; then what every pop returns.
  Error broken_error_{Errc::kOk, 0, ""};
  std::uint16_t last_avail_idx_;
  // avail->idx as last read and validated (pending = avail_shadow_ - last_avail_idx_
  // <= size_); re-read only once everything up to it is popped.
  std::uint16_t avail_shadow_;
  std::uint16_t last_used_idx_;
  // used->idx at the last need_notify() (vring_need_event's "old").
  std::uint16_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
  SplitQueueStats stats_;
  std::string log_id_;
};

}  // namespace viopool::virtio
