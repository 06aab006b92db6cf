// Local block backends (uring on temp files in every DirectIo mode, malloc,
// null): data integrity through multi-iovec and misaligned buffers, short
// transfers, discard and write-zeroes, read-only, queue depth, the completion
// eventfd and queues driven from several threads.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "vhost-backend/devices/blk/blk_backends.h"

using namespace viopool;
using namespace viopool::blk;
namespace data = boost::unit_test::data;
using DirectIo = UringBackendOptions::DirectIo;

namespace {

constexpr std::uint64_t kCapacity = 4 << 20;
constexpr std::uint32_t kPage = 4096;
// Every wait in these tests ends after this, as a failure.
constexpr auto kWaitLimit = std::chrono::seconds(20);
constexpr std::int32_t kPending = INT32_MIN;

const std::string kUringKinds[] = {"uring-auto", "uring-direct", "uring-buffered"};
const std::string kDataKinds[] = {"uring-auto", "uring-direct", "uring-buffered", "malloc"};
const std::string kAllKinds[] = {"uring-auto", "uring-direct", "uring-buffered", "malloc", "null"};
const std::string kImmediateKinds[] = {"malloc", "null"};

bool is_uring(const std::string& kind) { return kind.rfind("uring", 0) == 0; }

DirectIo direct_mode(const std::string& kind) {
  if (kind == "uring-direct") {
    return DirectIo::kOn;
  }
  return kind == "uring-buffered" ? DirectIo::kOff : DirectIo::kAuto;
}

// A file with a unique name under `dir`, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::uint64_t size, const std::string& dir = "/tmp")
      : path_(dir + "/viopool-unit-blk-XXXXXX") {
    const int fd = ::mkstemp(path_.data());
    BOOST_REQUIRE_MESSAGE(fd >= 0, "mkstemp in " << dir << ": " << std::strerror(errno));
    BOOST_REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }

  std::vector<std::byte> read_all() const {
    struct stat st {};
    BOOST_REQUIRE(::stat(path_.c_str(), &st) == 0);
    std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::pread(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
    ::close(fd);
    return out;
  }

  void write_at(std::uint64_t offset, const std::vector<std::byte>& bytes) const {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
                  static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }

 private:
  std::string path_;
};

// A backend under test, with the file behind it for uring kinds.
struct Disk {
  std::string kind;
  std::unique_ptr<TempFile> file;
  std::unique_ptr<BlockBackend> backend;
  BlockBackend& operator*() { return *backend; }
  BlockBackend* operator->() { return backend.get(); }
};

Disk make_disk(const std::string& kind, std::uint16_t queues = 1, UringBackendOptions o = {},
               std::uint64_t capacity = kCapacity, const std::string& dir = "/tmp") {
  Disk d;
  d.kind = kind;
  if (kind == "malloc") {
    d.backend = make_malloc_backend(capacity, 512);
  } else if (kind == "null") {
    d.backend = make_null_backend(capacity, 512);
  } else {
    d.file = std::make_unique<TempFile>(capacity, dir);
    o.path = d.file->path();
    o.direct = direct_mode(kind);
    std::string why;
    auto r = make_uring_backend(o, why);
    BOOST_REQUIRE_MESSAGE(r.has_value(), kind << ": " << why);
    d.backend = std::move(*r);
  }
  BOOST_REQUIRE(d.backend->start(queues).has_value());
  return d;
}

// Page-aligned memory with a chosen misalignment of its start.
class Buffer {
 public:
  Buffer(std::size_t size, std::size_t misalign)
      : mem_(static_cast<std::byte*>(std::aligned_alloc(kPage, round_up(size + misalign + 1)))),
        data_(mem_.get() + misalign),
        size_(size) {
    if (mem_ == nullptr) {
      std::abort();  // no Boost assertion: worker threads build buffers too
    }
  }
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  static std::size_t round_up(std::size_t n) { return (n + kPage - 1) / kPage * kPage; }
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> mem_;
  std::byte* data_;
  std::size_t size_;
};

// One read or write: its buffer, the iovecs over it and the BlkIo.
struct Transfer {
  std::unique_ptr<Buffer> buf;
  std::vector<iovec> iov;
  BlkIo io;
};

enum class Layout {
  kAligned,  // 4 KiB-aligned offsets, buffers and iovec lengths: O_DIRECT-able anywhere
  kMixed,    // half of the I/Os aligned, half with odd addresses and iovec lengths
};

// Builds a read or write of `len` bytes at `offset`, split into up to 8
// iovecs (with the occasional empty one when misaligned).
Transfer make_transfer(BlkOp op, std::uint64_t offset, std::size_t len, bool aligned,
                       std::mt19937& rng) {
  Transfer t;
  t.buf = std::make_unique<Buffer>(len, aligned ? 0 : 1 + rng() % (kPage - 1));
  const std::size_t unit = aligned ? kPage : 1;
  std::vector<std::size_t> cuts{0, len};
  const std::size_t pieces = 1 + rng() % 8;
  for (std::size_t i = 1; i < pieces && len / unit > 1; ++i) {
    cuts.push_back((rng() % (len / unit)) * unit);
  }
  std::sort(cuts.begin(), cuts.end());
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    if (cuts[i + 1] > cuts[i] || !aligned) {
      t.iov.push_back(iovec{t.buf->data() + cuts[i], cuts[i + 1] - cuts[i]});
    }
  }
  t.io.op = op;
  t.io.offset = offset;
  t.io.length = len;
  return t;
}

