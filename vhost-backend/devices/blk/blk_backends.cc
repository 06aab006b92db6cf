// Local BlockBackends: io_uring on a file or block device, malloc and null.
// malloc and null complete I/O inside submit() and share one bounded
// completion ring per queue. The uring backend keeps, per queue, one io_uring,
// one eventfd and a fixed table of slots; a request that needs several system
// calls (short transfers, write-zeroes fallbacks) is driven on from poll().
#include "vhost-backend/devices/blk/blk_backends.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "vhost-backend/base/check.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("blk-backend")

namespace viopool::blk {
namespace {

constexpr std::uint32_t kMinBlockSize = 512;       // virtio-blk sectors
constexpr std::uint32_t kMaxBlockSize = 65536;     // largest logical block we serve
constexpr std::uint32_t kMaxUringDepth = 4096;     // per queue; keeps a slot table small
constexpr std::uint64_t kMaxTransfer = INT32_MAX;  // BlkCompletion::result holds the byte count

bool valid_block_size(std::uint32_t bs) noexcept {
  return bs >= kMinBlockSize && bs <= kMaxBlockSize && std::has_single_bit(bs);
}

bool is_aligned(std::uint64_t v, std::uint64_t alignment) noexcept {
  return (v & (alignment - 1)) == 0;
}

bool in_range(std::uint64_t offset, std::uint64_t length, std::uint64_t capacity) noexcept {
  return offset <= capacity && length <= capacity - offset;
}

// Checks what every backend checks before touching anything: the op, the
// read-only flag, the capacity (the device validated it already; this is the
// backend's own guard, since a write past the end would grow a file or
// overrun the RAM disk) and the transfer size. Returns 0 or -errno, and the
// bytes the request covers in *bytes (iovec sum for read/write, `length` for
// discard/write-zeroes).
std::int32_t check_request(const BlockBackendInfo& info, const BlkIo& io,
                           std::uint64_t* bytes) noexcept {
  *bytes = 0;
  switch (io.op) {
    case BlkOp::kRead:
    case BlkOp::kWrite: {
      if (io.op == BlkOp::kWrite && info.read_only) {
        return -EROFS;
      }
      if (io.iovcnt > 0 && io.iov == nullptr) {
        return -EINVAL;
      }
      std::uint64_t total = 0;
      for (std::uint32_t i = 0; i < io.iovcnt; ++i) {
        if (io.iov[i].iov_len > kMaxTransfer - total) {
          return -EINVAL;
        }
        total += io.iov[i].iov_len;
      }
      if (!in_range(io.offset, total, info.capacity_bytes)) {
        return -EINVAL;
      }
      *bytes = total;
      return 0;
    }
    case BlkOp::kFlush:
      return 0;
    case BlkOp::kDiscard:
    case BlkOp::kWriteZeroes: {
      if (info.read_only) {
        return -EROFS;
      }
      if (!in_range(io.offset, io.length, info.capacity_bytes)) {
        return -EINVAL;
      }
      const bool supported =
          io.op == BlkOp::kDiscard ? info.supports_discard : info.supports_write_zeroes;
      if (!supported) {
        return -EOPNOTSUPP;
      }
      *bytes = io.length;
      return 0;
    }
  }
  return -EINVAL;  // an op value outside the enum
}

const char* op_name(BlkOp op) noexcept {
  switch (op) {
    case BlkOp::kRead:
      return "read";
    case BlkOp::kWrite:
      return "write";
    case BlkOp::kFlush:
      return "flush";
    case BlkOp::kDiscard:
      return "discard";
    case BlkOp::kWriteZeroes:
      return "write-zeroes";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// malloc and null: completions are immediate.

// Completes each request in submit() through execute() and hands the results
// back from poll() in submission order. A queue holds at most kDepth
// completions not yet polled, so submit() refuses once a poller falls behind.
class ImmediateBackend : public BlockBackend {
 public:
  static constexpr std::uint32_t kDepth = 256;  // power of two: ring positions are masked

  explicit ImmediateBackend(BlockBackendInfo info) : info_(info) {}

  const BlockBackendInfo& info() const noexcept override { return info_; }

  Result<void> start(std::uint16_t queues) override {
    if (queues == 0) {
      return fail(Errc::kInvalidArgument, "a block backend needs at least one queue");
    }
    if (!rings_.empty()) {
      return fail(Errc::kAlreadyExists, "block backend already started");
    }
    if (!valid_block_size(info_.block_size)) {
      return fail(Errc::kInvalidArgument, "block size must be a power of two in [512, 65536]");
    }
    VIOPOOL_TRY(prepare());
    rings_.reserve(queues);
    for (std::uint16_t i = 0; i < queues; ++i) {
      rings_.push_back(std::make_unique<Ring>());
    }
    return {};
  }

  void stop() noexcept override { rings_.clear(); }

  std::uint32_t submit(std::uint16_t q, BlkIo* const* ios, std::uint32_t n) noexcept override {
    VIOPOOL_ASSERT(q < rings_.size());
    Ring& r = *rings_[q];
    std::uint32_t i = 0;
    for (; i < n && r.head - r.tail < kDepth; ++i) {
      r.slots[r.head & (kDepth - 1)] = BlkCompletion{ios[i]->cookie, execute(*ios[i])};
      ++r.head;
    }
    r.in_flight.store(r.head - r.tail, std::memory_order_relaxed);
    return i;
  }

  std::uint32_t poll(std::uint16_t q, BlkCompletion* out, std::uint32_t max) noexcept override {
    VIOPOOL_ASSERT(q < rings_.size());
    Ring& r = *rings_[q];
    std::uint32_t i = 0;
    for (; i < max && r.tail != r.head; ++i) {
      out[i] = r.slots[r.tail & (kDepth - 1)];
      ++r.tail;
    }
    r.in_flight.store(r.head - r.tail, std::memory_order_relaxed);
    return i;
  }

  std::uint32_t in_flight(std::uint16_t q) const noexcept override {
    return rings_[q]->in_flight.load(std::memory_order_relaxed);
  }

  int completion_fd(std::uint16_t) const noexcept override { return -1; }

 protected:
  // Control thread, from start(): allocates what execute() needs.
  virtual Result<void> prepare() { return {}; }
  // Polling thread: performs `io`; returns its BlkCompletion::result.
  virtual std::int32_t execute(const BlkIo& io) noexcept = 0;

 private:
  // One per queue, on its own cache lines: queues run on different threads.
  struct alignas(64) Ring {
    std::array<BlkCompletion, kDepth> slots{};
    std::uint32_t head = 0;                   // next submission; wraps (unsigned arithmetic)
    std::uint32_t tail = 0;                   // next completion to hand out
    std::atomic<std::uint32_t> in_flight{0};  // head - tail, readable from any thread
  };

  BlockBackendInfo info_;
  std::vector<std::unique_ptr<Ring>> rings_;
};

BlockBackendInfo immediate_info(std::uint64_t capacity_bytes, std::uint32_t block_size) {
  BlockBackendInfo info;
  info.block_size = block_size;
  // An invalid block size is reported by start(); capacity stays 0 meanwhile.
  info.capacity_bytes =
      valid_block_size(block_size) ? capacity_bytes & ~std::uint64_t{block_size - 1} : 0;
  info.supports_discard = true;
  info.supports_write_zeroes = true;
  info.volatile_cache = false;  // nothing to flush: writes are as durable as they will get
  info.max_queue_depth = ImmediateBackend::kDepth;
  return info;
}

enum class Deallocate : bool { kNo = false, kYes = true };

class MallocBackend final : public ImmediateBackend {
 public:
  MallocBackend(std::uint64_t capacity_bytes, std::uint32_t block_size)
      : ImmediateBackend(immediate_info(capacity_bytes, block_size)) {}
  ~MallocBackend() override {
    if (data_ != nullptr) {
      ::munmap(data_, info().capacity_bytes);
    }
  }
  MallocBackend(const MallocBackend&) = delete;
  MallocBackend& operator=(const MallocBackend&) = delete;

  const char* kind() const noexcept override { return "malloc"; }

 protected:
  Result<void> prepare() override {
    if (data_ != nullptr || info().capacity_bytes == 0) {
      return {};
    }
    // Anonymous memory is zero-filled and committed page by page on first
    // write, so a large, mostly empty RAM disk costs what it holds.
    void* p = ::mmap(nullptr, info().capacity_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      return fail(Errc::kResourceExhausted, "cannot allocate the RAM disk", errno);
    }
    data_ = static_cast<std::byte*>(p);
    return {};
  }

  std::int32_t execute(const BlkIo& io) noexcept override {
    std::uint64_t bytes = 0;
    if (const std::int32_t err = check_request(info(), io, &bytes); err != 0) {
      return err;
    }
    switch (io.op) {
      case BlkOp::kRead:
      case BlkOp::kWrite: {
        std::byte* p = data_ + io.offset;
        for (std::uint32_t i = 0; i < io.iovcnt; ++i) {
          const iovec& v = io.iov[i];
          if (v.iov_len == 0) {
            continue;  // memcpy with a null pointer is undefined even for 0 bytes
          }
          if (io.op == BlkOp::kRead) {
            std::memcpy(v.iov_base, p, v.iov_len);
          } else {
            std::memcpy(p, v.iov_base, v.iov_len);
          }
          p += v.iov_len;
        }
        return static_cast<std::int32_t>(bytes);  // check_request bounds it by INT32_MAX
      }
      case BlkOp::kFlush:
        return 0;
      case BlkOp::kDiscard:
        zero(io.offset, bytes, Deallocate::kYes);
        return 0;
      case BlkOp::kWriteZeroes:
        zero(io.offset, bytes, io.unmap ? Deallocate::kYes : Deallocate::kNo);
        return 0;
    }
    return -EINVAL;
  }

 private:
  void zero(std::uint64_t offset, std::uint64_t length, Deallocate dealloc) noexcept {
    if (length == 0) {
      return;
    }
    std::byte* const begin = data_ + offset;
    if (dealloc == Deallocate::kYes) {
      // Whole pages go back to the kernel (MADV_DONTNEED on private anonymous
      // memory reads back as zeroes); partial pages at the edges are cleared.
      // data_ is page-aligned (mmap), so offsets tell where pages start.
      const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
      const std::uint64_t head = (page - offset % page) % page;  // bytes before the first page
      const std::uint64_t tail = (offset + length) % page;       // bytes after the last one
      if (length > head + tail &&
          ::madvise(begin + head, length - head - tail, MADV_DONTNEED) == 0) {
        std::memset(begin, 0, head);
        std::memset(begin + length - tail, 0, tail);
        return;
      }
    }
    std::memset(begin, 0, length);
  }

  std::byte* data_ = nullptr;  // capacity_bytes of anonymous memory, from the first start()
};

class NullBackend final : public ImmediateBackend {
 public:
  NullBackend(std::uint64_t capacity_bytes, std::uint32_t block_size)
      : ImmediateBackend(immediate_info(capacity_bytes, block_size)) {}
  const char* kind() const noexcept override { return "null"; }

 protected:
  std::int32_t execute(const BlkIo& io) noexcept override {
    std::uint64_t bytes = 0;
    if (const std::int32_t err = check_request(info(), io, &bytes); err != 0) {
      return err;
    }
    return io.op == BlkOp::kRead || io.op == BlkOp::kWrite ? static_cast<std::int32_t>(bytes) : 0;
  }
};

// ---------------------------------------------------------------------------
// io_uring

// Zeroes written when the file system refuses every fallocate mode: up to
// kZeroIovs iovecs of kZeroChunk bytes per request, all pointing at one
// read-only buffer aligned for O_DIRECT on any block size we accept.
constexpr std::size_t kZeroChunk = kMaxBlockSize;
constexpr std::uint32_t kZeroIovs = 16;  // 1 MiB per request
alignas(kMaxBlockSize) const std::byte kZeroes[kZeroChunk] = {};

const std::array<iovec, kZeroIovs>& zero_iovs() noexcept {
  static const std::array<iovec, kZeroIovs> iovs = [] {
    std::array<iovec, kZeroIovs> a{};
    for (auto& v : a) {
      // writev only reads the buffer; iovec simply has no const variant.
      v = iovec{const_cast<std::byte*>(kZeroes), kZeroChunk};
    }
    return a;
  }();
  return iovs;
}

// The kernel rejects readv/writev with more iovecs than this (UIO_MAXIOV); a
// longer list is moved in several requests through the short-transfer path.
constexpr std::uint32_t kMaxIovPerRequest = IOV_MAX;
// -EAGAIN from a read or write is retried this many times in a row.
constexpr std::uint8_t kMaxAgainRetries = 8;
// user_data of the cancel request stop() sends; slots use their index.
constexpr std::uint64_t kCancelTag = ~std::uint64_t{0};

class UringBackend final : public BlockBackend {
 public:
  using DirectIo = UringBackendOptions::DirectIo;
  // SQEs handed to the kernel per io_uring_enter at most. A disk that gets
  // a long batch in one go starts its first request later (bench/blk on a
  // virtio disk: 32 per call cost 10% of the IOPS; fio shows the same), while
  // a device as fast as memory wants the fewest system calls (zram: 1 per
  // call halves the IOPS). 8 keeps both near their best.
  static constexpr unsigned kSqesPerEnter = 8;

  // What make_uring_backend opened and found.
  struct Image {
    std::string path;
    int buffered_fd = -1;         // -1 with DirectIo::kOn
    int direct_fd = -1;           // -1 with DirectIo::kOff or when O_DIRECT is unavailable
    std::uint32_t dio_align = 0;  // alignment O_DIRECT needs (offset, length and memory)
    std::uint64_t base = 0;       // where the served extent starts in the image
  };

  UringBackend(const UringBackendOptions& o, const BlockBackendInfo& info, Image image)
      : info_(info),
        path_(std::move(image.path)),
        mode_(o.direct),
        depth_(o.queue_depth),
        split_(o.split_io_bytes_for_test),
        buffered_fd_(image.buffered_fd),
        direct_fd_(image.direct_fd),
        dio_align_(image.dio_align),
        base_(image.base),
        direct_usable_(image.direct_fd >= 0),
        punch_ok_(info.supports_discard) {}

  ~UringBackend() override {
    stop();
    if (buffered_fd_ >= 0) {
      ::close(buffered_fd_);
    }
    if (direct_fd_ >= 0) {
      ::close(direct_fd_);
    }
  }
  UringBackend(const UringBackend&) = delete;
  UringBackend& operator=(const UringBackend&) = delete;

  const char* kind() const noexcept override { return "uring"; }
  const BlockBackendInfo& info() const noexcept override { return info_; }

  Result<void> start(std::uint16_t queues) override {
    if (queues == 0) {
      return fail(Errc::kInvalidArgument, "a block backend needs at least one queue");
    }
    if (!queues_.empty()) {
      return fail(Errc::kAlreadyExists, "block backend already started");
    }
    queues_.reserve(queues);
    for (std::uint16_t i = 0; i < queues; ++i) {
      auto q = std::make_unique<Queue>();
      q->slots.resize(depth_);
      q->free.reserve(depth_);
      for (std::uint32_t k = depth_; k-- > 0;) {
        q->free.push_back(k);
      }
      // The CQ ring gets twice the SQ entries and at most depth_ requests are
      // in flight, each with one SQE or CQE at a time: the CQ never overflows.
      // Completions are posted when this (polling) thread next enters the
      // kernel instead of interrupting it (COOP_TASKRUN); TASKRUN_FLAG tells
      // poll() when to enter. Kernels without them get the default ring.
      io_uring_params params{};
      params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
      int r = io_uring_queue_init_params(depth_, &q->ring, &params);
      if (r == -EINVAL) {
        r = io_uring_queue_init(depth_, &q->ring, 0);
      }
      if (r < 0) {
        stop();
        return fail(Errc::kIo, "io_uring_queue_init failed", -r);
      }
      q->ring_ready = true;
      q->efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (q->efd < 0) {
        const int err = errno;
        stop();
        return fail(Errc::kIo, "eventfd failed", err);
      }
      if (const int r = io_uring_register_eventfd(&q->ring, q->efd); r < 0) {
        stop();
        return fail(Errc::kIo, "io_uring_register_eventfd failed", -r);
      }
      queues_.push_back(std::move(q));
    }
    VIOPOOL_LOG_DEBUG("path={} started queues={} depth={}", path_, queues, depth_);
    return {};
  }

  void stop() noexcept override {
    for (std::size_t i = 0; i < queues_.size(); ++i) {
      drain(*queues_[i], i);
    }
    queues_.clear();
  }

  std::uint32_t submit(std::uint16_t qi, BlkIo* const* ios, std::uint32_t n) noexcept override {
    VIOPOOL_ASSERT(qi < queues_.size());
    Queue& q = *queues_[qi];
    std::uint32_t accepted = 0;
    while (accepted < n && !q.free.empty()) {
      const std::uint32_t idx = q.free.back();
      Slot& s = q.slots[idx];
      s = Slot{};
      s.io = ios[accepted];
      std::int32_t result = 0;
      Next next = begin(q, idx, &result);
      if (next == Next::kDone) {
        // Failed or trivial without a system call: completed through a NOP so
        // that it reaches poll() and the eventfd like any other completion.
        next = queue_local(q, idx, result);
      }
      if (next == Next::kNoSqe) {
        s.io = nullptr;
        break;  // SQ ring still full of requests a failed submit left; retried by poll()
      }
      q.free.pop_back();
      ++accepted;
      if (io_uring_sq_ready(&q.ring) >= kSqesPerEnter) {
        flush_sq(q, qi);
      }
    }
    publish_in_flight(q);
    if (io_uring_sq_ready(&q.ring) > 0) {
      flush_sq(q, qi);
    }
    return accepted;
  }

  std::uint32_t poll(std::uint16_t qi, BlkCompletion* out, std::uint32_t max) noexcept override {
    VIOPOOL_ASSERT(qi < queues_.size());
    Queue& q = *queues_[qi];
    if (io_uring_sq_ready(&q.ring) > 0) {
      flush_sq(q, qi);
    }
    // Completion work is pending in the kernel (COOP_TASKRUN): run it.
    if (__atomic_load_n(q.ring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN) {
      (void)io_uring_get_events(&q.ring);
    }
    // The eventfd is left alone here: a busy poller never reads it (one
    // read(2) per reap would cost more than the reap); prepare_sleep() resets
    // it right before the poller sleeps on it.
    if (io_uring_cq_ready(&q.ring) == 0) {
      return 0;
    }

    std::uint32_t n = 0;
    unsigned seen = 0;
    bool requeued = false;
    unsigned head = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&q.ring, head, cqe) {
      if (n == max) {
        break;
      }
      ++seen;
      const std::uint64_t tag = cqe->user_data;
      if (tag >= q.slots.size()) {
        VIOPOOL_BUG("io_uring completion with an unknown tag");
        continue;
      }
      const auto idx = static_cast<std::uint32_t>(tag);
      std::int32_t result = 0;
      const Next next = step(q, idx, cqe->res, &result);
      if (next == Next::kQueued) {
        requeued = true;
        continue;
      }
      if (next == Next::kNoSqe) {
        // Impossible: the slot's previous request just completed, and at most
        // depth_ (≤ SQ entries) slots hold an SQE.
        VIOPOOL_BUG("no SQE for a follow-up request");
        result = -EIO;
      }
      out[n++] = finish(q, qi, idx, result);
    }
    io_uring_cq_advance(&q.ring, seen);
    if (requeued) {
      flush_sq(q, qi);
    }
    publish_in_flight(q);
    return n;
  }

  std::uint32_t in_flight(std::uint16_t qi) const noexcept override {
    return queues_[qi]->in_flight.load(std::memory_order_relaxed);
  }

  int completion_fd(std::uint16_t qi) const noexcept override { return queues_[qi]->efd; }

 private:
  enum class Stage : std::uint8_t {
    kLocal,      // completed without I/O: a NOP carries `result` to poll()
    kTransfer,   // readv/writev of the caller's iovecs
    kFlush,      // fdatasync
    kPunch,      // fallocate(PUNCH_HOLE | KEEP_SIZE)
    kZeroRange,  // fallocate(ZERO_RANGE | KEEP_SIZE)
    kZeroWrite,  // writev from kZeroes
  };

  enum class Next : std::uint8_t {
    kQueued,  // an SQE was prepared; a CQE will follow
    kDone,    // the request is complete; *result holds its result
    kNoSqe,   // the SQ ring is full; nothing was prepared
  };

  struct Slot {
    BlkIo* io = nullptr;        // owned by the caller until finish()
    std::uint64_t total = 0;    // bytes kTransfer/kZeroWrite move
    std::uint64_t done = 0;     // bytes moved so far
    std::uint32_t iov_idx = 0;  // kTransfer cursor: first caller iovec not fully moved
    std::uint64_t iov_off = 0;  //   and how much of it was moved
    iovec piece{};              // a remainder starting inside an iovec, or a short zero run
    std::int32_t result = 0;    // kLocal: the result poll() reports
    Stage stage = Stage::kLocal;
    bool direct = false;        // all of the caller's buffers suit O_DIRECT
    bool on_direct_fd = false;  // the request in flight went to the O_DIRECT fd
    std::uint8_t again = 0;     // -EAGAIN retries in a row
  };

  struct Queue {
    io_uring ring{};
    bool ring_ready = false;
    int efd = -1;
    std::vector<Slot> slots;          // depth_ entries; the slot index is the CQE tag
    std::vector<std::uint32_t> free;  // free slot indices; capacity depth_, never reallocates
    std::atomic<std::uint32_t> in_flight{0};    // depth_ - free.size(), readable from any thread

    ~Queue() {
      if (ring_ready) {
        io_uring_queue_exit(&ring);
      }
      if (efd >= 0) {
        ::close(efd);
      }
    }
  };

  void publish_in_flight(Queue& q) noexcept {
    q.in_flight.store(depth_ - static_cast<std::uint32_t>(q.free.size()),
                      std::memory_order_relaxed);
  }

  // The fd fallocate and fsync use: either refers to the same inode.
  int meta_fd() const noexcept { return buffered_fd_ >= 0 ? buffered_fd_ : direct_fd_; }

  Next queue_local(Queue& q, std::uint32_t idx, std::int32_t result) noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
    if (sqe == nullptr) {
      return Next::kNoSqe;
    }
    Slot& s = q.slots[idx];
    s.stage = Stage::kLocal;
    s.result = result;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, idx);
    return Next::kQueued;
  }

  Next queue_fallocate(Queue& q, std::uint32_t idx, Stage stage, int mode) noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
    if (sqe == nullptr) {
      return Next::kNoSqe;
    }
    Slot& s = q.slots[idx];
    s.stage = stage;
    // offset and length were checked against the capacity (< 2^63).
    io_uring_prep_fallocate(sqe, meta_fd(), mode, static_cast<off_t>(base_ + s.io->offset),
                            static_cast<off_t>(s.io->length));
    io_uring_sqe_set_data64(sqe, idx);
    return Next::kQueued;
  }

