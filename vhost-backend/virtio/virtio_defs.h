// Wire layout of the virtio split ring and the virtio constants shared by every
// device: descriptor and ring flags, transport feature bits, device status bits.
// split_queue reads these structures from guest memory; features.h names the bits.
// Everything is little-endian (virtio 1.x); names never collide with Linux/DPDK macros.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace viopool::virtio {

// virtio 1.x rings are little-endian and so is every host we build for; a
// big-endian port would need byte swaps on every field read below.
static_assert(std::endian::native == std::endian::little, "virtio rings are little-endian");

// ---- Split ring (virtio 1.2, 2.7) ----

// One entry of the descriptor table (struct virtq_desc).
struct VringDesc {
  std::uint64_t addr;   // guest-physical address of the buffer
  std::uint32_t len;    // buffer length in bytes
  std::uint16_t flags;  // kDesc* below
  std::uint16_t next;   // index of the next descriptor when flags has kDescNext
};
static_assert(sizeof(VringDesc) == 16);
static_assert(offsetof(VringDesc, addr) == 0);
static_assert(offsetof(VringDesc, len) == 8);
static_assert(offsetof(VringDesc, flags) == 12);
static_assert(offsetof(VringDesc, next) == 14);

// Header of the driver area (struct virtq_avail): `ring[size]` of 16-bit heads
// follows at kAvailRingOffset, then `used_event` (EVENT_IDX) after the ring.
struct VringAvail {
  std::uint16_t flags;  // kAvailFlagNoInterrupt
  std::uint16_t idx;    // free-running index of the next slot the driver will fill
};
static_assert(sizeof(VringAvail) == 4);
static_assert(offsetof(VringAvail, idx) == 2);

// One entry of the device area's ring (struct virtq_used_elem).
struct VringUsedElem {
  std::uint32_t id;   // head index of the completed chain
  std::uint32_t len;  // bytes the device wrote into the chain's writable buffers
};
static_assert(sizeof(VringUsedElem) == 8);
static_assert(offsetof(VringUsedElem, len) == 4);

// Header of the device area (struct virtq_used): `ring[size]` of VringUsedElem
// follows at kUsedRingOffset, then `avail_event` (EVENT_IDX) after the ring.
struct VringUsed {
  std::uint16_t flags;  // kUsedFlagNoNotify
  std::uint16_t idx;    // free-running index of the next slot the device will fill
};
static_assert(sizeof(VringUsed) == 4);
static_assert(offsetof(VringUsed, idx) == 2);

inline constexpr std::size_t kAvailRingOffset = sizeof(VringAvail);
inline constexpr std::size_t kUsedRingOffset = sizeof(VringUsed);

// Largest split queue size the spec allows (2.7: "Queue Size ... maximum 32768").
inline constexpr std::uint32_t kMaxQueueSize = 32768;

// Entries an indirect table may have even when the queue is smaller. The spec
// bounds a chain by the queue size, but Linux's virtio_blk puts seg_max + 2
// descriptors in one table whatever the queue size (130 on QEMU's default
// 128-entry vhost-user-blk queue); QEMU and DPDK accept up to 1024, as we do.
inline constexpr std::uint32_t kMaxIndirectEntries = 1024;

// Alignment the spec requires of each area (2.7, table "Virtqueue Part Alignment").
inline constexpr std::size_t kDescTableAlign = 16;
inline constexpr std::size_t kAvailAlign = 2;
inline constexpr std::size_t kUsedAlign = 4;

// Byte sizes of the three areas for a queue of `size` entries, including the
// trailing event fields (present whether or not EVENT_IDX is negotiated).
constexpr std::size_t desc_table_bytes(std::uint32_t size) noexcept {
  return sizeof(VringDesc) * size;
}
constexpr std::size_t avail_ring_bytes(std::uint32_t size) noexcept {
  return kAvailRingOffset + sizeof(std::uint16_t) * size + sizeof(std::uint16_t);
}
constexpr std::size_t used_ring_bytes(std::uint32_t size) noexcept {
  return kUsedRingOffset + sizeof(VringUsedElem) * size + sizeof(std::uint16_t);
}
// Offsets of used_event (in the avail area) and avail_event (in the used area).
constexpr std::size_t used_event_offset(std::uint32_t size) noexcept {
  return kAvailRingOffset + sizeof(std::uint16_t) * size;
}
constexpr std::size_t avail_event_offset(std::uint32_t size) noexcept {
  return kUsedRingOffset + sizeof(VringUsedElem) * size;
}

// Descriptor flags (VIRTQ_DESC_F_*).
inline constexpr std::uint16_t kDescNext = 1;      // chain continues at `next`
inline constexpr std::uint16_t kDescWrite = 2;     // buffer is device-writable
inline constexpr std::uint16_t kDescIndirect = 4;  // buffer holds a table of descriptors

// Ring flags: the device asks the driver not to kick (VIRTQ_USED_F_NO_NOTIFY),
// the driver asks the device not to interrupt (VIRTQ_AVAIL_F_NO_INTERRUPT).
// Both are hints, and unused when EVENT_IDX is negotiated.
inline constexpr std::uint16_t kUsedFlagNoNotify = 1;
inline constexpr std::uint16_t kAvailFlagNoInterrupt = 1;

// ---- Feature bit numbers (virtio 1.2, 6; vhost-user) ----
// Bit numbers, not masks: pass them to FeatureSet::has()/with(). Device-specific
// bits (0..23) live with their device.
inline constexpr unsigned kFeatureNotifyOnEmpty = 24;     // VIRTIO_F_NOTIFY_ON_EMPTY (legacy)
inline constexpr unsigned kFeatureLogAll = 26;            // VHOST_F_LOG_ALL (dirty-page logging)
inline constexpr unsigned kFeatureAnyLayout = 27;         // VIRTIO_F_ANY_LAYOUT
inline constexpr unsigned kFeatureRingIndirectDesc = 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr unsigned kFeatureRingEventIdx = 29;      // VIRTIO_RING_F_EVENT_IDX
inline constexpr unsigned kFeatureProtocolFeatures = 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr unsigned kFeatureVersion1 = 32;          // VIRTIO_F_VERSION_1
inline constexpr unsigned kFeatureAccessPlatform = 33;    // VIRTIO_F_ACCESS_PLATFORM
inline constexpr unsigned kFeatureRingPacked = 34;        // VIRTIO_F_RING_PACKED
inline constexpr unsigned kFeatureInOrder = 35;           // VIRTIO_F_IN_ORDER
inline constexpr unsigned kFeatureOrderPlatform = 36;     // VIRTIO_F_ORDER_PLATFORM
inline constexpr unsigned kFeatureSrIov = 37;             // VIRTIO_F_SR_IOV
inline constexpr unsigned kFeatureNotificationData = 38;  // VIRTIO_F_NOTIFICATION_DATA

// ---- Device status bits (virtio 1.2, 2.1) ----
inline constexpr std::uint8_t kStatusAcknowledge = 1;
inline constexpr std::uint8_t kStatusDriver = 2;
inline constexpr std::uint8_t kStatusDriverOk = 4;
inline constexpr std::uint8_t kStatusFeaturesOk = 8;
// Set by the device when a queue is broken (SplitQueue::broken()).
inline constexpr std::uint8_t kStatusNeedsReset = 64;
inline constexpr std::uint8_t kStatusFailed = 128;

}  // namespace viopool::virtio
