// virtio-net device model without DPDK: the feature bits viopool offers for a
// device config, and checks on what a frontend negotiated. The data path that
// moves packets lives in vhost/vhost_net_device (rte_vhost does ring access).
#pragma once

#include <cstdint>

#include "vhost-backend/base/result.h"

namespace viopool::net {

// virtio 1.2 §5.1.3 feature bits used by viopool.
inline constexpr unsigned kFeatCtrlVq = 17;
inline constexpr unsigned kFeatMrgRxbuf = 15;
inline constexpr unsigned kFeatGuestAnnounce = 21;
inline constexpr unsigned kFeatMq = 22;

struct NetFeatureOptions {
  std::uint16_t queue_pairs = 1;
  bool mrg_rxbuf = true;
  bool packed_ring = true;
};

// Feature bits offered to the frontend. Only what the data path implements:
// no checksum/TSO offloads (the local backends cannot honour them yet).
std::uint64_t offered_features(const NetFeatureOptions& o) noexcept;

// Validates an acked feature set: it must be a subset of `offered`
// (kProtocol otherwise).
Result<void> check_acked_features(std::uint64_t offered, std::uint64_t acked) noexcept;

}  // namespace viopool::net
