// virtio-blk feature and config-space policy.
#include "vhost-backend/devices/blk/blk_device.h"

#include <cstring>

#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::blk {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }

template <typename T>
void put(std::array<std::uint8_t, kConfigSpaceBytes>& c, std::size_t off, T v) {
  std::memcpy(c.data() + off, &v, sizeof(T));  // little-endian host
}

}  // namespace

std::uint64_t offered_features(const BlkDeviceOptions& o) noexcept {
  namespace v = viopool::virtio;
  std::uint64_t f = bit(v::kFeatureVersion1) | bit(v::kFeatureRingIndirectDesc) |
                    bit(v::kFeatureRingEventIdx) | bit(v::kFeatureProtocolFeatures) |
                    bit(kFeatSizeMax) | bit(kFeatSegMax) | bit(kFeatBlkSize) | bit(kFeatFlush) |
                    bit(kFeatTopology);
  if (o.queues > 1) {
    f |= bit(kFeatMq);
  }
  if (o.packed_ring) {
    f |= bit(v::kFeatureRingPacked);
  }
  const bool ro = o.read_only || o.backend.read_only;
  if (ro) {
    f |= bit(kFeatRo);
  } else {
    if (o.backend.supports_discard) {
      f |= bit(kFeatDiscard);
    }
    if (o.backend.supports_write_zeroes) {
      f |= bit(kFeatWriteZeroes);
    }
  }
  return f;
}

BlkLimits limits(const BlkDeviceOptions& o) noexcept {
  BlkLimits l;
  l.capacity_sectors = o.backend.capacity_bytes / kSectorSize;
  l.block_size = o.backend.block_size;
  l.seg_max = kMaxDataSegments;
  l.size_max = kSizeMax;
  l.read_only = o.read_only || o.backend.read_only;
  l.discard = !l.read_only && o.backend.supports_discard;
  l.write_zeroes = !l.read_only && o.backend.supports_write_zeroes;
  l.max_discard_sectors = kMaxDiscardSectors;
  l.max_write_zeroes_sectors = kMaxDiscardSectors;
  return l;
}

std::array<std::uint8_t, kConfigSpaceBytes> config_space(const BlkDeviceOptions& o) noexcept {
  const BlkLimits l = limits(o);
  std::array<std::uint8_t, kConfigSpaceBytes> c{};
  put<std::uint64_t>(c, 0, l.capacity_sectors);     // capacity (512-byte sectors)
  put<std::uint32_t>(c, 8, l.size_max);             // size_max
  put<std::uint32_t>(c, 12, l.seg_max);             // seg_max
  // 16..19 geometry: not offered, left zero.
  put<std::uint32_t>(c, 20, l.block_size);          // blk_size
  put<std::uint8_t>(c, 24, static_cast<std::uint8_t>(o.backend.physical_block_exp));
  put<std::uint8_t>(c, 25, 0);                      // alignment_offset
  put<std::uint16_t>(c, 26, 1);                     // min_io_size (in blocks)
  put<std::uint32_t>(c, 28, o.backend.optimal_io_blocks);
  put<std::uint8_t>(c, 32, o.backend.volatile_cache ? 1 : 0);  // writeback
  put<std::uint16_t>(c, 34, o.queues);              // num_queues
  // Discard granularity: one logical block, in sectors.
  const std::uint32_t align = l.block_size / kSectorSize;
  if (l.discard) {
    put<std::uint32_t>(c, 36, l.max_discard_sectors);
    put<std::uint32_t>(c, 40, 1);                   // max_discard_seg
    put<std::uint32_t>(c, 44, align);
  }
  if (l.write_zeroes) {
    put<std::uint32_t>(c, 48, l.max_write_zeroes_sectors);
    put<std::uint32_t>(c, 52, 1);                   // max_write_zeroes_seg
    put<std::uint8_t>(c, 56, l.discard ? 1 : 0);    // write_zeroes_may_unmap
  }
  return c;
}

}  // namespace viopool::blk
