// Strong types used across layers so that a guest address, a length and a
// queue index cannot be swapped by accident.
#pragma once

#include <compare>
#include <cstdint>

namespace viopool {

template <typename Tag, typename Rep>
struct StrongValue {
  Rep value{};
  constexpr StrongValue() = default;
  constexpr explicit StrongValue(Rep v) : value(v) {}
  constexpr auto operator<=>(const StrongValue&) const = default;
};

struct GuestAddrTag {};
struct QueueIndexTag {};

// A guest-physical address as written by the guest driver into a descriptor.
using GuestAddr = StrongValue<GuestAddrTag, std::uint64_t>;
// A virtqueue index within a device (vring index in vhost-user terms).
using QueueIndex = StrongValue<QueueIndexTag, std::uint16_t>;

// Typed booleans for parameters.
enum class Writable : bool { kNo = false, kYes = true };

}  // namespace viopool
