// A virtio-blk driver over vhost-user, for component tests and benchmarks of
// vhost-user-blk backends (viopool-host's blk devices, qemu-storage-daemon):
// negotiation, the config space, N request queues, asynchronous requests with
// a per-request virtio status, and data patterns to fill and verify buffers.
// The vhost-user bring-up is virtio_driver_session.h's (shared with
// crypto_driver.h); rings and memory come from driver_queue.h and
// guest_memory_arena.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "integration/frontend/slot_driver.h"
#include "integration/frontend/vhost_user_frontend.h"
#include "integration/frontend/virtio_driver_session.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/devices/blk/virtio_blk.h"
#include "vhost-backend/virtio/features.h"

namespace viopool::frontend {

// ---- virtio-blk (virtio 1.2, 5.2), driver's view; wire constants in devices/blk/virtio_blk.h ----
// Name of a virtio-blk or transport feature bit, or nullptr.
const char* blk_feature_name(unsigned bit) noexcept;

// Completion status (VIRTIO_BLK_S_*). kBlkStatusNone is ours: the device
// completed the request without writing a status byte.
inline constexpr std::uint8_t kBlkStatusNone = 0xff;
const char* blk_status_name(std::uint8_t status) noexcept;

// Config space bytes we read: through write_zeroes_may_unmap (and padding).
// qemu-storage-daemon refuses reads beyond its struct (60 bytes in QEMU 7.2).
inline constexpr std::uint32_t kBlkConfigBytes = 60;

// Request header (struct virtio_blk_req's fixed part).
struct BlkOutHdr {
  std::uint32_t type;
  std::uint32_t reserved;  // ioprio in legacy devices; 0
  std::uint64_t sector;
};
static_assert(sizeof(BlkOutHdr) == 16);
static_assert(offsetof(BlkOutHdr, sector) == 8);

// One range of DISCARD / WRITE_ZEROES (struct virtio_blk_discard_write_zeroes).
struct BlkDiscardWriteZeroes {
  std::uint64_t sector;
  std::uint32_t num_sectors;
  std::uint32_t flags;  // bit 0: unmap (WRITE_ZEROES only)
};
static_assert(sizeof(BlkDiscardWriteZeroes) == 16);
static_assert(offsetof(BlkDiscardWriteZeroes, num_sectors) == 8);
static_assert(offsetof(BlkDiscardWriteZeroes, flags) == 12);
inline constexpr std::uint32_t kBlkWriteZeroesUnmap = 1;

// The config space, decoded. A field whose feature was not offered is 0.
struct BlkConfig {
  std::uint64_t capacity_sectors = 0;  // in 512-byte sectors
  std::uint32_t size_max = 0;          // largest data segment; 0: no limit
  std::uint32_t seg_max = 0;           // data segments per request; 0: unknown
  std::uint32_t blk_size = blk::kSectorSize;
  std::uint8_t physical_block_exp = 0;
  std::uint8_t alignment_offset = 0;
  std::uint16_t min_io_size = 0;
  std::uint32_t opt_io_size = 0;
  std::uint8_t writeback = 0;
  std::uint16_t num_queues = 1;
  std::uint32_t max_discard_sectors = 0;
  std::uint32_t max_discard_seg = 0;
  std::uint32_t discard_sector_alignment = 0;
  std::uint32_t max_write_zeroes_sectors = 0;
  std::uint32_t max_write_zeroes_seg = 0;
  std::uint8_t write_zeroes_may_unmap = 0;
};
// Decodes a little-endian config space of kBlkConfigBytes; `offered` says which fields are valid.
BlkConfig parse_blk_config(std::span<const std::byte> raw, virtio::FeatureSet offered) noexcept;

struct BlkDriverOptions {
  std::string socket_path;
  std::uint16_t num_queues = 1;  // request queues to set up; <= what the device offers
  std::uint16_t queue_size = 256;
  ArenaOptions arena;
  FrontendOptions frontend;
  Indirect use_indirect = Indirect::kNo;  // used only if INDIRECT_DESC is negotiated
  // kPacked acks VIRTIO_F_RING_PACKED and sets up packed virtqueues; connect()
  // fails with kUnsupported (and says so in `why`) if the backend does not
  // offer it. kSplit never acks it, even when offered.
  RingLayout ring_layout = RingLayout::kSplit;
  // Feature bits never acked even when offered (e.g. to test without EVENT_IDX).
  virtio::FeatureSet exclude;
};

// A data buffer in guest memory (usually an ArenaBlock or a piece of one).
using BlkBuffer = GuestBuffer;
inline BlkBuffer to_blk_buffer(const ArenaBlock& b) { return to_guest_buffer(b); }

// One DISCARD / WRITE_ZEROES range.
struct BlkRange {
  std::uint64_t sector = 0;
  std::uint32_t num_sectors = 0;
  bool unmap = false;
};

struct BlkCompletion {
  std::uint64_t cookie = 0;
  std::uint8_t status = kBlkStatusNone;
  std::uint32_t used_len = 0;  // bytes the device says it wrote, status byte included
};

// A request's bookkeeping in host memory (its bytes in guest memory are
// blk_driver.cc's slot layout).
struct BlkSlot {
  std::uint64_t cookie = 0;
};

// Ownership and threads: connect() and stop() are control-path calls that block
// on the socket (each exchange bounded by options.frontend.timeout). Each queue
// is driven by one thread at a time; different queues may run on different
// threads. Submissions check only what protects our own memory (buffers in the
// arena, slot and descriptor counts) and the limits the device advertised
// (seg_max, size_max); they do not refuse writes to a read-only device or
// requests the device did not offer, so tests can see the device reject them.
class BlkDriver : public SlotDriver<BlkSlot> {
 public:
  // Performs the whole vhost-user set-up: SET_OWNER, feature and protocol
  // feature negotiation (MQ, REPLY_ACK, CONFIG), GET_QUEUE_NUM, GET_CONFIG,
  // SET_FEATURES, SET_MEM_TABLE and, per queue, SET_VRING_NUM/BASE/ADDR/CALL/
  // KICK and SET_VRING_ENABLE. Packed rings: SET_VRING_BASE carries
  // kPackedFreshStart (offset 0, wrap counter 1) and SET_VRING_ADDR the
  // descriptor ring and the driver / device event areas in its desc / avail /
  // used fields. `why`, if given, receives a message naming the step that failed.
  static Result<std::unique_ptr<BlkDriver>> connect(const BlkDriverOptions& options,
                                                    std::string* why = nullptr);
  // Calls stop() if it was not called (so it may block, bounded by the
  // message timeout; a broken connection fails at once).
  ~BlkDriver();

