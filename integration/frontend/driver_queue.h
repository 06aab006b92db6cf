// Driver side of one virtio virtqueue, split (virtio 1.2, 2.7) or packed (2.8),
// as a guest's virtio driver runs it: rings in the GuestMemoryArena, a free list,
// chains made available, completions reaped, kicks through the kick eventfd and
// interrupts through the call eventfd. Split layout and flags come from
// vhost-backend/virtio/virtio_defs.h, the packed ones are below; blk_driver.h
// builds on this.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "integration/frontend/guest_memory_arena.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/base/types.h"
#include "vhost-backend/virtio/split_queue.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::frontend {

// Typed boolean: put multi-buffer chains in an indirect table (INDIRECT_DESC).
enum class Indirect : bool { kNo = false, kYes = true };

// Which virtqueue layout to drive: split, or packed (VIRTIO_F_RING_PACKED negotiated).
enum class RingLayout : std::uint8_t { kSplit, kPacked };

// ---- Packed ring wire layout (virtio 1.2, 2.8), as the driver sees it ----
// TODO(frontend): share with vhost-backend/virtio once its packed queue lands;
// kept here so the frontend does not depend on the device side it tests.

// One slot of the descriptor ring (struct pvirtq_desc). In an indirect table
// only addr, len and the WRITE flag mean anything.
struct PackedDesc {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t id;     // buffer id: the driver's name for the chain, echoed by the device
  std::uint16_t flags;  // virtio::kDesc{Next,Write,Indirect} plus kPackedDesc{Avail,Used}
};
static_assert(sizeof(PackedDesc) == 16);
static_assert(offsetof(PackedDesc, len) == 8);
static_assert(offsetof(PackedDesc, id) == 12);
static_assert(offsetof(PackedDesc, flags) == 14);

// Available: AVAIL == the writer's wrap counter and USED != it. Used:
// AVAIL == USED == the device's used wrap counter (2.8.1).
inline constexpr std::uint16_t kPackedDescAvail = 1u << 7;
inline constexpr std::uint16_t kPackedDescUsed = 1u << 15;

// Driver and device event suppression areas (struct pvirtq_event_suppress).
// off_wrap: bits 0-14 a ring offset, bit 15 the wrap counter it belongs to;
// meaningful only with flags == kPackedEventDesc (which needs EVENT_IDX).
struct PackedEventSuppress {
  std::uint16_t off_wrap;
  std::uint16_t flags;
};
static_assert(sizeof(PackedEventSuppress) == 4);
static_assert(offsetof(PackedEventSuppress, flags) == 2);
inline constexpr std::uint16_t kPackedEventEnable = 0;   // RING_EVENT_FLAGS_ENABLE
inline constexpr std::uint16_t kPackedEventDisable = 1;  // RING_EVENT_FLAGS_DISABLE
inline constexpr std::uint16_t kPackedEventDesc = 2;     // RING_EVENT_FLAGS_DESC (off_wrap)

// Ring positions as SET_VRING_BASE / GET_VRING_BASE carry them for packed
// rings (QEMU, DPDK): offset | wrap_counter << 15. A fresh ring is at offset 0
// with wrap counter 1.
inline constexpr std::uint16_t kPackedWrapBit = 0x8000;
inline constexpr std::uint16_t kPackedFreshStart = kPackedWrapBit;
constexpr std::uint16_t packed_position(std::uint16_t offset, bool wrap) noexcept {
  return static_cast<std::uint16_t>((offset & 0x7fff) | (wrap ? kPackedWrapBit : 0));
}

struct DriverQueueOptions {
  RingLayout layout = RingLayout::kSplit;
  // Split: a power of two, 1..32768. Packed: 1..32768 (any value, 2.8.10).
  std::uint16_t size = 256;
  virtio::EventIdx event_idx = virtio::EventIdx::kNo;  // VIRTIO_RING_F_EVENT_IDX negotiated
  Indirect indirect = Indirect::kNo;  // VIRTIO_RING_F_INDIRECT_DESC negotiated and wanted
  // Entries of each indirect table (one table per descriptor, allocated up front).
  std::uint16_t max_indirect = 132;
  // What SET_VRING_BASE tells the backend. Split: the initial avail->idx and
  // used->idx. Packed: the position of the first descriptor, offset | wrap <<
  // 15 (kPackedFreshStart for a fresh ring; others resume as after a long run).
  std::uint16_t start_idx = 0;
};

