// virtio-blk wire constants (virtio 1.2 §5.2): feature bits, request types,
// status codes and fixed sizes. Shared by the device (devices/blk) and by
// our driver-side frontend (integration/frontend); pure constants, no code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace viopool::blk {

// Feature bits (VIRTIO_BLK_F_*).
inline constexpr unsigned kFeatSizeMax = 1;
inline constexpr unsigned kFeatSegMax = 2;
inline constexpr unsigned kFeatGeometry = 4;
inline constexpr unsigned kFeatRo = 5;
inline constexpr unsigned kFeatBlkSize = 6;
inline constexpr unsigned kFeatFlush = 9;
inline constexpr unsigned kFeatTopology = 10;
inline constexpr unsigned kFeatConfigWce = 11;
inline constexpr unsigned kFeatMq = 12;
inline constexpr unsigned kFeatDiscard = 13;
inline constexpr unsigned kFeatWriteZeroes = 14;

// Request types (VIRTIO_BLK_T_*).
inline constexpr std::uint32_t kTypeIn = 0;
inline constexpr std::uint32_t kTypeOut = 1;
inline constexpr std::uint32_t kTypeFlush = 4;
inline constexpr std::uint32_t kTypeGetId = 8;
inline constexpr std::uint32_t kTypeGetLifetime = 10;
inline constexpr std::uint32_t kTypeDiscard = 11;
inline constexpr std::uint32_t kTypeWriteZeroes = 13;
inline constexpr std::uint32_t kTypeSecureErase = 14;

// Status byte values (VIRTIO_BLK_S_*).
inline constexpr std::uint8_t kStatusOk = 0;
inline constexpr std::uint8_t kStatusIoErr = 1;
inline constexpr std::uint8_t kStatusUnsupp = 2;

inline constexpr std::uint32_t kSectorSize = 512;  // request sectors, whatever blk_size is
inline constexpr std::uint32_t kIdBytes = 20;      // GET_ID string length
inline constexpr std::size_t kHeaderBytes = 16;    // type, reserved, sector
inline constexpr std::size_t kSegmentBytes = 16;   // discard / write-zeroes range

}  // namespace viopool::blk