  // Stops every queue with GET_VRING_BASE and returns the bases the backend
  // reported (its next avail index per queue; packed: offset | wrap << 15). Requests still in
  // flight are abandoned. Idempotent; later calls return the first result.
  Result<std::vector<std::uint32_t>> stop();

  // ---- Negotiated state (the rest, and queue(), kick() and in_flight(),
  // are SlotDriver's) ----
  const BlkConfig& config() const noexcept { return config_; }
  std::uint64_t capacity_bytes() const noexcept {
    return config_.capacity_sectors * blk::kSectorSize;
  }
  // Data segments one request may carry (seg_max, bounded by the queue size).
  std::uint32_t max_data_segments() const noexcept;

  // ---- Requests (queue q's thread) ----
  // Each adds one request and returns at once; nothing reaches the device
  // until kick(q). kInvalidArgument for a bad queue, a buffer outside the
  // arena, a length that is not a multiple of 512 or beyond seg_max/size_max;
  // kResourceExhausted when the queue is full (reap first).
  Result<void> read(std::uint16_t q, std::uint64_t sector, std::span<const BlkBuffer> data,
                    std::uint64_t cookie) noexcept;
  Result<void> write(std::uint16_t q, std::uint64_t sector, std::span<const BlkBuffer> data,
                     std::uint64_t cookie) noexcept;
  Result<void> flush(std::uint16_t q, std::uint64_t cookie) noexcept;
  // `id` (normally blk::kIdBytes long) is passed whole as the writable buffer.
  Result<void> get_id(std::uint16_t q, BlkBuffer id, std::uint64_t cookie) noexcept;
  // At most kMaxRanges ranges.
  Result<void> discard(std::uint16_t q, std::span<const BlkRange> ranges,
                       std::uint64_t cookie) noexcept;
  Result<void> write_zeroes(std::uint16_t q, std::span<const BlkRange> ranges,
                            std::uint64_t cookie) noexcept;
  // Any request: header type/sector, then `out` (device-readable) and `in`
  // (device-writable) buffers, then the status byte. Only arena checks.
  Result<void> submit_raw(std::uint16_t q, std::uint32_t type, std::uint64_t sector,
                          std::span<const BlkBuffer> out, std::span<const BlkBuffer> in,
                          std::uint64_t cookie) noexcept;