  // First request of a new I/O.
  Next begin(Queue& q, std::uint32_t idx, std::int32_t* result) noexcept {
    Slot& s = q.slots[idx];
    const BlkIo& io = *s.io;
    std::uint64_t bytes = 0;
    if (const std::int32_t err = check_request(info_, io, &bytes); err != 0) {
      *result = err;
      return Next::kDone;
    }
    switch (io.op) {
      case BlkOp::kRead:
      case BlkOp::kWrite: {
        if (bytes == 0) {
          *result = 0;
          return Next::kDone;
        }
        s.stage = Stage::kTransfer;
        s.total = bytes;
        skip_empty_iovecs(s);
        if (direct_usable_.load(std::memory_order_relaxed)) {
          s.direct = suits_direct(io);
          if (!s.direct && mode_ == DirectIo::kOn) {
            *result = -EINVAL;
            return Next::kDone;
          }
        }
        return queue_transfer(q, idx, result);
      }
      case BlkOp::kFlush: {
        if (info_.read_only) {
          *result = 0;  // nothing of ours can be dirty
          return Next::kDone;
        }
        io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
        if (sqe == nullptr) {
          return Next::kNoSqe;
        }
        s.stage = Stage::kFlush;
        io_uring_prep_fsync(sqe, meta_fd(), IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data64(sqe, idx);
        return Next::kQueued;
      }
      case BlkOp::kDiscard:
        if (bytes == 0) {
          *result = 0;
          return Next::kDone;
        }
        if (!punch_ok_.load(std::memory_order_relaxed)) {
          *result = -EOPNOTSUPP;
          return Next::kDone;
        }
        return queue_fallocate(q, idx, Stage::kPunch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
      case BlkOp::kWriteZeroes:
        if (bytes == 0) {
          *result = 0;
          return Next::kDone;
        }
        // With unmap the guest allows deallocation: a hole reads back as zeroes
        // and frees space (ZERO_RANGE would keep or even allocate blocks).
        if (io.unmap && punch_ok_.load(std::memory_order_relaxed)) {
          return queue_fallocate(q, idx, Stage::kPunch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
        }
        return begin_zeroing(q, idx, result);
    }
    *result = -EINVAL;
    return Next::kDone;
  }

  // kWriteZeroes without (or after a refused) hole punch.
  Next begin_zeroing(Queue& q, std::uint32_t idx, std::int32_t* result) noexcept {
    if (zero_range_ok_.load(std::memory_order_relaxed)) {
      return queue_fallocate(q, idx, Stage::kZeroRange, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
    }
    Slot& s = q.slots[idx];
    s.stage = Stage::kZeroWrite;
    s.total = s.io->length;
    s.done = 0;
    s.direct = direct_usable_.load(std::memory_order_relaxed);
    return queue_transfer(q, idx, result);
  }

  // True if the offset and every iovec are aligned for O_DIRECT.
  bool suits_direct(const BlkIo& io) const noexcept {
    if (!is_aligned(io.offset, dio_align_)) {
      return false;
    }
    for (std::uint32_t i = 0; i < io.iovcnt; ++i) {
      if (!is_aligned(reinterpret_cast<std::uintptr_t>(io.iov[i].iov_base), dio_align_) ||
          !is_aligned(io.iov[i].iov_len, dio_align_)) {
        return false;
      }
    }
    return true;
  }

  static void skip_empty_iovecs(Slot& s) noexcept {
    while (s.iov_idx < s.io->iovcnt && s.io->iov[s.iov_idx].iov_len == s.iov_off) {
      ++s.iov_idx;
      s.iov_off = 0;
    }
  }

  // Queues a readv/writev for what is left of a kTransfer or kZeroWrite.
  Next queue_transfer(Queue& q, std::uint32_t idx, std::int32_t* result) noexcept {
    Slot& s = q.slots[idx];
    const BlkIo& io = *s.io;
    const std::uint64_t left = s.total - s.done;
    const iovec* iov = nullptr;
    unsigned cnt = 0;
    bool write = true;
    if (s.stage == Stage::kZeroWrite) {
      if (left >= kZeroChunk) {
        iov = zero_iovs().data();
        cnt = static_cast<unsigned>(std::min<std::uint64_t>(left / kZeroChunk, kZeroIovs));
      } else {
        s.piece = iovec{const_cast<std::byte*>(kZeroes), static_cast<std::size_t>(left)};
        iov = &s.piece;
        cnt = 1;
      }
    } else {
      write = io.op == BlkOp::kWrite;
      const iovec& cur = io.iov[s.iov_idx];  // exists: done < total, empty iovecs skipped
      if (s.iov_off > 0 || split_ > 0) {
        std::uint64_t len = cur.iov_len - s.iov_off;
        if (split_ > 0) {
          len = std::min<std::uint64_t>(len, split_);
        }
        s.piece =
            iovec{static_cast<std::byte*>(cur.iov_base) + s.iov_off, static_cast<std::size_t>(len)};
        iov = &s.piece;
        cnt = 1;
      } else {
        iov = io.iov + s.iov_idx;
        cnt = std::min(io.iovcnt - s.iov_idx, kMaxIovPerRequest);
      }
    }

    const std::uint64_t pos = base_ + io.offset + s.done;
    int fd = buffered_fd_;
    if (s.direct) {
      // The caller's iovecs were checked by suits_direct() and the zero
      // buffer is aligned; what a short transfer left may start mid-block.
      const bool aligned =
          is_aligned(pos, dio_align_) &&
          (iov != &s.piece ||
           (is_aligned(reinterpret_cast<std::uintptr_t>(s.piece.iov_base), dio_align_) &&
            is_aligned(s.piece.iov_len, dio_align_)));
      if (aligned) {
        fd = direct_fd_;
      }
    }
    if (fd < 0) {
      // DirectIo::kOn and a misaligned range: refused at once, or after a
      // short transfer that cannot be continued with O_DIRECT.
      *result = s.done == 0 ? -EINVAL : -EIO;
      return Next::kDone;
    }

    io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
    if (sqe == nullptr) {
      return Next::kNoSqe;
    }
    s.on_direct_fd = fd == direct_fd_;
    if (write) {
      io_uring_prep_writev(sqe, fd, iov, cnt, pos);
    } else {
      io_uring_prep_readv(sqe, fd, iov, cnt, pos);
    }
    io_uring_sqe_set_data64(sqe, idx);
    return Next::kQueued;
  }

  // Moves the kTransfer cursor past `bytes` just transferred.
  static void advance(Slot& s, std::uint64_t bytes) noexcept {
    s.done += bytes;
    if (s.stage != Stage::kTransfer) {
      return;
    }
    const BlkIo& io = *s.io;
    while (bytes > 0 && s.iov_idx < io.iovcnt) {
      const std::uint64_t avail = io.iov[s.iov_idx].iov_len - s.iov_off;
      if (bytes < avail) {
        s.iov_off += bytes;
        bytes = 0;
      } else {
        bytes -= avail;
        ++s.iov_idx;
        s.iov_off = 0;
      }
    }
    skip_empty_iovecs(s);
  }

  // Handles the CQE of slot idx: finishes the I/O or queues its next request.
  Next step(Queue& q, std::uint32_t idx, std::int32_t res, std::int32_t* result) noexcept {
    Slot& s = q.slots[idx];
    switch (s.stage) {
      case Stage::kLocal:
        *result = s.result;
        return Next::kDone;
      case Stage::kFlush:
        *result = res;
        return Next::kDone;
      case Stage::kPunch:
        if (res == -EOPNOTSUPP) {
          note_refused(punch_ok_, "hole punch");
          if (s.io->op == BlkOp::kWriteZeroes) {
            return begin_zeroing(q, idx, result);
          }
        }
        *result = res;
        return Next::kDone;
      case Stage::kZeroRange:
        if (res == -EOPNOTSUPP) {
          note_refused(zero_range_ok_, "FALLOC_FL_ZERO_RANGE");
          return begin_zeroing(q, idx, result);  // now writes zeroes
        }
        *result = res;
        return Next::kDone;
      case Stage::kTransfer:
      case Stage::kZeroWrite:
        break;
    }

    if (res < 0) {
      if (res == -EAGAIN && s.again < kMaxAgainRetries) {
        ++s.again;
        return queue_transfer(q, idx, result);
      }
      if (res == -EINVAL && s.on_direct_fd && mode_ == DirectIo::kAuto) {
        // The file system wants more alignment than statx reported (or could
        // report): use the page cache from now on.
        if (direct_usable_.exchange(false, std::memory_order_relaxed)) {
          VIOPOOL_LOG_WARN("path={} O_DIRECT refused with EINVAL; using the page cache", path_);
        }
        s.direct = false;
        return queue_transfer(q, idx, result);
      }
      *result = res;
      return Next::kDone;
    }
    const std::uint64_t left = s.total - s.done;
    if (res == 0 || static_cast<std::uint64_t>(res) > left) {
      // Nothing moved: the end of the file moved below the capacity (the image
      // was truncated) or the device is gone. Failing beats looping.
      *result = -EIO;
      return Next::kDone;
    }
    s.again = 0;
    advance(s, static_cast<std::uint64_t>(res));
    if (s.done == s.total) {
      *result = s.stage == Stage::kTransfer ? static_cast<std::int32_t>(s.total) : 0;
      return Next::kDone;
    }
    return queue_transfer(q, idx, result);
  }

  void note_refused(std::atomic<bool>& flag, const char* what) noexcept {
    if (flag.exchange(false, std::memory_order_relaxed)) {
      VIOPOOL_LOG_INFO("path={} file system refuses {}; using the fallback", path_, what);
    }
  }

  BlkCompletion finish(Queue& q, std::uint16_t qi, std::uint32_t idx,
                       std::int32_t result) noexcept {
    Slot& s = q.slots[idx];
    const BlkIo& io = *s.io;
    if (result < 0 && result != -EINVAL && result != -EROFS && result != -EOPNOTSUPP) {
      VIOPOOL_LOG_WARN_RL("path={} q={} {} offset={} failed: {}", path_, qi, op_name(io.op),
                          io.offset, std::strerror(-result));
    }
    const BlkCompletion c{io.cookie, result};
    s.io = nullptr;
    q.free.push_back(idx);  // within the reserved capacity: no allocation
    return c;
  }

  // Hands queued SQEs to the kernel. A failed io_uring_enter (EAGAIN, ENOMEM)
  // leaves them in the SQ ring for the next poll(); the eventfd is signalled
  // so that a sleeping poller comes back to retry.
  void flush_sq(Queue& q, std::uint16_t qi) noexcept {
    const int r = io_uring_submit(&q.ring);
    if (r < 0 || io_uring_sq_ready(&q.ring) > 0) {
      (void)eventfd_write(q.efd, 1);
      VIOPOOL_LOG_WARN_RL("path={} q={} io_uring_submit: {}", path_, qi,
                          r < 0 ? std::strerror(-r) : "partial");
    }
  }

  bool prepare_sleep(std::uint16_t qi) noexcept override {
    Queue& q = *queues_[qi];
    // Reset first, then look: a completion posted after the reset signals the
    // fd again, so the poller cannot sleep through it.
    clear_eventfd(q);
    return io_uring_cq_ready(&q.ring) == 0 && io_uring_sq_ready(&q.ring) == 0;
  }

  void clear_eventfd(Queue& q) noexcept {
    eventfd_t v = 0;
    (void)eventfd_read(q.efd, &v);  // EAGAIN when already clear
  }

  // stop(): cancels what is still in flight and waits (bounded) for the
  // kernel to let go of the caller's buffers before the ring goes away.
  void drain(Queue& q, std::size_t qi) noexcept {
    if (!q.ring_ready || q.free.size() == depth_) {
      return;
    }
    if (io_uring_sqe* sqe = io_uring_get_sqe(&q.ring); sqe != nullptr) {
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data64(sqe, kCancelTag);
    }
    (void)io_uring_submit(&q.ring);
    // Regular-file I/O running in io-wq cannot be cancelled but finishes.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (q.free.size() < depth_ && std::chrono::steady_clock::now() < deadline) {
      __kernel_timespec ts{0, 100'000'000};
      io_uring_cqe* cqe = nullptr;
      const int r = io_uring_wait_cqe_timeout(&q.ring, &cqe, &ts);
      if (r == -ETIME || r == -EINTR) {
        continue;
      }
      if (r < 0) {
        break;
      }
      if (cqe->user_data < q.slots.size() && q.slots[cqe->user_data].io != nullptr) {
        q.slots[cqe->user_data].io = nullptr;
        q.free.push_back(static_cast<std::uint32_t>(cqe->user_data));
      }
      io_uring_cqe_seen(&q.ring, cqe);
    }
    if (q.free.size() < depth_) {
      VIOPOOL_LOG_WARN("path={} q={} stop: {} I/Os still in the kernel", path_, qi,
                       depth_ - q.free.size());
    }
    publish_in_flight(q);
  }

  const BlockBackendInfo info_;
  const std::string path_;
  const DirectIo mode_;
  const std::uint32_t depth_;
  const std::uint32_t split_;
  const int buffered_fd_;
  const int direct_fd_;
  const std::uint32_t dio_align_;
  const std::uint64_t base_;  // extent start: added to every offset
  // Shared by all queues; each only ever goes from true to false.
  std::atomic<bool> direct_usable_;
  std::atomic<bool> punch_ok_;
  std::atomic<bool> zero_range_ok_{true};
  std::vector<std::unique_ptr<Queue>> queues_;
};

// Closes what it holds unless released: make_uring_backend's error paths.
class FdGuard {
 public:
  FdGuard() = default;
  ~FdGuard() { reset(); }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const noexcept { return fd_; }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// A number from sysfs, e.g. /sys/dev/block/8:0/queue/discard_max_bytes. A
// partition has no queue/ of its own: its disk's is one level up.
bool read_block_queue_attr(unsigned maj, unsigned min, const char* attr, std::string* value) {
  for (const char* fmt : {"/sys/dev/block/%u:%u/queue/%s", "/sys/dev/block/%u:%u/../queue/%s"}) {
    char path[128];
    std::snprintf(path, sizeof path, fmt, maj, min, attr);
    std::FILE* f = std::fopen(path, "re");
    if (f == nullptr) {
      continue;
    }
    char buf[64] = {};
    const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
    std::fclose(f);
    if (ok) {
      *value = buf;
      while (!value->empty() && (value->back() == '\n' || value->back() == ' ')) {
        value->pop_back();
      }
      return true;
    }
  }
  return false;
}

std::uint64_t read_block_queue_u64(unsigned maj, unsigned min, const char* attr) {
  std::string v;
  if (!read_block_queue_attr(maj, min, attr, &v)) {
    return 0;
  }
  return std::strtoull(v.c_str(), nullptr, 10);
}

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace

Result<std::unique_ptr<BlockBackend>> make_uring_backend(const UringBackendOptions& o,
                                                         std::string& why) {
  using DirectIo = UringBackendOptions::DirectIo;
  if (o.path.empty()) {
    why = "uring backend: empty path";
    return fail(Errc::kInvalidArgument, "empty image path");
  }
  if (o.queue_depth == 0 || o.queue_depth > kMaxUringDepth) {
    why = o.path + ": queue depth " + std::to_string(o.queue_depth) + " is outside [1, " +
          std::to_string(kMaxUringDepth) + "]";
    return fail(Errc::kInvalidArgument, "queue depth out of range");
  }
  if (o.block_size != 0 && !valid_block_size(o.block_size)) {
    why = o.path + ": block size " + std::to_string(o.block_size) +
          " is not a power of two in [512, 65536]";
    return fail(Errc::kInvalidArgument, "invalid block size");
  }

  const int access = (o.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  FdGuard buffered;
  FdGuard direct;
  if (o.direct != DirectIo::kOn) {
    buffered.reset(::open(o.path.c_str(), access));
    if (buffered.get() < 0) {
      const int err = errno;
      why = errno_text("open " + o.path, err);
      return fail(err == EISDIR ? Errc::kInvalidArgument : Errc::kIo, "cannot open the image", err);
    }
  }
  if (o.direct != DirectIo::kOff) {
    direct.reset(::open(o.path.c_str(), access | O_DIRECT));
    if (direct.get() < 0) {
      const int err = errno;
      if (o.direct == DirectIo::kOn || err != EINVAL) {
        why = errno_text("open " + o.path + " with O_DIRECT", err);
        const Errc code = err == EINVAL   ? Errc::kUnsupported
                          : err == EISDIR ? Errc::kInvalidArgument
                                          : Errc::kIo;
        return fail(code, "cannot open the image", err);
      }
      VIOPOOL_LOG_INFO("path={} file system has no O_DIRECT; using the page cache", o.path);
    }
  }
  const int fd = buffered.get() >= 0 ? buffered.get() : direct.get();

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    why = errno_text("fstat " + o.path, err);
    return fail(Errc::kIo, "cannot stat the image", err);
  }
  const bool is_block = S_ISBLK(st.st_mode);
  if (!is_block && !S_ISREG(st.st_mode)) {
    why = o.path + ": not a regular file or block device";
    return fail(Errc::kInvalidArgument, "image is not a regular file or block device");
  }
  if (buffered.get() >= 0 && direct.get() >= 0) {
    struct stat st2 {};
    if (::fstat(direct.get(), &st2) != 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
      why = o.path + ": replaced while being opened";
      return fail(Errc::kIo, "image replaced while being opened");
    }
  }

  std::uint64_t size = 0;
  std::uint32_t device_block = kMinBlockSize;  // smallest unit the device itself can do
  std::uint32_t physical = 0;
  std::uint32_t optimal = 0;
  if (is_block) {
    int lbs = 0;
    unsigned pbs = 0;
    unsigned opt = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0 || ::ioctl(fd, BLKSSZGET, &lbs) != 0) {
      const int err = errno;
      why = errno_text(o.path + ": block device size", err);
      return fail(Errc::kIo, "cannot query the block device", err);
    }
    if (lbs <= 0 || !valid_block_size(static_cast<std::uint32_t>(lbs))) {
      why = o.path + ": unsupported logical block size " + std::to_string(lbs);
      return fail(Errc::kUnsupported, "unsupported logical block size");
    }
    device_block = static_cast<std::uint32_t>(lbs);
    if (::ioctl(fd, BLKPBSZGET, &pbs) == 0) {
      physical = pbs;
    }
    if (::ioctl(fd, BLKIOOPT, &opt) == 0) {
      optimal = opt;
    }
  } else {
    size = static_cast<std::uint64_t>(st.st_size);
    physical = static_cast<std::uint32_t>(st.st_blksize);  // the file system's block
  }

  const std::uint32_t bs = o.block_size != 0 ? o.block_size : device_block;
  if (o.direct == DirectIo::kOn && bs < device_block) {
    why = o.path + ": block size " + std::to_string(bs) + " is below the device's " +
          std::to_string(device_block) + ", which O_DIRECT cannot serve";
    return fail(Errc::kInvalidArgument, "block size below the device's with O_DIRECT");
  }

  std::uint32_t dio_align = std::max(bs, device_block);
  if (direct.get() >= 0) {
    struct statx stx {};
    if (::statx(direct.get(), "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN) != 0) {
      if (stx.stx_dio_offset_align == 0) {
        dio_align = 0;  // the file system reports that it has no O_DIRECT for this file
      } else {
        dio_align = std::max({dio_align, stx.stx_dio_offset_align, stx.stx_dio_mem_align});
      }
    }
    if (dio_align == 0 || dio_align > kMaxBlockSize || !std::has_single_bit(dio_align)) {
      if (o.direct == DirectIo::kOn) {
        why = o.path + ": O_DIRECT is not available with a usable alignment";
        return fail(Errc::kUnsupported, "O_DIRECT unavailable");
      }
      VIOPOOL_LOG_INFO("path={} O_DIRECT alignment {} unusable; using the page cache", o.path,
                       dio_align);
      direct.reset();
      dio_align = bs;
    }
  }

  BlockBackendInfo info;
  info.block_size = bs;
  info.capacity_bytes = size & ~std::uint64_t{bs - 1};
  if (o.extent_bytes != 0) {
    if (o.extent_offset % bs != 0 || o.extent_bytes % bs != 0 ||
        o.extent_offset > info.capacity_bytes ||
        o.extent_bytes > info.capacity_bytes - o.extent_offset) {
      why = o.path + ": extent of " + std::to_string(o.extent_bytes) + " bytes at " +
            std::to_string(o.extent_offset) + " is not block-aligned within the image's " +
            std::to_string(info.capacity_bytes) + " bytes";
      return fail(Errc::kInvalidArgument, "bad extent");
    }
    info.capacity_bytes = o.extent_bytes;
  }
  if (physical > bs && physical <= kMaxBlockSize && std::has_single_bit(physical)) {
    info.physical_block_exp = static_cast<std::uint32_t>(std::countr_zero(physical / bs));
  }
  info.optimal_io_blocks = optimal % bs == 0 ? optimal / bs : 0;
  info.read_only = o.read_only;
  info.max_queue_depth = o.queue_depth;
  if (!o.read_only) {
    // Write-zeroes always works: fallocate, else zeroes written (and a block
    // device's ZERO_RANGE falls back to writing zeroes in the kernel).
    info.supports_write_zeroes = true;
    if (is_block) {
      // Discard is done as PUNCH_HOLE, which a block device turns into
      // WRITE_ZEROES allowing unmap (reads return zeroes, as BlkOp::kDiscard
      // promises) and refuses without hardware support; plain BLKDISCARD would
      // not guarantee zeroes. Offered only if the device can also deallocate.
      info.supports_discard =
          read_block_queue_u64(major(st.st_rdev), minor(st.st_rdev), "discard_max_bytes") > 0 &&
          read_block_queue_u64(major(st.st_rdev), minor(st.st_rdev), "write_zeroes_max_bytes") > 0;
    } else {
      // Probe past the end of the file: nothing is allocated there and
      // KEEP_SIZE keeps the size, so a file system that can punch holes does
      // nothing, and one that cannot says EOPNOTSUPP. (A zero-length probe is
      // useless: the VFS rejects length 0 with EINVAL before asking the file
      // system.)
      const off_t probe =
          static_cast<off_t>(((size + kMaxBlockSize - 1) / kMaxBlockSize + 1) * kMaxBlockSize);
      info.supports_discard =
          ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, probe, kMaxBlockSize) == 0;
    }
  }
  info.volatile_cache = true;
  if (is_block && o.direct == DirectIo::kOn) {
    std::string wc;
    if (read_block_queue_attr(major(st.st_rdev), minor(st.st_rdev), "write_cache", &wc) &&
        wc == "write through") {
      info.volatile_cache = false;  // no page cache and no volatile device cache
    }
  }

  VIOPOOL_LOG_INFO(
      "path={} {} capacity={} block_size={} physical_exp={} read_only={} direct={} "
      "dio_align={} discard={} write_zeroes={} volatile_cache={}",
      o.path, is_block ? "block-device" : "file", info.capacity_bytes, info.block_size,
      info.physical_block_exp, info.read_only,
      direct.get() < 0 ? "off" : (o.direct == DirectIo::kOn ? "on" : "auto"), dio_align,
      info.supports_discard, info.supports_write_zeroes, info.volatile_cache);

  UringBackend::Image image;
  image.path = o.path;
  image.dio_align = dio_align;
  image.base = o.extent_bytes != 0 ? o.extent_offset : 0;
  image.buffered_fd = buffered.release();
  image.direct_fd = direct.release();
  std::unique_ptr<BlockBackend> backend = std::make_unique<UringBackend>(o, info, std::move(image));
  return backend;
}

std::unique_ptr<BlockBackend> make_malloc_backend(std::uint64_t capacity_bytes,
                                                  std::uint32_t block_size) {
  return std::make_unique<MallocBackend>(capacity_bytes, block_size);
}

std::unique_ptr<BlockBackend> make_null_backend(std::uint64_t capacity_bytes,
                                                std::uint32_t block_size) {
  return std::make_unique<NullBackend>(capacity_bytes, block_size);
}

}  // namespace viopool::blk
