// The guest's memory as the device sees it: up to kMaxRegions mapped regions,
// and the only way the virtio layer and devices turn a guest-physical address
// into host bytes. The vhost layer fills it from the frontend's memory table.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "vhost-backend/base/result.h"
#include "vhost-backend/base/types.h"

namespace viopool::virtio {

// One mapped region: guest-physical [guest_phys_addr, guest_phys_addr + size)
// is host memory [host, host + size).
struct MemoryRegion {
  GuestAddr guest_phys_addr;
  std::uint64_t size = 0;
  std::byte* host = nullptr;
};

// Regions are added on the control path while no queue of the device runs
// (SET_MEM_TABLE); the lookups are const, noexcept and may then be called from
// any number of polling threads at once. GuestMemory does not own the mappings:
// whoever mapped them keeps them alive for as long as GuestMemory is used.
// Every address and length given to the lookups is treated as guest-supplied:
// any value is safe to pass and is rejected unless it lies inside the regions.
class GuestMemory {
 public:
  // rte_vhost in DPDK 22.11 accepts at most 8 regions (VHOST_MEMORY_MAX_NREGIONS).
  static constexpr std::size_t kMaxRegions = 8;

  // Adds a region. Fails with kInvalidArgument for a zero size, a null host
  // pointer, a guest or host range that wraps around the address space or one
  // overlapping an existing region, and with kResourceExhausted past kMaxRegions.
  // Regions may be adjacent. Control path.
  Result<void> add_region(const MemoryRegion& region) noexcept;
  void clear() noexcept { count_ = 0; }
  // The regions, sorted by guest-physical address.
  std::span<const MemoryRegion> regions() const noexcept { return {regions_.data(), count_}; }

  // Host bytes of guest [addr, addr + len) if the range lies wholly inside one
  // region, else kOutOfRange (also when addr + len wraps past 2^64). len == 0
  // yields an empty span when addr lies inside a region.
  Result<std::span<std::byte>> translate(GuestAddr addr, std::uint64_t len) const noexcept;

  // Splits guest [addr, addr + len) into one iovec per region it crosses, for a
  // buffer that spans guest-physically adjacent regions. Returns the number of
  // iovecs written to `out` (0 for len == 0); kOutOfRange if any byte of the
  // range is unmapped or it wraps, kResourceExhausted if `out` is too short.
  Result<std::size_t> translate_iov(GuestAddr addr, std::uint64_t len,
                                    std::span<struct iovec> out) const noexcept;

  // True if every byte of guest [addr, addr + len) is mapped, possibly across
  // adjacent regions (what translate_iov would accept with enough iovecs).
  // len == 0 is true when addr lies inside a region.
  bool contains(GuestAddr addr, std::uint64_t len) const noexcept;

 private:
  // The region holding guest address `addr`, or nullptr.
  const MemoryRegion* find(std::uint64_t addr) const noexcept;
  // Calls fn(host, piece_len) -> bool for each region-sized piece of the range,
  // in order. kOutOfRange if a byte is unmapped or the range wraps,
  // kResourceExhausted if fn returned false, else kOk.
  template <typename Fn>
  Errc for_each_piece(GuestAddr addr, std::uint64_t len, Fn&& fn) const noexcept;

  std::array<MemoryRegion, kMaxRegions> regions_{};
  std::size_t count_ = 0;
};

}  // namespace viopool::virtio