  // Completed requests, without waiting (busy-poll). Returns the count.
  Result<std::size_t> poll(std::uint16_t q, std::span<BlkCompletion> out) noexcept;
  // Waits on the call eventfd up to `limit` for completions, then polls.
  // Returns 0 on timeout. Leaves the queue's interrupts enabled; call
  // queue(q).set_interrupts(kDisabled) to go back to pure busy-polling.
  Result<std::size_t> wait(std::uint16_t q, std::span<BlkCompletion> out,
                           std::chrono::milliseconds limit) noexcept;

  // Convenience for tests and set-up: submit_raw + kick, then polls until the
  // request completes or `limit` passes (kTimeout). Needs an idle queue.
  Result<BlkCompletion> execute(std::uint16_t q, std::uint32_t type, std::uint64_t sector,
                                std::span<const BlkBuffer> out, std::span<const BlkBuffer> in,
                                std::chrono::milliseconds limit = std::chrono::seconds(10));

  static constexpr std::size_t kMaxRanges = 16;

 private:
  BlkDriver() = default;
  Result<void> setup(const BlkDriverOptions& options, std::string* why);
  Result<void> check_data(std::span<const BlkBuffer> data) const noexcept;
  Result<void> submit_ranges(std::uint16_t q, std::uint32_t type, std::span<const BlkRange> ranges,
                             std::uint64_t cookie) noexcept;
  // Builds the chain for slot `slot`: header, out buffers, extra readable
  // bytes (ranges), in buffers, status.
  Result<void> submit_slot(std::uint16_t q, std::uint32_t type, std::uint64_t sector,
                           std::span<const BlkBuffer> out, std::uint32_t range_bytes,
                           std::span<const BlkBuffer> in, std::uint64_t cookie,
                           const BlkRange* ranges, std::size_t nranges) noexcept;

  BlkConfig config_;
};

// ---- Data patterns ----
// A pattern is a function of (seed, absolute device byte offset): the 8-byte
// word at offset o is a hash of both, so data written at one offset and read
// back at another (or stale data from another write) never matches. Offsets
// and lengths must be multiples of 8.
void fill_pattern(std::span<std::byte> buf, std::uint64_t device_offset,
                  std::uint64_t seed) noexcept;
// Byte index of the first 8-byte word in `buf` that differs from the pattern,
// or nullopt if all match.
std::optional<std::size_t> find_pattern_mismatch(std::span<const std::byte> buf,
                                                 std::uint64_t device_offset,
                                                 std::uint64_t seed) noexcept;
// True if every byte is zero.
bool all_zero(std::span<const std::byte> buf) noexcept;

}  // namespace viopool::frontend
