// Fixed-memory latency histogram for the frontend's benchmarks: log-linear
// buckets (64 per power of two, so any percentile is within 1.6 % of the true
// value) over the whole uint64 nanosecond range, ~30 KiB, no allocation after
// construction. blk_workload.cc keeps one per thread and merges them.
#pragma once

#include <array>
#include <cstdint>

namespace viopool::frontend {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 6;  // 64 linear sub-buckets per octave
  static constexpr std::size_t kBuckets = (64 - kSubBits + 1) << kSubBits;

  void record(std::uint64_t ns) noexcept;
  void merge(const LatencyHistogram& other) noexcept;
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  // The value at quantile q (0..1): the midpoint of the bucket holding the
  // ceil(q * count)-th smallest sample, clamped to [min, max]. 0 when empty.
  std::uint64_t percentile(double q) const noexcept;

  static std::size_t bucket_of(std::uint64_t v) noexcept;
  static std::uint64_t bucket_low(std::size_t b) noexcept;
  static std::uint64_t bucket_high(std::size_t b) noexcept;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
  std::uint64_t max_ = 0;
};

}  // namespace viopool::frontend
