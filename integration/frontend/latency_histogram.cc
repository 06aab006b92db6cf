// LatencyHistogram: values below 2^(kSubBits+1) have a bucket each; above, a
// value's bucket is its octave (position of the top bit) and the kSubBits bits
// under the top bit.
#include "integration/frontend/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace viopool::frontend {

std::size_t LatencyHistogram::bucket_of(std::uint64_t v) noexcept {
  constexpr std::uint64_t kLinear = std::uint64_t{1} << (kSubBits + 1);
  if (v < kLinear) {
    return static_cast<std::size_t>(v);
  }
  const unsigned msb = static_cast<unsigned>(std::bit_width(v)) - 1;  // >= kSubBits + 1
  const unsigned shift = msb - kSubBits;
  const std::uint64_t sub = (v >> shift) & ((std::uint64_t{1} << kSubBits) - 1);
  return (static_cast<std::size_t>(shift + 1) << kSubBits) + static_cast<std::size_t>(sub);
}

std::uint64_t LatencyHistogram::bucket_low(std::size_t b) noexcept {
  constexpr std::size_t kLinear = std::size_t{1} << (kSubBits + 1);
  if (b < kLinear) {
    return b;
  }
  const unsigned shift = static_cast<unsigned>(b >> kSubBits) - 1;
  const std::uint64_t sub = b & ((std::size_t{1} << kSubBits) - 1);
  return ((std::uint64_t{1} << kSubBits) | sub) << shift;
}

std::uint64_t LatencyHistogram::bucket_high(std::size_t b) noexcept {
  constexpr std::size_t kLinear = std::size_t{1} << (kSubBits + 1);
  if (b < kLinear) {
    return b;
  }
  const unsigned shift = static_cast<unsigned>(b >> kSubBits) - 1;
  return bucket_low(b) + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t ns) noexcept {
  ++counts_[bucket_of(ns)];
  ++count_;
  sum_ += ns;
  min_ = std::min(min_, ns);
  max_ = std::max(max_, ns);
}

void LatencyHistogram::merge(const LatencyHistogram& o) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) {
    counts_[i] += o.counts_[i];
  }
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

void LatencyHistogram::reset() noexcept { *this = LatencyHistogram(); }

std::uint64_t LatencyHistogram::percentile(double q) const noexcept {
  if (count_ == 0) {
    return 0;
  }
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      const std::uint64_t lo = bucket_low(b);
      const std::uint64_t mid = lo + (bucket_high(b) - lo) / 2;
      return std::clamp(mid, min(), max_);
    }
  }
  return max_;
}

}  // namespace viopool::frontend