// Runs `ios` to completion on queue q: submits what the queue accepts, polls,
// and sleeps on completion_fd (10 ms at most) when nothing completed.
// Thread-safe (no Boost assertions): returns "" or what went wrong; results[i]
// is the result of ios[i].
std::string run_ios(BlockBackend& b, std::uint16_t q, const std::vector<BlkIo*>& ios,
                    std::vector<std::int32_t>& results) {
  results.assign(ios.size(), kPending);
  for (std::size_t i = 0; i < ios.size(); ++i) {
    ios[i]->cookie = reinterpret_cast<void*>(i + 1);
  }
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  std::size_t submitted = 0;
  std::size_t completed = 0;
  while (completed < ios.size()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return "timed out with " + std::to_string(ios.size() - completed) + " I/Os pending";
    }
    if (submitted < ios.size()) {
      submitted +=
          b.submit(q, ios.data() + submitted, static_cast<std::uint32_t>(ios.size() - submitted));
    }
    BlkCompletion c[16];
    const std::uint32_t got = b.poll(q, c, 16);
    for (std::uint32_t i = 0; i < got; ++i) {
      const auto idx = reinterpret_cast<std::uintptr_t>(c[i].cookie) - 1;
      if (idx >= ios.size() || results[idx] != kPending) {
        return "unexpected completion cookie";
      }
      results[idx] = c[i].result;
      ++completed;
    }
    if (got == 0 && b.completion_fd(q) >= 0) {
      pollfd p{b.completion_fd(q), POLLIN, 0};
      ::poll(&p, 1, 10);
    }
  }
  if (b.in_flight(q) != 0) {
    return "in_flight is " + std::to_string(b.in_flight(q)) + " after all completions";
  }
  return "";
}

std::vector<std::int32_t> run(BlockBackend& b, std::vector<BlkIo*> ios, std::uint16_t q = 0) {
  std::vector<std::int32_t> results;
  const std::string err = run_ios(b, q, ios, results);
  BOOST_REQUIRE_MESSAGE(err.empty(), err);
  return results;
}

std::int32_t run_one(BlockBackend& b, BlkIo io, std::uint16_t q = 0) { return run(b, {&io}, q)[0]; }

// Reads [offset, offset + len) through the backend (4 KiB-aligned buffer, one
// iovec per 64 KiB).
std::vector<std::byte> read_back(BlockBackend& b, std::uint64_t offset, std::size_t len) {
  std::mt19937 rng(1);
  Transfer t = make_transfer(BlkOp::kRead, offset, len, true, rng);
  std::memset(t.buf->data(), 0xEE, len);
  t.iov.clear();
  for (std::size_t at = 0; at < len; at += 65536) {
    t.iov.push_back(iovec{t.buf->data() + at, std::min<std::size_t>(65536, len - at)});
  }
  t.io.iov = t.iov.data();
  t.io.iovcnt = static_cast<std::uint32_t>(t.iov.size());
  BOOST_REQUIRE_EQUAL(run_one(b, t.io), static_cast<std::int32_t>(len));
  return std::vector<std::byte>(t.buf->data(), t.buf->data() + len);
}

std::int32_t write_bytes(BlockBackend& b, std::uint64_t offset, const std::vector<std::byte>& v) {
  std::mt19937 rng(2);
  Transfer t = make_transfer(BlkOp::kWrite, offset, v.size(), true, rng);
  std::memcpy(t.buf->data(), v.data(), v.size());
  t.io.iov = t.iov.data();
  t.io.iovcnt = static_cast<std::uint32_t>(t.iov.size());
  return run_one(b, t.io);
}

std::vector<std::byte> pattern(std::size_t len, std::uint8_t seed) {
  std::vector<std::byte> v(len);
  for (std::size_t i = 0; i < len; ++i) {
    v[i] = static_cast<std::byte>((i * 131 + seed) % 251);
  }
  return v;
}

bool all_zero(const std::vector<std::byte>& v, std::size_t from, std::size_t to) {
  return std::all_of(v.begin() + static_cast<std::ptrdiff_t>(from),
                     v.begin() + static_cast<std::ptrdiff_t>(to),
                     [](std::byte b) { return b == std::byte{0}; });
}

enum class Verify { kData, kResultsOnly };

