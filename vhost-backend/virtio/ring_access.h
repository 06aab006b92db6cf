// Access to memory shared with the guest, common to the split and packed ring
// walkers: relaxed atomic 16-bit fields (ordering comes from explicit fences at
// the call sites) and single-copy descriptor reads that defeat TOCTOU.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace viopool::virtio::ring {

// Ring index and flag fields; callers checked their alignment at create().
inline std::uint16_t load16(std::uint16_t* p) noexcept {
  return std::atomic_ref<std::uint16_t>(*p).load(std::memory_order_relaxed);
}
inline void store16(std::uint16_t* p, std::uint16_t v) noexcept {
  std::atomic_ref<std::uint16_t>(*p).store(v, std::memory_order_relaxed);
}

// Copies descriptor `idx` of `table` into a local exactly once. An indirect
// table may be misaligned, hence memcpy. The compiler-only fence orders the copy
// before every use of the local, so the optimizer cannot re-read guest memory,
// which the guest may have rewritten since (TOCTOU).
template <typename Desc>
Desc read_desc(const std::byte* table, std::uint32_t idx) noexcept {
  Desc d;
  std::memcpy(&d, table + std::size_t{idx} * sizeof(Desc), sizeof(d));
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return d;
}

inline bool aligned(const std::byte* p, std::size_t alignment) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

}  // namespace viopool::virtio::ring
