// FakeGuestDriver: the driver side of a virtio split ring, for unit tests of the
// device side (SplitQueue and the devices built on it). It owns a guest memory
// arena registered in a GuestMemory at arbitrary guest-physical addresses, lays
// out the three ring areas, adds chains as a guest driver would, and offers raw
// pokes to corrupt the ring the way a hostile guest could.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "vhost-backend/base/types.h"
#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/split_queue.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::testing {

// Typed booleans and layouts.
enum class Indirect : bool { kNo = false, kYes = true };
enum class RegionLayout : std::uint8_t {
  kOne,          // one region
  kTwoAdjacent,  // two regions, guest-physically adjacent, separate host arenas
  kTwoWithGap,   // two regions with an unmapped guest-physical gap between them
};

// Guest RAM for driver-side fakes: one or two regions at a guest-physical base
// (adjacent, or with an unmapped gap), a bump allocator and host views.
// Test bugs (allocating past the end, an address outside one region) abort.
class FakeGuestArena {
 public:
  FakeGuestArena(GuestAddr base, std::uint64_t region_bytes, RegionLayout layout);
  ~FakeGuestArena();
  FakeGuestArena(const FakeGuestArena&) = delete;
  FakeGuestArena& operator=(const FakeGuestArena&) = delete;

  virtio::GuestMemory& memory() noexcept { return memory_; }
  const virtio::GuestMemory& memory() const noexcept { return memory_; }
  // Bump-allocates `len` bytes (zeroed) in the first region with room.
  GuestAddr alloc(std::uint64_t len, std::uint64_t align);
  // Host address of guest [addr, addr + len), which must lie in one region.
  std::byte* host(GuestAddr addr, std::uint64_t len) const;
  void write(GuestAddr addr, std::span<const std::byte> data);
  std::vector<std::byte> read(GuestAddr addr, std::uint64_t len) const;

 private:
  struct Region {
    GuestAddr base;
    std::uint64_t size = 0;
    std::byte* host = nullptr;
    std::uint64_t next = 0;  // bump offset
  };
  std::vector<Region> regions_;
  virtio::GuestMemory memory_;
};

struct FakeBuf {
  GuestAddr addr;
  std::uint32_t len = 0;
};

struct FakeSegment {
  GuestAddr addr;
  std::uint32_t len = 0;
  Writable writable = Writable::kNo;
};

struct FakeGuestDriverOptions {
  std::uint32_t queue_size = 256;
  std::uint64_t region_bytes = std::uint64_t{1} << 20;  // per region
  GuestAddr base{0x7654'0000};                          // guest-physical start of region 0
  RegionLayout layout = RegionLayout::kOne;
  std::uint16_t start_idx = 0;  // initial avail->idx and used->idx, as after a long run
};

// Single-threaded: the test drives both sides in turn. Test bugs (allocating
// past the arena, touching an unmapped address) abort through VIOPOOL_CHECK.
class FakeGuestDriver {
 public:
  explicit FakeGuestDriver(const FakeGuestDriverOptions& options = {});
  ~FakeGuestDriver() = default;
  FakeGuestDriver(const FakeGuestDriver&) = delete;
  FakeGuestDriver& operator=(const FakeGuestDriver&) = delete;

  // The memory table a vhost frontend would send; tests may add regions to it.
  virtio::GuestMemory& memory() noexcept { return arena_.memory(); }
  // Config for a SplitQueue over this ring, resuming at start_idx.
  virtio::SplitQueueConfig queue_config(virtio::EventIdx event_idx = virtio::EventIdx::kNo) const;
  std::uint32_t queue_size() const noexcept { return size_; }

  // ---- Guest memory ----
  // Bump-allocates `len` bytes (zeroed) in the first region with room.
  GuestAddr alloc(std::uint64_t len, std::uint64_t align = 16) { return arena_.alloc(len, align); }
  // Host view of guest [addr, addr + len), which must lie in one region.
  std::span<std::byte> bytes(GuestAddr addr, std::uint64_t len) {
    return {arena_.host(addr, len), len};
  }
  void write(GuestAddr addr, std::span<const std::byte> data) { arena_.write(addr, data); }
  std::vector<std::byte> read(GuestAddr addr, std::uint64_t len) { return arena_.read(addr, len); }
  // Allocates an indirect table holding `descs` and returns its address.
  GuestAddr make_indirect_table(std::span<const virtio::VringDesc> descs);

  // ---- Driver operations ----
  // Adds a chain of device-readable then device-writable buffers and publishes
  // it (avail ring slot, then avail->idx; no kick). With Indirect::kYes all
  // buffers go into one indirect table referenced by a single descriptor.
  // Returns the head descriptor index.
  std::uint16_t add_chain(std::span<const FakeBuf> readable, std::span<const FakeBuf> writable,
                          Indirect indirect = Indirect::kNo);
  // Same with buffers in the given order, writable or not (to build bad chains).
  std::uint16_t add_segments(std::span<const FakeSegment> segments,
                             Indirect indirect = Indirect::kNo);
  // Next used entry the device published, if any; frees its descriptors.
  std::optional<virtio::VringUsedElem> pop_used();
  std::size_t free_descriptors() const noexcept { return free_.size(); }

  // ---- Raw ring access (for corrupting the ring and checking device writes) ----
  // Takes a descriptor off the free list; the caller fills it with write_desc.
  std::uint16_t alloc_desc();
  void write_desc(std::uint16_t idx, const virtio::VringDesc& desc);
  virtio::VringDesc read_desc(std::uint16_t idx) const;
  void set_desc_next(std::uint16_t idx, std::uint16_t next);
  void set_desc_flags(std::uint16_t idx, std::uint16_t flags);
  // Writes `head` to the next avail slot and publishes avail->idx + 1.
  void push_avail(std::uint16_t head);
  void set_avail_slot(std::uint16_t slot, std::uint16_t head);
  // Stores avail->idx as is (it may then lie about how many chains exist).
  void set_avail_idx(std::uint16_t idx);
  std::uint16_t avail_idx() const;
  void set_avail_flags(std::uint16_t flags);
  void set_used_event(std::uint16_t idx);
  std::uint16_t used_flags() const;
  std::uint16_t used_idx() const;
  std::uint16_t avail_event() const;
  virtio::VringUsedElem used_elem(std::uint16_t slot) const;

 private:
  std::byte* host(GuestAddr addr, std::uint64_t len) { return arena_.host(addr, len); }
  std::uint16_t* avail_field(std::size_t offset) const;
  std::uint16_t* used_field(std::size_t offset) const;
  std::uint16_t build_chain(std::span<const FakeSegment> segments, Indirect indirect);

  std::uint32_t size_;
  std::uint16_t start_idx_;
  FakeGuestArena arena_;
  std::byte* desc_ = nullptr;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
  std::uint16_t avail_shadow_;    // avail->idx the driver publishes next
  std::uint16_t last_used_seen_;  // used->idx up to which pop_used consumed
  std::vector<std::uint16_t> free_;
  std::vector<std::vector<std::uint16_t>> chain_descs_;  // per head: its descriptors
};

}  // namespace viopool::testing
