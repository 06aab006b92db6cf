// BlockBackend: where a virtio-blk device's I/O goes. Local implementations
// (blk_backends.h): io_uring on a file or block device, malloc (RAM), null.
// The pooled volume (fabric) implements the same interface. Data moves
// through iovecs that point straight into guest memory: no bounce copy.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhost-backend/base/result.h"

namespace viopool::blk {

enum class BlkOp : std::uint8_t {
  kRead,
  kWrite,
  kFlush,
  kDiscard,      // may deallocate; reads of the range afterwards return zeroes
  kWriteZeroes,  // must read back as zeroes; `unmap` allows deallocation
};

// One I/O. Owned by the caller (the device) until its completion is returned
// by poll(); the backend keeps the pointer, never copies the iovecs' data.
struct BlkIo {
  BlkOp op = BlkOp::kRead;
  bool unmap = false;          // kWriteZeroes only
  std::uint64_t offset = 0;    // bytes; validated by the device against capacity
  std::uint64_t length = 0;    // bytes (kDiscard/kWriteZeroes; sum of iov for read/write)
  const iovec* iov = nullptr;  // kRead/kWrite: buffers in guest memory
  std::uint32_t iovcnt = 0;
  void* cookie = nullptr;      // returned untouched in the completion
};

struct BlkCompletion {
  void* cookie = nullptr;
  std::int32_t result = 0;  // >= 0 success (bytes for read/write), -errno on failure
};

struct BlockBackendInfo {
  std::uint64_t capacity_bytes = 0;   // multiple of block_size
  std::uint32_t block_size = 512;     // logical block size (power of two ≥ 512)
  std::uint32_t physical_block_exp = 0;  // log2(physical / logical)
  std::uint32_t optimal_io_blocks = 0;   // 0: unknown
  bool read_only = false;
  bool supports_discard = false;
  bool supports_write_zeroes = false;
  bool volatile_cache = true;        // needs FLUSH for durability (writeback)
  std::uint32_t max_queue_depth = 0; // per queue; 0: unlimited
  // Completions come from afar (a network): a poller waiting only for them
  // should sleep on completion_fd() soon rather than spin.
  bool remote = false;
};

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;

  // Short name of the mechanism ("uring", "malloc", "null").
  virtual const char* kind() const noexcept = 0;
  virtual const BlockBackendInfo& info() const noexcept = 0;

  // Control thread, before any submit: prepares `queues` independent queues
  // (one per virtqueue; each is used by one polling thread only).
  virtual Result<void> start(std::uint16_t queues) = 0;
  // Control thread, after the polling thread stopped and every submitted I/O
  // completed (or the device gave up on them). Idempotent.
  virtual void stop() noexcept = 0;

  // Polling thread of queue q. Submits up to n I/Os; returns how many were
  // accepted (the rest are retried later: the queue is full). Never blocks.
  virtual std::uint32_t submit(std::uint16_t q, BlkIo* const* ios, std::uint32_t n) noexcept = 0;
  // Polling thread of queue q. Returns up to `max` completions. Never blocks
  // and makes no system call when nothing is ready.
  virtual std::uint32_t poll(std::uint16_t q, BlkCompletion* out, std::uint32_t max) noexcept = 0;
  // I/Os submitted on q and not yet returned by poll().
  virtual std::uint32_t in_flight(std::uint16_t q) const noexcept = 0;
  // An eventfd that becomes readable when queue q has completions, so an idle
  // poller can sleep; -1 if completions are immediate (poll right away).
  virtual int completion_fd(std::uint16_t q) const noexcept = 0;
  // Polling thread, right before it sleeps on completion_fd(q): resets the fd
  // and returns false if completions are already waiting (do not sleep).
  virtual bool prepare_sleep(std::uint16_t q) noexcept {
    (void)q;
    return true;
  }
  // Polling thread: queue q has work of its own with no I/O in flight (a
  // pooled volume's delayed fabric ack), so an idle poller must still
  // poll(q) by the time prepare_sleep(q) arms completion_fd(q) for.
  virtual bool needs_service(std::uint16_t q) const noexcept {
    (void)q;
    return false;
  }
  // Any thread: the mechanism's own counters (a pooled volume's reconnects,
  // timeouts...), by name, for device_stats. Approximate while queues run.
  virtual void counters(std::vector<std::pair<const char*, std::uint64_t>>& out) const {
    (void)out;
  }
};

}  // namespace viopool::blk