// Rounds of 8 random writes in flight at once (one per lane of `size` bytes
// at `base`), a flush, then 8 random reads checked against a shadow copy.
// Thread-safe: returns "" or what went wrong.
std::string check_random_io(BlockBackend& b, std::uint16_t q, std::uint64_t base,
                            std::uint64_t size, Layout layout, std::uint32_t seed, int rounds,
                            Verify verify) {
  constexpr std::uint32_t kLanes = 8;
  std::mt19937 rng(seed);
  std::vector<std::byte> shadow(size);  // the region starts zeroed
  const std::uint64_t lane = size / kLanes;
  auto pick = [&](std::uint64_t l, bool aligned, std::uint64_t* off, std::size_t* len) {
    const std::uint64_t unit = aligned ? kPage : 512;  // virtio-blk sectors otherwise
    const std::uint64_t units = 1 + rng() % std::min<std::uint64_t>(lane / unit, 32);
    *len = units * unit;
    *off = l * lane + (rng() % (lane / unit - units + 1)) * unit;
  };
  auto is_aligned_io = [&] { return layout == Layout::kAligned || rng() % 2 == 0; };

  for (int round = 0; round < rounds; ++round) {
    std::vector<Transfer> ts;
    std::vector<BlkIo*> ios;
    std::vector<std::int32_t> results;
    for (std::uint32_t l = 0; l < kLanes; ++l) {
      std::uint64_t off = 0;
      std::size_t len = 0;
      const bool aligned = is_aligned_io();
      pick(l, aligned, &off, &len);
      ts.push_back(make_transfer(BlkOp::kWrite, base + off, len, aligned, rng));
      for (std::size_t i = 0; i < len; ++i) {
        ts.back().buf->data()[i] = static_cast<std::byte>(rng());
      }
      std::memcpy(shadow.data() + off, ts.back().buf->data(), len);
    }
    for (auto& t : ts) {
      t.io.iov = t.iov.data();
      t.io.iovcnt = static_cast<std::uint32_t>(t.iov.size());
      ios.push_back(&t.io);
    }
    if (auto err = run_ios(b, q, ios, results); !err.empty()) {
      return "write: " + err;
    }
    for (std::size_t i = 0; i < ts.size(); ++i) {
      if (results[i] != static_cast<std::int32_t>(ts[i].io.length)) {
        return "write at " + std::to_string(ts[i].io.offset) + " returned " +
               std::to_string(results[i]);
      }
    }
    BlkIo flush;
    flush.op = BlkOp::kFlush;
    if (auto err = run_ios(b, q, {&flush}, results); !err.empty() || results[0] != 0) {
      return "flush failed: " + err + std::to_string(results[0]);
    }

    ts.clear();
    ios.clear();
    for (std::uint32_t l = 0; l < kLanes; ++l) {
      std::uint64_t off = 0;
      std::size_t len = 0;
      const bool aligned = is_aligned_io();
      pick(l, aligned, &off, &len);
      ts.push_back(make_transfer(BlkOp::kRead, base + off, len, aligned, rng));
      std::memset(ts.back().buf->data(), 0xEE, len);
    }
    for (auto& t : ts) {
      t.io.iov = t.iov.data();
      t.io.iovcnt = static_cast<std::uint32_t>(t.iov.size());
      ios.push_back(&t.io);
    }
    if (auto err = run_ios(b, q, ios, results); !err.empty()) {
      return "read: " + err;
    }
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const BlkIo& io = ts[i].io;
      if (results[i] != static_cast<std::int32_t>(io.length)) {
        return "read at " + std::to_string(io.offset) + " returned " + std::to_string(results[i]);
      }
      if (verify == Verify::kData &&
          std::memcmp(ts[i].buf->data(), shadow.data() + (io.offset - base), io.length) != 0) {
        return "read at " + std::to_string(io.offset) + " length " + std::to_string(io.length) +
               " differs from what was written (round " + std::to_string(round) + ")";
      }
    }
  }
  return "";
}

Layout layout_for(const std::string& kind) {
  return kind == "uring-direct" ? Layout::kAligned : Layout::kMixed;
}

BlkIo range_io(BlkOp op, std::uint64_t offset, std::uint64_t length, bool unmap = false) {
  BlkIo io;
  io.op = op;
  io.offset = offset;
  io.length = length;
  io.unmap = unmap;
  return io;
}

bool fd_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(blk_backends)

BOOST_DATA_TEST_CASE(reads_return_what_was_written_through_any_iovec_layout, data::make(kDataKinds),
                     kind) {
  Disk d = make_disk(kind);
  const std::string err =
      check_random_io(*d, 0, 0, kCapacity, layout_for(kind), 42, 12, Verify::kData);
  BOOST_TEST(err.empty(), kind << ": " << err);
}

BOOST_DATA_TEST_CASE(short_transfers_are_resumed_until_complete, data::make(kUringKinds), kind) {
  // Every request moves at most split bytes: each I/O takes many steps, many
  // of them starting inside an iovec (and, in kAuto, mixing O_DIRECT and the
  // page cache within one I/O).
  UringBackendOptions o;
  o.split_io_bytes_for_test = kind == "uring-direct" ? 2 * kPage : 1000;
  Disk d = make_disk(kind, 1, o);
  const std::string err =
      check_random_io(*d, 0, 0, kCapacity, layout_for(kind), 7, 4, Verify::kData);
  BOOST_TEST(err.empty(), kind << ": " << err);
}

BOOST_DATA_TEST_CASE(more_iovecs_than_the_kernel_takes_are_moved_in_several_requests,
                     data::make(kUringKinds), kind) {
  constexpr std::size_t kIovs = 1100;  // above IOV_MAX (1024)
  Disk d = make_disk(kind, 1, {}, 8 << 20);
  std::mt19937 rng(3);
  Transfer w = make_transfer(BlkOp::kWrite, kPage, kIovs * kPage, true, rng);
  const auto bytes = pattern(kIovs * kPage, 9);
  std::memcpy(w.buf->data(), bytes.data(), bytes.size());
  w.iov.clear();
  for (std::size_t i = 0; i < kIovs; ++i) {
    w.iov.push_back(iovec{w.buf->data() + i * kPage, kPage});
  }
  w.io.iov = w.iov.data();
  w.io.iovcnt = kIovs;
  BOOST_TEST(run_one(*d, w.io) == static_cast<std::int32_t>(bytes.size()));
  BOOST_TEST((read_back(*d, kPage, bytes.size()) == bytes));
}

