// virtio-blk device model without DPDK: feature bits, limits and the config
// space (virtio 1.2 §5.2.4) that follow from the backend and the config.
// The vhost layer (vhost/vhost_blk_device) moves requests; blk_request parses.
#pragma once

#include <array>
#include <cstdint>

#include "vhost-backend/devices/blk/blk_backend.h"
#include "vhost-backend/devices/blk/blk_request.h"

namespace viopool::blk {

// Size of the config space we expose: up to write_zeroes_may_unmap and its
// padding (secure erase is not offered).
inline constexpr std::size_t kConfigSpaceBytes = 60;
// Largest data segment we accept (size_max): 1 MiB, far above a guest page.
inline constexpr std::uint32_t kSizeMax = 1u << 20;
// Largest discard / write-zeroes range, in sectors (1 GiB).
inline constexpr std::uint32_t kMaxDiscardSectors = (1u << 30) / kSectorSize;

struct BlkDeviceOptions {
  std::uint16_t queues = 1;
  bool read_only = false;
  bool packed_ring = true;  // offer VIRTIO_F_RING_PACKED
  BlockBackendInfo backend;
};

std::uint64_t offered_features(const BlkDeviceOptions& o) noexcept;
BlkLimits limits(const BlkDeviceOptions& o) noexcept;
// Little-endian config space as the guest reads it.
std::array<std::uint8_t, kConfigSpaceBytes> config_space(const BlkDeviceOptions& o) noexcept;

}  // namespace viopool::blk
