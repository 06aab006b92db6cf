// Device side of one virtio packed virtqueue (VIRTIO_F_RING_PACKED, virtio 1.2
// 2.8): pops descriptor chains the guest made available in the descriptor ring,
// writes used descriptors back into the same ring and applies both event
// suppression structures. Same API as SplitQueue (split_queue.h), so devices can
// serve either through AnyQueue (any_queue.h); chains come out as DescChain.
//
// The guest is the adversary: it shares the ring with us and may rewrite it at
// any moment. Every guest-written field is read once into a local, then checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vhost-backend/base/error.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/split_queue.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::virtio {

// ---- Packed ring wire layout (virtio 1.2, 2.8.13) ----

// One descriptor of the ring or of an indirect table (struct pvirtq_desc).
struct PackedDesc {
  std::uint64_t addr;   // guest-physical buffer address (unused in used descriptors)
  std::uint32_t len;    // buffer length; in a used descriptor, bytes written
  std::uint16_t id;     // buffer id (meaningful in a chain's last descriptor)
  std::uint16_t flags;  // kDescNext/kDescWrite/kDescIndirect and kPackedDesc{Avail,Used}
};
static_assert(sizeof(PackedDesc) == 16);
static_assert(offsetof(PackedDesc, len) == 8);
static_assert(offsetof(PackedDesc, id) == 12);
static_assert(offsetof(PackedDesc, flags) == 14);

// Descriptor flags only the packed ring has (VIRTQ_DESC_F_AVAIL / _USED). A
// descriptor is available when AVAIL equals the driver's wrap counter and USED
// does not; used when both equal the device's used wrap counter.
inline constexpr std::uint16_t kPackedDescAvail = 1u << 7;
inline constexpr std::uint16_t kPackedDescUsed = 1u << 15;

// Event suppression structure (struct pvirtq_event_suppress), 4 bytes, 4-aligned:
// the driver area holds the driver's (read by the device: used buffer
// notifications), the device area the device's (read by the driver: kicks).
struct PackedEventSuppress {
  std::uint16_t off_wrap;  // bits 0..14 ring offset, bit 15 wrap counter (flags == kDesc)
  std::uint16_t flags;     // kPackedEvent* below
};
static_assert(sizeof(PackedEventSuppress) == 4);
static_assert(offsetof(PackedEventSuppress, flags) == 2);

inline constexpr std::uint16_t kPackedEventEnable = 0;   // RING_EVENT_FLAGS_ENABLE
inline constexpr std::uint16_t kPackedEventDisable = 1;  // RING_EVENT_FLAGS_DISABLE
inline constexpr std::uint16_t kPackedEventDesc = 2;     // RING_EVENT_FLAGS_DESC (EVENT_IDX only)

inline constexpr std::size_t kPackedDescAlign = 16;
inline constexpr std::size_t kPackedEventAlign = 4;

constexpr std::size_t packed_desc_ring_bytes(std::uint32_t size) noexcept {
  return sizeof(PackedDesc) * size;
}

// ---- Ring positions as vhost-user encodes them ----
// SET/GET_VRING_BASE and DPDK 22.11's rte_vhost_{get,set}_vring_base carry a
// packed ring position in 16 bits: index in bits 0..14, wrap counter in bit 15
// (last_avail_idx | avail_wrap_counter << 15, and the same for used).
inline constexpr std::uint16_t kPackedWrapBit = 1u << 15;

constexpr std::uint16_t encode_packed_position(std::uint16_t idx, bool wrap_counter) noexcept {
  return static_cast<std::uint16_t>((idx & ~kPackedWrapBit) | (wrap_counter ? kPackedWrapBit : 0));
}
constexpr std::uint16_t packed_position_index(std::uint16_t encoded) noexcept {
  return static_cast<std::uint16_t>(encoded & ~kPackedWrapBit);
}
constexpr bool packed_position_wrap(std::uint16_t encoded) noexcept {
  return (encoded & kPackedWrapBit) != 0;
}