BOOST_DATA_TEST_CASE(read_across_a_truncated_end_fails_with_eio_not_fewer_bytes,
                     data::make(kUringKinds), kind) {
  Disk d = make_disk(kind, 1, {}, 1 << 20);
  BOOST_TEST(write_bytes(*d, 0, pattern(1 << 20, 1)) == 1 << 20);
  // Someone truncates the image under the backend: capacity stays 1 MiB.
  BOOST_REQUIRE(::truncate(d.file->path().c_str(), (512 << 10) + kPage) == 0);
  std::mt19937 rng(4);
  Transfer t = make_transfer(BlkOp::kRead, 512 << 10, 16 * kPage, true, rng);
  t.io.iov = t.iov.data();
  t.io.iovcnt = static_cast<std::uint32_t>(t.iov.size());
  BOOST_TEST(run_one(*d, t.io) == -EIO);
  // Below the new end reads still work.
  BOOST_TEST((read_back(*d, 0, 512 << 10) == std::vector<std::byte>(pattern(512 << 10, 1))));
}

BOOST_DATA_TEST_CASE(flush_completes_successfully, data::make(kAllKinds), kind) {
  Disk d = make_disk(kind);
  BOOST_TEST(run_one(*d, range_io(BlkOp::kFlush, 0, 0)) == 0);
}

BOOST_DATA_TEST_CASE(discard_and_write_zeroes_read_back_as_zeroes,
                     data::make(kDataKinds) * data::make({false, true}), kind, unmap) {
  Disk d = make_disk(kind);
  BOOST_TEST(d->info().supports_write_zeroes);
  const auto fill = pattern(kCapacity, 5);
  BOOST_TEST(write_bytes(*d, 0, fill) == static_cast<std::int32_t>(kCapacity));

  // Ranges start and end inside file-system blocks (except with O_DIRECT only,
  // where every range must be aligned) and one spans several MiB.
  const std::uint64_t unit = kind == "uring-direct" ? kPage : 512;
  const std::uint64_t wz_off = 3 * unit, wz_len = 40 * unit + (2 << 20);
  const std::uint64_t dc_off = (3 << 20) + unit, dc_len = 130 * unit;
  BOOST_TEST(run_one(*d, range_io(BlkOp::kWriteZeroes, wz_off, wz_len, unmap)) == 0);
  if (d->info().supports_discard) {
    BOOST_TEST(run_one(*d, range_io(BlkOp::kDiscard, dc_off, dc_len)) == 0);
  } else {
    BOOST_TEST_MESSAGE(kind << ": discard not supported here");
  }

  const auto got = read_back(*d, 0, kCapacity);
  auto expect = fill;
  std::fill_n(expect.begin() + static_cast<std::ptrdiff_t>(wz_off), wz_len, std::byte{0});
  if (d->info().supports_discard) {
    std::fill_n(expect.begin() + static_cast<std::ptrdiff_t>(dc_off), dc_len, std::byte{0});
  }
  BOOST_TEST((got == expect));
  BOOST_TEST(all_zero(got, wz_off, wz_off + wz_len));
}

BOOST_DATA_TEST_CASE(write_zeroes_on_a_file_system_without_zero_range_still_zeroes,
                     data::make(kUringKinds) * data::make({false, true}), kind, unmap) {
  // tmpfs refuses FALLOC_FL_ZERO_RANGE: unmap=false takes the write-zeroes
  // path (1 MiB requests from the zero buffer, then a short tail), unmap=true
  // punches a hole.
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) != 0) {
    BOOST_TEST_MESSAGE("no /dev/shm: fallback not exercised");
    return;
  }
  if (fs.f_type != TMPFS_MAGIC) {
    BOOST_TEST_MESSAGE("/dev/shm is not tmpfs: the fallback may not be exercised");
  }
  Disk d = make_disk(kind, 1, {}, kCapacity, "/dev/shm");
  const auto fill = pattern(kCapacity, 6);
  BOOST_TEST(write_bytes(*d, 0, fill) == static_cast<std::int32_t>(kCapacity));
  const std::uint64_t off = 16 * kPage + kPage, len = (3 << 19) + kPage;  // 1.5 MiB + 4 KiB
  BOOST_TEST(run_one(*d, range_io(BlkOp::kWriteZeroes, off, len, unmap)) == 0);
  // A second request goes straight to what worked for the first.
  BOOST_TEST(run_one(*d, range_io(BlkOp::kWriteZeroes, 3 << 20, kPage, unmap)) == 0);
  const auto got = read_back(*d, 0, kCapacity);
  auto expect = fill;
  std::fill_n(expect.begin() + static_cast<std::ptrdiff_t>(off), len, std::byte{0});
  std::fill_n(expect.begin() + (3 << 20), kPage, std::byte{0});
  BOOST_TEST((got == expect));
}