// One buffer of a chain. Device-readable buffers must come before writable ones.
struct DriverSegment {
  GuestAddr addr;
  std::uint32_t len = 0;
  Writable writable = Writable::kNo;
};

// A completed chain: the cookie given to add() and the used length the device reported.
struct DriverCompletion {
  std::uint64_t cookie = 0;
  std::uint32_t len = 0;
};

// Single-threaded: one thread owns a queue (adds, kicks, reaps); several
// queues may run on several threads. The data-path calls are noexcept and do
// not allocate.
//
// The device is a peer we do not trust either: a used entry naming a
// descriptor (split) or buffer id (packed) that is not in flight breaks the
// queue (kProtocol from reap) instead of corrupting the free list.
//
// Packed layout: the "desc" area is the descriptor ring, the "avail" area the
// driver event suppression structure and the "used" area the device event
// suppression structure, which is what SET_VRING_ADDR carries in its desc,
// avail and used fields. Indexes (start_idx, avail_idx, last_used_idx) are
// positions, offset | wrap_counter << 15.
class DriverQueue {
 public:
  // Allocates the three ring areas (and indirect tables) from `arena`, which
  // must outlive the queue, and creates the kick and call eventfds.
  static Result<std::unique_ptr<DriverQueue>> create(GuestMemoryArena& arena,
                                                     const DriverQueueOptions& options);
  ~DriverQueue();
  DriverQueue(const DriverQueue&) = delete;
  DriverQueue& operator=(const DriverQueue&) = delete;

  // ---- What the vhost-user frontend tells the backend ----
  std::uint16_t size() const noexcept { return size_; }
  RingLayout layout() const noexcept { return packed_ ? RingLayout::kPacked : RingLayout::kSplit; }
  std::uint16_t start_idx() const noexcept { return start_idx_; }
  GuestAddr desc_gpa() const noexcept { return desc_.gpa; }
  GuestAddr avail_gpa() const noexcept { return avail_.gpa; }
  GuestAddr used_gpa() const noexcept { return used_.gpa; }
  // Our virtual addresses of the areas (SET_VRING_ADDR carries these).
  std::uint64_t desc_user_addr() const noexcept;
  std::uint64_t avail_user_addr() const noexcept;
  std::uint64_t used_user_addr() const noexcept;
  int kick_fd() const noexcept { return kick_fd_; }
  int call_fd() const noexcept { return call_fd_; }

  // ---- Data path ----
  // Adds a chain and writes its head to the next avail slot (split) or its
  // descriptors to the next ring slots (packed), without making it visible
  // (publish()/kick() do). kInvalidArgument for no segments, a zero-length
  // segment or a readable segment after a writable one; kResourceExhausted
  // when descriptors (or, indirect, table entries) run out; kProtocol once the
  // queue is broken.
  Result<void> add(std::span<const DriverSegment> segments, std::uint64_t cookie) noexcept;
  // Makes every chain added so far visible to the device: split stores
  // avail->idx, packed stores each pending chain's head flags.
  void publish() noexcept;
  // publish(), then notifies the device through the kick eventfd unless it
  // asked not to be (split: VRING_USED_F_NO_NOTIFY, or avail_event with
  // EVENT_IDX; packed: the device event suppression structure, DISABLE, or
  // DESC with an off_wrap we did not pass). Returns whether it kicked; kIo if
  // the eventfd write fails.
  Result<bool> kick() noexcept;
  // Moves up to out.size() completions into `out`. Returns the count.
  Result<std::size_t> reap(std::span<DriverCompletion> out) noexcept;
  // True if the device has used entries we have not reaped.
  bool has_used() const noexcept;

  // ---- Interrupts ----
  // kDisabled asks the device not to signal the call eventfd (busy-polling):
  // VRING_AVAIL_F_NO_INTERRUPT, or used_event kept out of reach with EVENT_IDX;
  // packed: the driver event suppression flags DISABLE, or ENABLE / DESC at
  // the next used position (EVENT_IDX) when enabled.
  void set_interrupts(virtio::Notifications n) noexcept;
  // Arms interrupts for the next completion and waits on the call eventfd for
  // up to `limit`. Returns true when used entries are there to reap (at once
  // if they already were), false on timeout; a spurious signal (backends
  // signal once when given the call fd) keeps waiting. kIo if poll fails.
  // Interrupts stay enabled afterwards.
  Result<bool> wait_used(std::chrono::milliseconds limit) noexcept;

