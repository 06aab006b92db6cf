// Region bookkeeping and guest-physical to host translation. Ranges are handled
// by their last byte (addr + len - 1) so that no sum can wrap unnoticed.
#include "vhost-backend/virtio/guest_memory.h"

#include <algorithm>
#include <limits>

namespace viopool::virtio {
namespace {

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();

// Last guest address of a region; add_region guarantees size > 0 and no wrap.
std::uint64_t region_last(const MemoryRegion& r) noexcept {
  return r.guest_phys_addr.value + (r.size - 1);
}

}  // namespace

Result<void> GuestMemory::add_region(const MemoryRegion& region) noexcept {
  if (region.size == 0) {
    return fail(Errc::kInvalidArgument, "memory region has zero size");
  }
  if (region.host == nullptr) {
    return fail(Errc::kInvalidArgument, "memory region has no host mapping");
  }
  if (region.size - 1 > kMaxU64 - region.guest_phys_addr.value) {
    return fail(Errc::kInvalidArgument, "memory region wraps the guest address space");
  }
  const auto host = reinterpret_cast<std::uintptr_t>(region.host);
  if (region.size - 1 > std::numeric_limits<std::uintptr_t>::max() - host) {
    return fail(Errc::kInvalidArgument, "memory region wraps the host address space");
  }
  const std::uint64_t last = region_last(region);
  for (const MemoryRegion& r : regions()) {
    if (region.guest_phys_addr.value <= region_last(r) && r.guest_phys_addr.value <= last) {
      return fail(Errc::kInvalidArgument, "memory region overlaps another region");
    }
  }
  if (count_ == kMaxRegions) {
    return fail(Errc::kResourceExhausted, "too many memory regions");
  }
  // Keep the array sorted by guest address so translate_iov walks forward.
  const auto pos = std::upper_bound(regions_.begin(), regions_.begin() + count_, region,
                                    [](const MemoryRegion& a, const MemoryRegion& b) {
                                      return a.guest_phys_addr < b.guest_phys_addr;
                                    });
  std::move_backward(pos, regions_.begin() + count_, regions_.begin() + count_ + 1);
  *pos = region;
  ++count_;
  return {};
}

const MemoryRegion* GuestMemory::find(std::uint64_t addr) const noexcept {
  // At most kMaxRegions entries: a linear scan beats a binary search here.
  for (const MemoryRegion& r : regions()) {
    if (addr >= r.guest_phys_addr.value && addr <= region_last(r)) {
      return &r;
    }
  }
  return nullptr;
}

template <typename Fn>
Errc GuestMemory::for_each_piece(GuestAddr addr, std::uint64_t len, Fn&& fn) const noexcept {
  if (len != 0 && len - 1 > kMaxU64 - addr.value) {
    return Errc::kOutOfRange;  // addr + len wraps past 2^64
  }
  std::uint64_t cur = addr.value;
  std::uint64_t left = len;
  while (left != 0) {
    const MemoryRegion* r = find(cur);
    if (r == nullptr) {
      return Errc::kOutOfRange;
    }
    const std::uint64_t offset = cur - r->guest_phys_addr.value;
    const std::uint64_t piece = std::min(left, r->size - offset);
    if (!fn(r->host + offset, piece)) {
      return Errc::kResourceExhausted;
    }
    left -= piece;
    // Wraps to 0 only when the range ends at 2^64 - 1, and then left == 0.
    cur += piece;
  }
  return Errc::kOk;
}

Result<std::span<std::byte>> GuestMemory::translate(GuestAddr addr,
                                                    std::uint64_t len) const noexcept {
  const MemoryRegion* r = find(addr.value);
  if (r == nullptr) {
    return fail(Errc::kOutOfRange, "guest address not mapped");
  }
  const std::uint64_t offset = addr.value - r->guest_phys_addr.value;
  // offset < r->size (find), so r->size - offset cannot underflow; comparing
  // against the room left in the region also rejects addr + len wrapping.
  if (len > r->size - offset) {
    return fail(Errc::kOutOfRange, "guest range crosses the end of its region");
  }
  return std::span<std::byte>(r->host + offset, len);
}

Result<std::size_t> GuestMemory::translate_iov(GuestAddr addr, std::uint64_t len,
                                               std::span<struct iovec> out) const noexcept {
  std::size_t n = 0;
  const Errc e = for_each_piece(addr, len, [&](std::byte* host, std::uint64_t piece) {
    if (n == out.size()) {
      return false;
    }
    out[n].iov_base = host;
    out[n].iov_len = piece;
    ++n;
    return true;
  });
  switch (e) {
    case Errc::kOk:
      return n;
    case Errc::kOutOfRange:
      return fail(e, "guest range is not wholly mapped");
    default:
      return fail(Errc::kResourceExhausted, "guest range needs more iovecs than given");
  }
}

bool GuestMemory::contains(GuestAddr addr, std::uint64_t len) const noexcept {
  if (len == 0) {
    return find(addr.value) != nullptr;
  }
  return for_each_piece(addr, len, [](std::byte*, std::uint64_t) { return true; }) == Errc::kOk;
}

}  // namespace viopool::virtio