BOOST_DATA_TEST_CASE(read_only_refuses_changes_with_erofs_and_leaves_the_file_alone,
                     data::make(kUringKinds), kind) {
  TempFile f(kCapacity);
  f.write_at(0, pattern(kCapacity, 8));
  const auto before = f.read_all();
  struct stat st_before {};
  BOOST_REQUIRE(::stat(f.path().c_str(), &st_before) == 0);

  UringBackendOptions o;
  o.path = f.path();
  o.read_only = true;
  o.direct = direct_mode(kind);
  std::string why;
  auto r = make_uring_backend(o, why);
  BOOST_REQUIRE_MESSAGE(r.has_value(), why);
  BlockBackend& b = **r;
  BOOST_REQUIRE(b.start(1).has_value());
  BOOST_TEST(b.info().read_only);
  BOOST_TEST(!b.info().supports_discard);
  BOOST_TEST(!b.info().supports_write_zeroes);

  std::mt19937 rng(9);
  Transfer w = make_transfer(BlkOp::kWrite, 0, 4 * kPage, true, rng);
  w.io.iov = w.iov.data();
  w.io.iovcnt = static_cast<std::uint32_t>(w.iov.size());
  BlkIo discard = range_io(BlkOp::kDiscard, 0, kPage);
  BlkIo zeroes = range_io(BlkOp::kWriteZeroes, kPage, kPage, true);
  BlkIo flush = range_io(BlkOp::kFlush, 0, 0);
  const auto results = run(b, {&w.io, &discard, &zeroes, &flush});
  BOOST_TEST(results[0] == -EROFS);
  BOOST_TEST(results[1] == -EROFS);
  BOOST_TEST(results[2] == -EROFS);
  BOOST_TEST(results[3] == 0);
  BOOST_TEST((read_back(b, 0, 64 * kPage) ==
              std::vector<std::byte>(before.begin(), before.begin() + 64 * kPage)));
  b.stop();

  struct stat st_after {};
  BOOST_REQUIRE(::stat(f.path().c_str(), &st_after) == 0);
  BOOST_TEST((f.read_all() == before));
  BOOST_TEST(st_after.st_mtim.tv_sec == st_before.st_mtim.tv_sec);
  BOOST_TEST(st_after.st_mtim.tv_nsec == st_before.st_mtim.tv_nsec);
}

BOOST_DATA_TEST_CASE(submit_refuses_beyond_the_queue_depth_until_poll_frees_room,
                     data::make(kAllKinds), kind) {
  UringBackendOptions o;
  o.queue_depth = 8;
  Disk d = make_disk(kind, 1, o);
  const std::uint32_t depth = d->info().max_queue_depth;
  BOOST_REQUIRE(depth == (is_uring(kind) ? 8u : 256u));

  std::vector<Buffer> bufs;
  std::vector<iovec> iov(depth + 5);
  std::vector<BlkIo> ios(depth + 5);
  std::vector<BlkIo*> ptrs;
  for (std::uint32_t i = 0; i < depth + 5; ++i) {
    bufs.emplace_back(kPage, 0);
    iov[i] = iovec{bufs.back().data(), kPage};
    ios[i].op = BlkOp::kRead;
    ios[i].offset = std::uint64_t{i % 64} * kPage;
    ios[i].iov = &iov[i];
    ios[i].iovcnt = 1;
    ios[i].cookie = &ios[i];
    ptrs.push_back(&ios[i]);
  }
  BOOST_TEST(d->submit(0, ptrs.data(), depth + 5) == depth);
  BOOST_TEST(d->in_flight(0) == depth);
  BOOST_TEST(d->submit(0, ptrs.data() + depth, 5) == 0u);

  // Wait for at least one completion, take exactly one, and room for exactly
  // one more appears.
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  BlkCompletion c[1];
  std::uint32_t got = 0;
  while ((got = d->poll(0, c, 1)) == 0) {
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
    if (d->completion_fd(0) >= 0) {
      fd_readable(d->completion_fd(0), 10);
    }
  }
  if (!is_uring(kind)) {
    BOOST_TEST(c[0].cookie == &ios[0]);  // uring completes in any order
  }
  BOOST_TEST(c[0].result == static_cast<std::int32_t>(kPage));
  BOOST_TEST(d->in_flight(0) == depth - 1);
  BOOST_TEST(d->submit(0, ptrs.data() + depth, 5) == 1u);
  BOOST_TEST(d->submit(0, ptrs.data() + depth + 1, 4) == 0u);

  std::vector<BlkIo*> rest(ptrs.begin() + depth + 1, ptrs.end());
  std::vector<std::int32_t> results;
  // Drain what is in flight, then run the remaining four.
  std::uint32_t pending = d->in_flight(0);
  while (pending > 0) {
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
    BlkCompletion cs[16];
    const std::uint32_t n = d->poll(0, cs, 16);
    for (std::uint32_t i = 0; i < n; ++i) {
      BOOST_TEST(cs[i].result == static_cast<std::int32_t>(kPage));
    }
    pending -= n;
    if (n == 0 && d->completion_fd(0) >= 0) {
      fd_readable(d->completion_fd(0), 10);
    }
  }
  BOOST_TEST(d->in_flight(0) == 0u);
  for (std::int32_t r : run(*d, rest)) {
    BOOST_TEST(r == static_cast<std::int32_t>(kPage));
  }
}