  // ---- State ----
  std::uint16_t free_descriptors() const noexcept { return num_free_; }
  std::uint16_t in_flight() const noexcept { return in_flight_; }
  // The avail index the driver has published (packed: the position of the
  // next descriptor to make available): what GET_VRING_BASE should return
  // once the device has consumed everything.
  std::uint16_t avail_idx() const noexcept { return avail_published_; }
  std::uint16_t last_used_idx() const noexcept { return last_used_; }
  bool broken() const noexcept { return broken_; }
  std::uint64_t kicks() const noexcept { return kicks_; }
  std::uint64_t kicks_suppressed() const noexcept { return kicks_suppressed_; }

 private:
  DriverQueue() = default;
  std::uint16_t* avail_ring() const noexcept;
  std::uint16_t& avail_idx_field() const noexcept;
  std::uint16_t& avail_flags_field() const noexcept;
  std::uint16_t& used_event_field() const noexcept;
  std::uint16_t& used_idx_field() const noexcept;
  std::uint16_t& used_flags_field() const noexcept;
  std::uint16_t& avail_event_field() const noexcept;
  virtio::VringDesc* desc_table() const noexcept;
  void free_chain(std::uint16_t head) noexcept;
  Result<bool> notify_device() noexcept;

  // Packed layout (driver_queue.cc, "Packed ring").
  PackedDesc* packed_ring() const noexcept;
  std::uint32_t& driver_event_word() const noexcept;
  std::uint32_t& device_event_word() const noexcept;
  void packed_init() noexcept;
  Result<void> packed_add(std::span<const DriverSegment> segs, std::uint64_t cookie) noexcept;
  void packed_publish() noexcept;
  Result<bool> packed_kick() noexcept;
  Result<std::size_t> packed_reap(std::span<DriverCompletion> out) noexcept;
  bool packed_has_used() const noexcept;
  void packed_write_driver_event() noexcept;

  GuestMemoryArena* arena_ = nullptr;
  bool packed_ = false;
  std::uint16_t size_ = 0;
  std::uint16_t start_idx_ = 0;
  bool event_idx_ = false;
  bool indirect_ = false;
  std::uint16_t max_indirect_ = 0;
  bool interrupts_ = true;

  ArenaBlock desc_;
  ArenaBlock avail_;
  ArenaBlock used_;
  ArenaBlock indirect_tables_;  // size_ tables of max_indirect_ entries
  int kick_fd_ = -1;
  int call_fd_ = -1;

  // Driver-private shadow state; the device never sees (or corrupts) these.
  std::vector<std::uint16_t> next_;       // free list and chain links
  std::vector<std::uint16_t> chain_len_;  // per head: descriptors used (0: not in flight)
  std::vector<std::uint64_t> cookie_;     // per head
  std::uint16_t free_head_ = 0;
  std::uint16_t num_free_ = 0;
  std::uint16_t in_flight_ = 0;
  std::uint16_t avail_shadow_ = 0;     // next avail slot to fill
  std::uint16_t avail_published_ = 0;  // avail->idx as last stored
  std::uint16_t kicked_at_ = 0;        // avail->idx at the last kick decision
  std::uint16_t last_used_ = 0;        // used->idx up to which we reaped
  bool broken_ = false;
  std::uint64_t kicks_ = 0;
  std::uint64_t kicks_suppressed_ = 0;

  // Packed only. avail_shadow_, avail_published_ and last_used_ then hold
  // positions (offset | wrap << 15); next_ is the buffer id free list,
  // chain_len_ counts ring slots per id (1 for an indirect chain).
  std::vector<std::uint16_t> pending_off_;    // heads added but not yet published
  std::vector<std::uint16_t> pending_flags_;  // the flags each of those heads gets
  std::uint16_t pending_ = 0;
  std::uint32_t added_since_kick_ = 0;  // descriptors made available since the last kick decision
};

}  // namespace viopool::frontend