// Where the ring is and how to resume. The pointers are host addresses of the
// already-translated areas, mapped for at least packed_desc_ring_bytes(size) and
// sizeof(PackedEventSuppress) bytes (the vhost layer checks that when
// translating the frontend's ring addresses: desc, avail = driver area, used =
// device area).
struct PackedQueueConfig {
  std::byte* desc = nullptr;
  std::byte* driver_event = nullptr;    // driver event suppression (guest-written)
  std::byte* device_event = nullptr;    // device event suppression (we write it)
  std::uint32_t size = 0;               // 1..kMaxQueueSize, any value (2.8: no power of two)
  const GuestMemory* memory = nullptr;  // buffers and indirect tables; outlives the queue
  EventIdx event_idx = EventIdx::kNo;   // VIRTIO_RING_F_EVENT_IDX negotiated
  // Next ring slot to pop and the driver wrap counter expected there. A fresh
  // queue starts at 0 with both wrap counters set (2.8.1).
  std::uint16_t last_avail_idx = 0;
  bool avail_wrap_counter = true;
  // Next ring slot to write a used descriptor to, and its wrap counter.
  std::uint16_t last_used_idx = 0;
  bool used_wrap_counter = true;
  std::string_view log_id;  // "dev=blk0 q=0": identity on its log lines

  // Fills the four position fields from values in vhost-user encoding (bit 15 =
  // wrap counter), as SET_VRING_BASE / rte_vhost_get_vring_base hand them over.
  // create() validates the result.
  void set_vring_base(std::uint16_t avail_encoded, std::uint16_t used_encoded) noexcept {
    last_avail_idx = packed_position_index(avail_encoded);
    avail_wrap_counter = packed_position_wrap(avail_encoded);
    last_used_idx = packed_position_index(used_encoded);
    used_wrap_counter = packed_position_wrap(used_encoded);
  }
};

// One completion for push_used: the buffer id and desc_count of a popped chain
// (DescChain::id() / desc_count()) and the bytes written to its writable buffers.
struct PackedUsedElem {
  std::uint16_t id = 0;
  std::uint32_t len = 0;
  std::uint16_t desc_count = 1;
};

// Owned and driven by one polling thread; no method blocks, none but create()
// allocates, and none is thread-safe. Counters are SplitQueueStats.
class PackedQueue {
 public:
  // Checks the config (kInvalidArgument: null pointer or memory, size outside
  // 1..32768, a misaligned area, a position index >= size, or a used position
  // more than `size` slots behind, or ahead of, the avail position). Control
  // path. Writes nothing to the ring: call set_notifications() for the initial
  // notification state.
  static Result<PackedQueue> create(const PackedQueueConfig& config);

  // Movable, not copyable: two copies would both advance the same ring.
  PackedQueue(PackedQueue&&) noexcept = default;
  PackedQueue& operator=(PackedQueue&&) noexcept = default;
  PackedQueue(const PackedQueue&) = delete;
  PackedQueue& operator=(const PackedQueue&) = delete;

  // Pops the next available chain into `out` (reused). Returns true if a chain
  // was popped, false if the descriptor at last_avail_idx is not available.
  // out.id() is the buffer id (also out.head()), out.desc_count() the ring
  // slots it took; both go back in its PackedUsedElem.
  //
  // Two kinds of guest faults, as in SplitQueue::pop_into:
  //  - A corrupt ring returns Errc::kProtocol and marks the queue broken(); the
  //    position does not move. That is: a chain of NEXT descriptors longer than
  //    the ring, a ring slot inside a chain that is not available (its
  //    AVAIL/USED bits do not match the wrap counter at that slot), and a buffer
  //    id >= size in the chain's last descriptor. Each leaves us unable to tell
  //    where the next chain starts or which buffer to complete.
  //  - A bad chain is popped (true, the position moves past all its slots) with
  //    out.error() set, and the queue goes on: a buffer outside guest memory, a
  //    device-readable buffer after a device-writable one, more than
  //    kMaxBuffers buffers, an indirect descriptor that also has NEXT, an
  //    indirect table of length 0, not a multiple of 16, of more than `size`
  //    entries or not inside one memory region, and an INDIRECT flag inside an
  //    indirect table (nested indirect).
  // After a bad-chain fault the walk goes on through the ring slots (storing no
  // buffers) so the chain's extent and id are still known; it stops reading an
  // indirect table at its first nested indirect entry.
  Result<bool> pop_into(DescChain& out) noexcept;
  // Same as pop_into, returning a fresh chain (std::nullopt if the ring is empty).
  Result<std::optional<DescChain>> pop() noexcept;