BOOST_DATA_TEST_CASE(completion_fd_wakes_a_sleeper_and_prepare_sleep_resets_it,
                     data::make(kUringKinds), kind) {
  Disk d = make_disk(kind);
  const int fd = d->completion_fd(0);
  BOOST_REQUIRE(fd >= 0);
  BOOST_TEST(d->prepare_sleep(0));
  BOOST_TEST(!fd_readable(fd, 0));

  Buffer buf(8 * kPage, 0);
  std::vector<iovec> iov(8);
  std::vector<BlkIo> ios(8);
  std::vector<BlkIo*> ptrs;
  for (std::size_t i = 0; i < ios.size(); ++i) {
    iov[i] = iovec{buf.data() + i * kPage, kPage};
    ios[i].op = BlkOp::kRead;
    ios[i].offset = i * kPage;
    ios[i].iov = &iov[i];
    ios[i].iovcnt = 1;
    ptrs.push_back(&ios[i]);
  }

  // A completion makes the fd readable; while it waits, prepare_sleep()
  // refuses; once taken, prepare_sleep() resets the fd for the next sleep.
  BOOST_REQUIRE(d->submit(0, ptrs.data(), 1) == 1u);
  BOOST_TEST(fd_readable(fd, 5000));
  BOOST_TEST(!d->prepare_sleep(0));
  BlkCompletion c[8];
  BOOST_TEST(d->poll(0, c, 8) == 1u);
  BOOST_TEST(d->poll(0, c, 8) == 0u);
  BOOST_TEST(d->prepare_sleep(0));
  BOOST_TEST(!fd_readable(fd, 0));

  // A request failed by the backend itself completes through the fd as well.
  BlkIo beyond = ios[0];
  beyond.offset = kCapacity;
  BlkIo* bp = &beyond;
  BOOST_REQUIRE(d->submit(0, &bp, 1) == 1u);
  BOOST_TEST(fd_readable(fd, 5000));
  BOOST_TEST(d->poll(0, c, 8) == 1u);
  BOOST_TEST(c[0].result == -EINVAL);
  BOOST_TEST(d->prepare_sleep(0));
  BOOST_TEST(!fd_readable(fd, 0));

  // Several, taken one at a time: prepare_sleep() refuses until all are taken.
  BOOST_REQUIRE(d->submit(0, ptrs.data(), 8) == 8u);
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  std::uint32_t taken = 0;
  while (taken < 8) {
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
    if (d->prepare_sleep(0)) {
      BOOST_REQUIRE(fd_readable(fd, 5000));  // a sleeper would be woken
    }
    taken += d->poll(0, c, 1);
  }
  BOOST_TEST(d->in_flight(0) == 0u);
  BOOST_TEST(d->poll(0, c, 8) == 0u);
  BOOST_TEST(d->prepare_sleep(0));
  BOOST_TEST(!fd_readable(fd, 0));
}

BOOST_DATA_TEST_CASE(immediate_backends_have_no_completion_fd_and_keep_order,
                     data::make(kImmediateKinds), kind) {
  Disk d = make_disk(kind);
  BOOST_TEST(d->completion_fd(0) == -1);
  Buffer buf(kPage, 0);
  iovec v{buf.data(), kPage};
  std::vector<BlkIo> ios(20);
  std::vector<BlkIo*> ptrs;
  for (std::size_t i = 0; i < ios.size(); ++i) {
    ios[i].op = i % 3 == 0 ? BlkOp::kFlush : BlkOp::kRead;
    ios[i].offset = i * kPage;
    ios[i].iov = &v;
    ios[i].iovcnt = 1;
    ios[i].cookie = &ios[i];
    ptrs.push_back(&ios[i]);
  }
  BOOST_TEST(d->submit(0, ptrs.data(), 20) == 20u);
  BOOST_TEST(d->in_flight(0) == 20u);
  BlkCompletion c[32];
  BOOST_TEST(d->poll(0, c, 7) == 7u);
  BOOST_TEST(d->poll(0, c + 7, 32) == 13u);
  for (std::size_t i = 0; i < 20; ++i) {
    BOOST_TEST(c[i].cookie == &ios[i]);
    BOOST_TEST(c[i].result == (i % 3 == 0 ? 0 : static_cast<std::int32_t>(kPage)));
  }
  BOOST_TEST(d->in_flight(0) == 0u);
}

