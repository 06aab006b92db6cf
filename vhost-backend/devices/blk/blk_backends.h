// Local BlockBackends (blk_backend.h): io_uring on a file or block device (the
// production backend), malloc (a RAM disk) and null (completes everything and
// touches nothing: the benchmark backend, as SPDK's bdev_null). No DPDK here:
// the blk device and the unit tests drive them directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "vhost-backend/base/result.h"
#include "vhost-backend/devices/blk/blk_backend.h"

namespace viopool::blk {

struct UringBackendOptions {
  // How reads and writes reach the image.
  enum class DirectIo : std::uint8_t {
    kAuto,  // O_DIRECT when the offset and every iovec are aligned, the page cache otherwise
    kOn,    // O_DIRECT only: a misaligned read or write completes with -EINVAL
    kOff,   // the page cache only
  };

  std::string path;  // an existing regular file or block device
  bool read_only = false;
  DirectIo direct = DirectIo::kAuto;
  std::uint32_t queue_depth = 128;  // I/Os in flight per queue, [1, 4096]
  // Logical block size, a power of two in [512, 65536]. 0: the block device's
  // logical block size, or 512 for a regular file.
  std::uint32_t block_size = 0;
  // Serve only this extent of the image (a volume carved from a larger file or
  // block device): bytes [extent_offset, extent_offset + extent_bytes), both
  // multiples of the block size. extent_bytes 0: the whole image.
  std::uint64_t extent_offset = 0;
  std::uint64_t extent_bytes = 0;
  // Test hook: moves at most this many bytes per io_uring request, one iovec
  // at a time, so that every read and write takes the short-transfer path.
  // 0 (the default): off.
  std::uint32_t split_io_bytes_for_test = 0;
};

// Opens `o.path` and probes it (size, block sizes, discard); control thread,
// may block. Rings are created by start(). On failure `why` says what is wrong
// with which path (kInvalidArgument for options or file type, kIo for system
// call failures, kUnsupported when O_DIRECT is required and impossible).
//
// Contract details of this backend:
// - A read or write that transfers fewer bytes than asked is resubmitted for
//   the remainder until it completes; a step that moves nothing (end of file,
//   e.g. the image was truncated underneath) completes with -EIO. A completion
//   never reports success with fewer bytes than the iovecs hold.
// - Reads and writes are limited to INT32_MAX bytes (BlkCompletion::result);
//   larger ones complete with -EINVAL, as do requests beyond the capacity.
// - kFlush is fdatasync. kDiscard punches a hole (reads return zeroes after).
//   kWriteZeroes tries, in order, a hole punch (only with `unmap` and discard
//   support), FALLOC_FL_ZERO_RANGE, then writing zeroes; a method the file
//   system refuses with EOPNOTSUPP is skipped from then on.
// - completion_fd(q) is an eventfd the ring signals for every completion batch.
//   poll() clears it before it drains the ring, so it is readable exactly when
//   a completion arrived that poll() has not yet seen (a stale wake-up after a
//   race with the kernel is possible and harmless). poll() returning `max`
//   completions means more may be ready: call it again before sleeping.
Result<std::unique_ptr<BlockBackend>> make_uring_backend(const UringBackendOptions& o,
                                                         std::string& why);

// A RAM disk of capacity_bytes (rounded down to block_size), zero-filled and
// allocated lazily by the first start(), kept until the backend is destroyed
// (data survives stop()/start()). I/O completes inside submit(); poll()
// returns the completions in submission order, at most 256 per queue in flight.
// Discard and write-zeroes with unmap give the pages back to the kernel.
// block_size must be a power of two in [512, 65536], else start() fails.
std::unique_ptr<BlockBackend> make_malloc_backend(std::uint64_t capacity_bytes,
                                                  std::uint32_t block_size);

// Completes every request successfully without touching data (reads leave the
// buffers as they are); requests beyond the capacity still fail with -EINVAL.
// Same queueing and block_size rules as malloc.
std::unique_ptr<BlockBackend> make_null_backend(std::uint64_t capacity_bytes,
                                                std::uint32_t block_size);

}  // namespace viopool::blk
