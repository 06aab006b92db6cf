// Per-queue counters and a fixed-memory latency histogram of a virtio-blk
// device. One writer (the polling thread), relaxed reads by the control thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "vhost-backend/devices/net/net_stats.h"

namespace viopool::blk {

using net::Counter;

// Log-linear histogram of nanosecond latencies: for each power of two, 4
// sub-buckets, so a percentile is exact to within 25 %. 64 × 4 counters.
class LatencyHistogram {
 public:
  static constexpr unsigned kSub = 4;
  void record(std::uint64_t ns) noexcept { buckets_[index(ns)].add(1); }
  // Upper bound (ns) of the bucket holding the p-th percentile (0 < p ≤ 100);
  // 0 if empty.
  std::uint64_t percentile(double p) const noexcept;
  std::uint64_t count() const noexcept;

  static unsigned index(std::uint64_t ns) noexcept {
    if (ns < kSub) {
      return static_cast<unsigned>(ns);
    }
    const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(ns));
    const unsigned sub = static_cast<unsigned>((ns >> (msb - 2)) & (kSub - 1));
    return (msb - 1) * kSub + sub;  // msb >= 2 here
  }
  static std::uint64_t upper_bound(unsigned idx) noexcept {
    if (idx < kSub) {
      return idx;
    }
    const unsigned msb = idx / kSub + 1;
    const std::uint64_t sub = idx % kSub;
    return ((kSub + sub + 1) << (msb - 2)) - 1;
  }

 private:
  std::array<Counter, 64 * kSub> buckets_{};
};

inline std::uint64_t LatencyHistogram::count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& b : buckets_) {
    n += b.get();
  }
  return n;
}

inline std::uint64_t LatencyHistogram::percentile(double p) const noexcept {
  const std::uint64_t total = count();
  if (total == 0) {
    return 0;
  }
  const auto want = static_cast<std::uint64_t>(static_cast<double>(total) * p / 100.0 + 0.5);
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i].get();
    if (seen >= want && seen > 0) {
      return upper_bound(i);
    }
  }
  return upper_bound(static_cast<unsigned>(buckets_.size() - 1));
}

struct BlkQueueStats {
  Counter reads, writes, flushes, discards, write_zeroes, get_ids;
  Counter read_bytes, write_bytes;
  Counter io_errors;     // backend failures (VIRTIO_BLK_S_IOERR)
  Counter rejected;      // malformed or out-of-range requests (IOERR, no backend I/O)
  Counter unsupported;   // VIRTIO_BLK_S_UNSUPP
  Counter kicks, notifications;
  LatencyHistogram latency;  // backend submit → completion
};

}  // namespace viopool::blk