BOOST_DATA_TEST_CASE(queues_run_concurrently_from_separate_threads, data::make(kAllKinds), kind) {
  constexpr std::uint16_t kQueues = 4;
  Disk d = make_disk(kind, kQueues);
  std::vector<std::string> errors(kQueues);
  std::vector<std::thread> threads;
  BlockBackend* b = d.backend.get();
  for (std::uint16_t q = 0; q < kQueues; ++q) {
    threads.emplace_back([b, q, &errors, &kind] {
      const std::uint64_t region = kCapacity / kQueues;
      errors[q] = check_random_io(*b, q, q * region, region, layout_for(kind), 100 + q, 6,
                                  kind == "null" ? Verify::kResultsOnly : Verify::kData);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (std::uint16_t q = 0; q < kQueues; ++q) {
    BOOST_TEST(errors[q].empty(), kind << " q=" << q << ": " << errors[q]);
    BOOST_TEST(d->in_flight(q) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(capacity_and_block_sizes_come_from_the_file) {
  TempFile f((1 << 20) + 700);
  UringBackendOptions o;
  o.path = f.path();
  o.queue_depth = 32;
  std::string why;
  auto r = make_uring_backend(o, why);
  BOOST_REQUIRE_MESSAGE(r.has_value(), why);
  const BlockBackendInfo& i = (*r)->info();
  BOOST_TEST(std::string((*r)->kind()) == "uring");
  BOOST_TEST(i.block_size == 512u);
  BOOST_TEST(i.capacity_bytes == (1u << 20) + 512u);  // rounded down to the block size
  BOOST_TEST(!i.read_only);
  BOOST_TEST(i.supports_write_zeroes);
  BOOST_TEST(i.volatile_cache);  // page cache and disk caches: FLUSH needed
  BOOST_TEST(i.max_queue_depth == 32u);
  BOOST_TEST(i.physical_block_exp <= 7u);  // file-system block / 512, at most 64 KiB

  o.block_size = 4096;
  auto r4 = make_uring_backend(o, why);
  BOOST_REQUIRE_MESSAGE(r4.has_value(), why);
  BOOST_TEST((*r4)->info().block_size == 4096u);
  BOOST_TEST((*r4)->info().capacity_bytes == 1u << 20);
}

BOOST_DATA_TEST_CASE(the_tail_past_the_last_block_is_never_touched, data::make(kUringKinds), kind) {
  // 64 KiB + 700 bytes: 188 bytes past the last 512-byte block.
  constexpr std::uint64_t kSize = (64 << 10) + 700;
  TempFile f(kSize);
  f.write_at(0, pattern(kSize, 11));
  const auto before = f.read_all();
  UringBackendOptions o;
  o.path = f.path();
  o.direct = direct_mode(kind);
  std::string why;
  auto r = make_uring_backend(o, why);
  BOOST_REQUIRE_MESSAGE(r.has_value(), why);
  BlockBackend& b = **r;
  BOOST_REQUIRE(b.start(1).has_value());
  const std::uint64_t cap = b.info().capacity_bytes;
  BOOST_TEST(cap == (64u << 10) + 512u);

  // Fill the last block, zero everything, try past the end.
  const std::uint64_t unit = kind == "uring-direct" ? kPage : 512;
  BOOST_TEST(write_bytes(b, cap - unit, pattern(unit, 12)) == static_cast<std::int32_t>(unit));
  BOOST_TEST(run_one(b, range_io(BlkOp::kWriteZeroes, 0, cap)) == 0);
  Buffer buf(kPage, 0);
  iovec v{buf.data(), 1024};
  BlkIo past;
  past.op = BlkOp::kWrite;
  past.offset = cap - 512;
  past.iov = &v;
  past.iovcnt = 1;
  BOOST_TEST(run_one(b, past) == -EINVAL);
  BOOST_TEST(run_one(b, range_io(BlkOp::kWriteZeroes, cap - 512, 1024)) == -EINVAL);
  b.stop();

  const auto after = f.read_all();
  BOOST_REQUIRE(after.size() == kSize);
  BOOST_TEST(all_zero(after, 0, cap));
  BOOST_TEST(
      (std::vector<std::byte>(after.begin() + static_cast<std::ptrdiff_t>(cap), after.end()) ==
       std::vector<std::byte>(before.begin() + static_cast<std::ptrdiff_t>(cap), before.end())));
}

BOOST_DATA_TEST_CASE(requests_beyond_the_capacity_fail_with_einval, data::make(kAllKinds), kind) {
  Disk d = make_disk(kind);
  Buffer buf(2 * kPage, 0);
  iovec v{buf.data(), 2 * kPage};
  BlkIo read;
  read.op = BlkOp::kRead;
  read.offset = kCapacity - kPage;
  read.iov = &v;
  read.iovcnt = 1;
  BlkIo wz = range_io(BlkOp::kWriteZeroes, kCapacity - kPage, 2 * kPage);
  BlkIo huge = range_io(BlkOp::kDiscard, kPage, ~std::uint64_t{0} - kPage + 1);
  const auto results = run(*d, {&read, &wz, &huge});
  BOOST_TEST(results[0] == -EINVAL);
  BOOST_TEST(results[1] == -EINVAL);
  BOOST_TEST(results[2] == -EINVAL);
  // The last block itself is fine.
  v.iov_len = kPage;
  BOOST_TEST(run_one(*d, read) == static_cast<std::int32_t>(kPage));
}

BOOST_AUTO_TEST_CASE(forced_direct_io_refuses_misaligned_requests_with_einval) {
  Disk d = make_disk("uring-direct");
  Buffer odd(2 * kPage, 1);
  iovec v{odd.data(), kPage};
  BlkIo io;
  io.op = BlkOp::kWrite;
  io.iov = &v;
  io.iovcnt = 1;
  BOOST_TEST(run_one(*d, io) == -EINVAL);  // misaligned buffer
  Buffer even(2 * kPage, 0);
  v = iovec{even.data(), kPage};
  io.offset = 100;
  BOOST_TEST(run_one(*d, io) == -EINVAL);  // misaligned offset
  io.offset = 0;
  v.iov_len = 1000;
  BOOST_TEST(run_one(*d, io) == -EINVAL);  // misaligned length
  v.iov_len = kPage;
  BOOST_TEST(run_one(*d, io) == static_cast<std::int32_t>(kPage));
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused_with_a_reason) {
  UringBackendOptions o;
  std::string why;
  o.path = "/tmp/viopool-unit-blk-does-not-exist-" + std::to_string(::getpid());
  auto r = make_uring_backend(o, why);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(why.find(o.path) != std::string::npos, why);

  o.path = "/tmp";
  why.clear();
  r = make_uring_backend(o, why);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(static_cast<int>(r.error().code) == static_cast<int>(Errc::kInvalidArgument));
  BOOST_TEST(!why.empty());

  TempFile f(1 << 20);
  o.path = f.path();
  o.block_size = 1000;
  r = make_uring_backend(o, why);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(static_cast<int>(r.error().code) == static_cast<int>(Errc::kInvalidArgument));

  o.block_size = 0;
  o.queue_depth = 0;
  r = make_uring_backend(o, why);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(static_cast<int>(r.error().code) == static_cast<int>(Errc::kInvalidArgument));

  o.queue_depth = 16;
  r = make_uring_backend(o, why);
  BOOST_REQUIRE_MESSAGE(r.has_value(), why);
  BOOST_TEST(!(*r)->start(0).has_value());
  BOOST_REQUIRE((*r)->start(2).has_value());
  BOOST_TEST(!(*r)->start(2).has_value());  // already started
}

BOOST_DATA_TEST_CASE(data_survives_stop_and_start, data::make(kDataKinds), kind) {
  Disk d = make_disk(kind);
  const auto bytes = pattern(16 * kPage, 13);
  BOOST_TEST(write_bytes(*d, 8 * kPage, bytes) == static_cast<std::int32_t>(bytes.size()));
  d->stop();
  d->stop();  // idempotent
  BOOST_REQUIRE(d->start(2).has_value());
  BOOST_TEST((read_back(*d, 8 * kPage, bytes.size()) == bytes));
}

BOOST_DATA_TEST_CASE(stop_with_io_in_flight_waits_for_the_kernel_and_can_restart,
                     data::make(kAllKinds), kind) {
  // The device gave up on these: stop() must not return while the kernel may
  // still write into their buffers, and must not hang either.
  Disk d = make_disk(kind);
  std::vector<Buffer> bufs;
  std::vector<iovec> iov(8);
  std::vector<BlkIo> ios(8);
  std::vector<BlkIo*> ptrs;
  for (std::size_t i = 0; i < ios.size(); ++i) {
    bufs.emplace_back(16 * kPage, 0);
    iov[i] = iovec{bufs.back().data(), 16 * kPage};
    ios[i].op = i % 2 == 0 ? BlkOp::kRead : BlkOp::kWrite;
    ios[i].offset = i * 16 * kPage;
    ios[i].iov = &iov[i];
    ios[i].iovcnt = 1;
    ptrs.push_back(&ios[i]);
  }
  BOOST_REQUIRE(d->submit(0, ptrs.data(), 8) == 8u);
  const auto t0 = std::chrono::steady_clock::now();
  d->stop();
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(6)));
  bufs.clear();  // safe now: nothing refers to them any more
  BOOST_REQUIRE(d->start(1).has_value());
  BOOST_TEST(d->in_flight(0) == 0u);
  BOOST_TEST(run_one(*d, range_io(BlkOp::kFlush, 0, 0)) == 0);
}

BOOST_AUTO_TEST_CASE(malloc_disk_starts_zeroed) {
  Disk d = make_disk("malloc");
  BOOST_TEST(all_zero(read_back(*d, 0, kCapacity), 0, kCapacity));
}

BOOST_DATA_TEST_CASE(ram_and_null_backends_report_honest_info, data::make(kImmediateKinds), kind) {
  auto b = kind == "malloc" ? make_malloc_backend((1 << 20) + 1000, 4096)
                            : make_null_backend((1 << 20) + 1000, 4096);
  BOOST_TEST(std::string(b->kind()) == kind);
  const BlockBackendInfo& i = b->info();
  BOOST_TEST(i.capacity_bytes == 1u << 20);
  BOOST_TEST(i.block_size == 4096u);
  BOOST_TEST(!i.read_only);
  BOOST_TEST(i.supports_discard);
  BOOST_TEST(i.supports_write_zeroes);
  BOOST_TEST(!i.volatile_cache);
  BOOST_TEST(i.max_queue_depth == 256u);
  BOOST_REQUIRE(b->start(1).has_value());
  BOOST_TEST(b->completion_fd(0) == -1);

  auto bad =
      kind == "malloc" ? make_malloc_backend(1 << 20, 1000) : make_null_backend(1 << 20, 1000);
  BOOST_TEST(!bad->start(1).has_value());
}

BOOST_AUTO_TEST_CASE(null_reads_leave_buffers_untouched) {
  Disk d = make_disk("null");
  Buffer buf(kPage, 0);
  std::memset(buf.data(), 0x5A, kPage);
  iovec v{buf.data(), kPage};
  BlkIo io;
  io.op = BlkOp::kRead;
  io.iov = &v;
  io.iovcnt = 1;
  BOOST_TEST(run_one(*d, io) == static_cast<std::int32_t>(kPage));
  BOOST_TEST(std::all_of(buf.data(), buf.data() + kPage,
                         [](std::byte b) { return b == std::byte{0x5A}; }));
}

BOOST_AUTO_TEST_SUITE_END()
