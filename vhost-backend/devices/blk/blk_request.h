// virtio-blk requests (virtio 1.2 §5.2.6): one parser that turns a popped
// descriptor chain into a BlkIo for the backend, or into an immediate status
// for a malformed or unsupported request. The guest is the adversary: every
// length, sector and address is checked before use, and a bad request is
// answered with VIRTIO_BLK_S_IOERR / UNSUPP without affecting any other.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "vhost-backend/devices/blk/blk_backend.h"
#include "vhost-backend/devices/blk/virtio_blk.h"
#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/split_queue.h"

namespace viopool::blk {

// Data iovecs per request: seg_max advertised to the guest. Leaves room in a
// DescChain (256 buffers) for the header and status buffers.
inline constexpr std::uint32_t kMaxDataSegments = 128;

// What the device accepts; derived from the backend and the config (blk_device.h).
struct BlkLimits {
  std::uint64_t capacity_sectors = 0;
  std::uint32_t block_size = kSectorSize;
  std::uint32_t seg_max = kMaxDataSegments;
  std::uint32_t size_max = 0;  // largest data segment; 0: no limit
  std::uint32_t max_discard_sectors = 0;
  std::uint32_t max_write_zeroes_sectors = 0;
  bool read_only = false;
  bool discard = false;
  bool write_zeroes = false;
};

// Why a request completed without reaching the backend (for counters).
enum class BlkReject : std::uint8_t {
  kNone,
  kNoStatus,     // no device-writable byte for the status: completed with used len 0
  kBadChain,     // the chain itself was malformed (reported by SplitQueue)
  kBadHeader,    // header missing or short
  kBadAddress,   // a data buffer outside guest memory
  kOutOfRange,   // sectors beyond capacity or a length that overflows
  kBadLength,    // data length not a multiple of 512, a segment over size_max
  kTooManySegs,  // more than seg_max data segments
  kReadOnly,     // a write, discard or write-zeroes on a read-only device
  kUnsupported,  // unknown type or flags, or a feature not offered
};
const char* to_string(BlkReject r) noexcept;

// One request slot. The parser fills it; `io` (and `iov`) stay valid until the
// backend returns the completion, then complete() writes the status.
struct BlkRequest {
  std::uint16_t head = 0;        // buffer id to complete (split: the head index)
  std::uint16_t desc_count = 1;  // ring slots the chain used (packed rings)
  std::uint32_t type = 0;
  std::uint64_t sector = 0;
  std::byte* status = nullptr;  // host pointer to the status byte; null: kNoStatus
  bool needs_io = false;        // false: complete at once with `immediate_status`
  std::uint8_t immediate_status = kStatusOk;
  BlkReject reject = BlkReject::kNone;
  std::uint32_t data_len = 0;   // bytes moved on success (IN/OUT/GET_ID)
  BlkIo io;
  std::array<iovec, kMaxDataSegments> iov{};
  std::uint64_t start_ns = 0;   // set by the device, for latency
};

// Parses `chain` (already popped; `chain.ok()` may be false) into `req`. Never
// fails: a malformed request gets needs_io = false and an error status.
// `serial` answers GET_ID (written into guest memory here).
void parse_request(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                   const BlkLimits& lim, std::string_view serial, BlkRequest& req) noexcept;

// Writes the status byte (if the chain has one) and returns the used length to
// put in the used ring: bytes the device wrote into the guest's buffers.
std::uint32_t complete_request(BlkRequest& req, std::uint8_t status) noexcept;

}  // namespace viopool::blk
