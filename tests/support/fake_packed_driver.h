// FakePackedDriver: the driver side of a virtio packed ring, for unit tests of
// the device side (PackedQueue, AnyQueue and the devices built on them). Like
// FakeGuestDriver (whose buffer and layout types it shares) it owns a guest
// memory arena, lays out the descriptor ring and both event suppression
// structures, adds chains as a guest driver would and offers raw pokes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tests/support/fake_guest_driver.h"
#include "vhost-backend/base/types.h"
#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/packed_queue.h"

namespace viopool::testing {

struct FakePackedDriverOptions {
  std::uint32_t queue_size = 256;                       // any value in 1..32768
  std::uint64_t region_bytes = std::uint64_t{1} << 20;  // per region
  GuestAddr base{0x7654'0000};                          // guest-physical start of region 0
  RegionLayout layout = RegionLayout::kOne;
  // Ring position to start at (both avail and used), as after a long run: the
  // ring is filled as if every earlier slot had been used.
  std::uint16_t start_idx = 0;
  bool start_wrap = true;
};

// A used descriptor as the driver read it.
struct FakePackedUsed {
  std::uint16_t id = 0;
  std::uint32_t len = 0;
};

// Single-threaded: the test drives both sides in turn. Test bugs (allocating
// past the arena, a full ring) abort through VIOPOOL_CHECK.
class FakePackedDriver {
 public:
  // Id written into the non-last descriptors of a chain: the spec puts the
  // buffer id in the last one only, and a device reading another breaks.
  static constexpr std::uint16_t kUnusedId = 0xffff;

  explicit FakePackedDriver(const FakePackedDriverOptions& options = {});
  ~FakePackedDriver() = default;
  FakePackedDriver(const FakePackedDriver&) = delete;
  FakePackedDriver& operator=(const FakePackedDriver&) = delete;

  virtio::GuestMemory& memory() noexcept { return arena_.memory(); }
  // Config for a PackedQueue over this ring, resuming at the start position.
  virtio::PackedQueueConfig queue_config(virtio::EventIdx event_idx = virtio::EventIdx::kNo) const;
  std::uint32_t queue_size() const noexcept { return size_; }

  // ---- Guest memory ----
  GuestAddr alloc(std::uint64_t len, std::uint64_t align = 16) { return arena_.alloc(len, align); }
  std::span<std::byte> bytes(GuestAddr addr, std::uint64_t len) {
    return {arena_.host(addr, len), len};
  }
  void write(GuestAddr addr, std::span<const std::byte> data) { arena_.write(addr, data); }
  // Allocates an indirect table holding `descs` and returns its address.
  GuestAddr make_indirect_table(std::span<const virtio::PackedDesc> descs);

  // ---- Driver operations ----
  // Makes a chain of device-readable then device-writable buffers available in
  // consecutive ring slots (head flags last; no kick). With Indirect::kYes all
  // buffers go into one indirect table behind a single ring descriptor.
  // Returns the buffer id (taken from a free list, low ids first).
  std::uint16_t add_chain(std::span<const FakeBuf> readable, std::span<const FakeBuf> writable,
                          Indirect indirect = Indirect::kNo);
  // Same with buffers in the given order, writable or not (to build bad chains).
  std::uint16_t add_segments(std::span<const FakeSegment> segments,
                             Indirect indirect = Indirect::kNo);
  // Writes `descs` as given (addr, len, id, NEXT/WRITE/INDIRECT) into the next
  // slots, adding the AVAIL/USED bits of each slot's wrap counter, head flags
  // last. No checks: for corrupt chains. Returns the head slot.
  std::uint16_t add_raw(std::span<const virtio::PackedDesc> descs);
  // Next used descriptor the device wrote, if any (honours the used wrap
  // counter); frees its buffer id and the ring slots the chain took.
  std::optional<FakePackedUsed> pop_used();
  std::uint32_t free_slots() const noexcept { return size_ - in_use_slots_; }
  // Whether a driver would kick after the last add_*: per the device event
  // suppression structure, for the slots that add made available.
  bool last_add_needs_kick() const;

  // ---- Positions ----
  std::uint16_t next_avail_idx() const noexcept { return avail_idx_; }
  bool avail_wrap() const noexcept { return avail_wrap_; }
  std::uint16_t next_used_idx() const noexcept { return used_idx_; }
  bool used_wrap() const noexcept { return used_wrap_; }
  // AVAIL/USED bits a driver sets to make a slot available under `wrap`.
  static std::uint16_t avail_bits(bool wrap) noexcept;

  // ---- Raw ring access ----
  virtio::PackedDesc read_desc(std::uint16_t slot) const;
  void write_desc(std::uint16_t slot, const virtio::PackedDesc& desc);
  void set_desc_flags(std::uint16_t slot, std::uint16_t flags);
  // Driver event suppression (what need_notify reads).
  void set_driver_event(std::uint16_t flags, std::uint16_t off_wrap);
  // Device event suppression (what set_notifications / pop write).
  std::uint16_t device_event_flags() const;
  std::uint16_t device_event_off_wrap() const;

 private:
  std::byte* host(GuestAddr addr, std::uint64_t len) { return arena_.host(addr, len); }
  std::uint16_t* flags_ptr(std::uint16_t slot) const;
  std::uint32_t event_word(const std::byte* area) const;
  // Position as a number mod 2 * size (see PackedQueue).
  std::uint32_t linear(std::uint32_t idx, bool wrap) const noexcept;
  std::uint16_t take_id();

  std::uint32_t size_;
  FakeGuestArena arena_;
  std::byte* desc_ = nullptr;
  std::byte* driver_event_ = nullptr;
  std::byte* device_event_ = nullptr;
  std::uint16_t start_idx_;
  bool start_wrap_;
  std::uint16_t avail_idx_;
  bool avail_wrap_;
  std::uint16_t used_idx_;
  bool used_wrap_;
  std::uint32_t in_use_slots_ = 0;
  std::vector<std::uint16_t> free_ids_;
  std::vector<std::uint16_t> slots_of_id_;  // ring slots per in-flight id (0 = free)
  std::uint32_t kick_old_ = 0;              // linear positions around the last add
  std::uint32_t kick_new_ = 0;
};

}  // namespace viopool::testing
