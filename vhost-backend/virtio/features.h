// Feature bit sets and their negotiation. Devices build the offered set from the
// bit numbers in virtio_defs.h (plus their own); the vhost layer passes what the
// frontend acked to negotiate() before the device accepts it.
#pragma once

#include <cstdint>
#include <string>

#include "vhost-backend/base/result.h"

namespace viopool::virtio {

// A set of virtio feature bits (a 64-bit mask). Bit numbers >= 64 are never set.
class FeatureSet {
 public:
  constexpr FeatureSet() noexcept = default;
  constexpr explicit FeatureSet(std::uint64_t bits) noexcept : bits_(bits) {}

  constexpr bool has(unsigned bit) const noexcept {
    return bit < 64 && (bits_ & (std::uint64_t{1} << bit)) != 0;
  }
  // Returns a copy with `bit` set; a bit number >= 64 leaves the set unchanged.
  constexpr FeatureSet with(unsigned bit) const noexcept {
    return bit < 64 ? FeatureSet(bits_ | (std::uint64_t{1} << bit)) : *this;
  }
  constexpr FeatureSet without(unsigned bit) const noexcept {
    return bit < 64 ? FeatureSet(bits_ & ~(std::uint64_t{1} << bit)) : *this;
  }
  // True if every bit of `other` is also in this set.
  constexpr bool contains(FeatureSet other) const noexcept { return (other.bits_ & ~bits_) == 0; }
  constexpr std::uint64_t bits() const noexcept { return bits_; }

  constexpr bool operator==(const FeatureSet&) const noexcept = default;

 private:
  std::uint64_t bits_ = 0;
};

// Checks the frontend's acknowledgement against what we offered. Returns the
// negotiated set (= acked) or Errc::kProtocol if acked has a bit we did not
// offer: the frontend is then buggy or hostile and the device must refuse it.
// Control path; never blocks.
Result<FeatureSet> negotiate(FeatureSet offered, FeatureSet acked) noexcept;

// Name of a transport/vhost feature bit from virtio_defs.h ("VERSION_1",
// "RING_EVENT_IDX", ...), or nullptr for bits this layer does not know
// (device-specific bits are named by their device).
const char* feature_name(unsigned bit) noexcept;

// "VERSION_1|RING_EVENT_IDX|bit5" for logs and the control API: known bits by
// name, others as "bit<N>", "none" for the empty set. Allocates; control path only.
std::string to_string(FeatureSet features);

}  // namespace viopool::virtio