  // Completes chains in the order given: writes one used descriptor per element
  // at last_used_idx (id and len, then flags with both AVAIL and USED equal to
  // the used wrap counter) and skips desc_count slots, flipping the wrap counter
  // at the end of the ring. The first element's flags are stored last, after a
  // release fence, so the driver sees the whole batch at once. id < size and
  // 1 <= desc_count come from popped chains; the sum of desc_count must not
  // exceed the slots popped and not yet used. Works on a broken queue too.
  void push_used(std::span<const PackedUsedElem> elems) noexcept;
  void push_used(std::uint16_t id, std::uint32_t len, std::uint16_t desc_count) noexcept;

  // True if the guest should get an interrupt for the used descriptors written
  // since the previous call, per the driver event suppression structure:
  // DISABLE never, ENABLE when anything was written, DESC (with EVENT_IDX only;
  // otherwise it counts as ENABLE) when the descriptor at off_wrap was among
  // those written. The first call after create() answers true unless DISABLE,
  // so a resumed queue never loses an interrupt. Issues a full fence; call once
  // per burst, at least once per 2 * size used slots.
  bool need_notify() noexcept;

  // Asks the guest to kick (kEnabled) or not (kDisabled) when it makes buffers
  // available, through the device event suppression structure: DISABLE, or
  // ENABLE, or with EVENT_IDX DESC at last_avail_idx (kept up to date by pop
  // while enabled, like SplitQueue's avail_event). Before sleeping on the kick
  // eventfd call set_notifications(kEnabled) and then has_pending().
  void set_notifications(Notifications n) noexcept;

  // True if the descriptor at last_avail_idx is available (false when broken).
  bool has_pending() const noexcept;

  bool broken() const noexcept { return broken_error_.code != Errc::kOk; }
  std::uint16_t last_avail_idx() const noexcept { return last_avail_idx_; }
  bool avail_wrap_counter() const noexcept { return avail_wrap_; }
  std::uint16_t last_used_idx() const noexcept { return last_used_idx_; }
  bool used_wrap_counter() const noexcept { return used_wrap_; }
  // Positions in vhost-user encoding (bit 15 = wrap counter), for GET_VRING_BASE
  // and rte_vhost_set_vring_base; PackedQueueConfig::set_vring_base reads them.
  std::uint16_t last_avail_idx_encoded() const noexcept {
    return encode_packed_position(last_avail_idx_, avail_wrap_);
  }
  std::uint16_t last_used_idx_encoded() const noexcept {
    return encode_packed_position(last_used_idx_, used_wrap_);
  }
  std::uint32_t size() const noexcept { return size_; }
  const SplitQueueStats& stats() const noexcept { return stats_; }

 private:
  explicit PackedQueue(const PackedQueueConfig& config) noexcept;
  // Walks the chain whose first descriptor (already seen available, with
  // `head_flags`) is at last_avail_idx into `out`; sets out's id and
  // desc_count. An error means ring corruption; bad-chain faults go to `out`.
  Result<void> walk_chain(std::uint16_t head_flags, DescChain& out) const noexcept;
  // Reads the indirect table of `d` into `out` (bad-chain faults only).
  void walk_indirect(const PackedDesc& d, DescChain& out, bool& seen_writable) const noexcept;
  // Checks and appends one buffer descriptor to `out`.
  void add_buffer(const PackedDesc& d, DescChain& out, bool& seen_writable) const noexcept;
  unexpected mark_broken(const char* what) noexcept;
  // Position as a number in [0, 2 * size): consecutive slots differ by 1 mod 2 * size.
  std::uint32_t linear(std::uint32_t idx, bool wrap) const noexcept;
  // Ring slots popped and not yet used (0..size).
  std::uint32_t outstanding_slots() const noexcept;
  // Stores the device event suppression structure in one 32-bit write.
  void store_device_event(std::uint16_t flags, std::uint16_t off_wrap) noexcept;

  std::byte* desc_;
  std::byte* driver_event_;
  std::byte* device_event_;
  const GuestMemory* memory_;
  std::uint32_t size_;
  bool event_idx_;
  bool notifications_ = true;
  Error broken_error_{Errc::kOk, 0, ""};
  std::uint16_t last_avail_idx_;
  bool avail_wrap_;
  std::uint16_t last_used_idx_;
  bool used_wrap_;
  // linear() of the used position at the last need_notify() (the "old" position).
  std::uint32_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
  // push_used() ran since the last need_notify() (ENABLE: anything new).
  bool used_since_signal_ = false;
  SplitQueueStats stats_;
  std::string log_id_;
};

}  // namespace viopool::virtio
