// Closed-loop workload engine: each thread owns some queues, keeps queue_depth
// requests in flight on each, and either spins on the used rings or sleeps on
// the call eventfds. Verify keeps one 32-bit seed per granule (the pattern last
// written there) and never lets overlapping requests be in flight at once, so
// the expected content of every granule is always known.
#include "integration/frontend/blk_workload.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <memory>

namespace viopool::frontend {

namespace {

// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n); 0 for n == 0. The modulo bias is below 2^-40 for the
  // ranges used here.
  std::uint64_t below(std::uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

constexpr std::uint32_t kSeedNone = 0;              // granule never written by this run
constexpr std::uint32_t kSeedUnknown = 0xffffffff;  // a write there failed: content undefined
// Largest verify map (4 bytes per granule): 64 MiB.
constexpr std::uint64_t kMaxVerifyGranules = std::uint64_t{16} << 20;
constexpr std::size_t kMaxSegments = 8;

struct Req {
  ArenaBlock buf;
  std::uint64_t start_ns = 0;
  std::uint64_t offset = 0;  // device byte offset
  std::uint32_t len = 0;
  std::uint32_t seed = 0;  // kVerify writes
  bool write = false;
  bool busy = false;
};

enum class Phase : std::uint8_t { kMain, kReadback };
// How split() cuts a request's buffer into data segments.
enum class Shape : std::uint8_t { kSingle, kVaried };

// q, free (indices into reqs), in_flight and last_progress_ns are the loop's.
struct QueueState : ClosedLoopQueue {
  std::vector<Req> reqs;
  std::uint64_t region_start = 0;  // bytes; sequential and verify modes use a partition
  std::uint64_t region_len = 0;
  std::uint64_t cursor = 0;
  bool any_written = false;
  std::uint32_t next_seed = 1;
  Rng rng{1};
};

struct ThreadOut : ClosedLoopThreadOut {
  OpStats read;
  OpStats write;
  LatencyHistogram all;
  std::uint64_t verify_bytes = 0;
  std::uint64_t verify_mismatches = 0;
  std::uint64_t readback_ios = 0;
};

class Runner {
 public:
  Runner(BlkDriver& d, const WorkloadOptions& o) : d_(d), o_(o) {}

  Result<void> prepare(std::string* why);
  void run_thread(unsigned t, std::uint64_t end_ns, ThreadOut& out);
  std::vector<QueueState>& queues() { return queues_; }
  std::atomic<bool>& abort() { return abort_; }

 private:
  Result<bool> submit_next(QueueState& qs, Phase phase, std::uint64_t now);
  void complete(QueueState& qs, const BlkCompletion& c, Phase phase, std::uint64_t done_ns,
                ThreadOut& out);
  bool overlaps_in_flight(const QueueState& qs, std::uint64_t off, std::uint32_t len) const;
  std::size_t split(const Req& r, QueueState& qs, std::array<BlkBuffer, kMaxSegments>& segs,
                    Shape shape);
  bool pick_verify_range(QueueState& qs, std::uint64_t& off, std::uint32_t& len);
  bool pick_readback_range(QueueState& qs, std::uint64_t& off, std::uint32_t& len);

  BlkDriver& d_;
  const WorkloadOptions& o_;
  std::uint64_t size_ = 0;
  std::uint32_t granule_ = blk::kSectorSize;
  std::vector<std::uint32_t> seeds_;  // kVerify: per granule
  std::vector<QueueState> queues_;
  std::atomic<bool> abort_{false};
};

Result<void> Runner::prepare(std::string* why) {
  auto bad = [&](const std::string& s) {
    if (why) *why = s;
    return fail(Errc::kInvalidArgument, "workload options do not fit the device");
  };
  const std::uint64_t cap = d_.capacity_bytes();
  size_ = o_.size != 0 ? o_.size : cap;
  if (size_ > cap) {
    return bad("--size " + std::to_string(size_) + " exceeds the device capacity " +
               std::to_string(cap));
  }
  if (o_.block_size == 0 || o_.block_size % blk::kSectorSize != 0) {
    return bad("block size must be a non-zero multiple of 512");
  }
  if (o_.queue_depth == 0 || o_.queue_depth > d_.max_in_flight()) {
    return bad("queue depth must be 1.." + std::to_string(d_.max_in_flight()) +
               " (the queue size)");
  }
  if (o_.rw_mix_read > 100) {
    return bad("rwmixread must be 0..100");
  }
  const std::uint16_t nq = d_.num_queues();
  const bool verify = o_.rw == RwMode::kVerify;
  const bool sequential = o_.rw == RwMode::kRead || o_.rw == RwMode::kWrite;
  if (verify) {
    granule_ = std::max<std::uint32_t>(blk::kSectorSize, d_.config().blk_size);
    if (o_.block_size % granule_ != 0) {
      return bad("verify block size must be a multiple of the device block size " +
                 std::to_string(granule_));
    }
    if (size_ / granule_ > kMaxVerifyGranules) {
      return bad("verify region too large for the verify map: use --size");
    }
    seeds_.assign(size_ / granule_, kSeedNone);
  }
  // Sequential and verify modes give each queue its own partition of the
  // region (as fio jobs with offset_increment); random modes share all of it.
  const std::uint64_t part = (verify || sequential) ? (size_ / nq) / granule_ * granule_ : size_;
  if (part < o_.block_size) {
    return bad("region of " + std::to_string(part) +
               " bytes per queue is smaller than the block size");
  }
  queues_.resize(nq);
  for (std::uint16_t q = 0; q < nq; ++q) {
    QueueState& qs = queues_[q];
    qs.q = q;
    qs.region_start = (verify || sequential) ? part * q : 0;
    qs.region_len = part;
    qs.rng = Rng(o_.seed * 0x100000001b3ull + q);
    // Seeds unique across queues: 2^27 writes per queue before they repeat.
    qs.next_seed = (static_cast<std::uint32_t>(q) << 27) + 1;
    qs.reqs.resize(o_.queue_depth);
    for (std::uint32_t i = 0; i < o_.queue_depth; ++i) {
      auto b = alloc_request_buffer(d_.arena(), o_.block_size, nq, o_.queue_depth, why);
      if (!b) {
        return unexpected(b.error());
      }
      qs.reqs[i].buf = *b;
      if (o_.rw == RwMode::kWrite || o_.rw == RwMode::kRandWrite || o_.rw == RwMode::kRandRw) {
        fill_pattern(b->bytes(), 0, o_.seed + i);  // arbitrary non-zero data
      }
      qs.free.push_back(o_.queue_depth - 1 - i);
    }
  }
  return {};
}

bool Runner::overlaps_in_flight(const QueueState& qs, std::uint64_t off, std::uint32_t len) const {
  for (const Req& r : qs.reqs) {
    if (r.busy && off < r.offset + r.len && r.offset < off + len) {
      return true;
    }
  }
  return false;
}

bool Runner::pick_verify_range(QueueState& qs, std::uint64_t& off, std::uint32_t& len) {
  const std::uint64_t granules = qs.region_len / granule_;
  const std::uint64_t max_blocks = std::min<std::uint64_t>(o_.block_size / granule_, granules);
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::uint64_t n = 1 + qs.rng.below(max_blocks);
    const std::uint64_t g = qs.rng.below(granules - n + 1);
    off = qs.region_start + g * granule_;
    len = static_cast<std::uint32_t>(n * granule_);
    if (!overlaps_in_flight(qs, off, len)) {
      return true;
    }
  }
  return false;  // try again after completions
}

bool Runner::pick_readback_range(QueueState& qs, std::uint64_t& off, std::uint32_t& len) {
  while (qs.cursor < qs.region_len) {
    off = qs.region_start + qs.cursor;
    len = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(o_.block_size, qs.region_len - qs.cursor));
    qs.cursor += len;
    const std::uint64_t g0 = off / granule_;
    for (std::uint64_t g = g0; g < g0 + len / granule_; ++g) {
      if (seeds_[g] != kSeedNone && seeds_[g] != kSeedUnknown) {
        return true;
      }
    }
  }
  return false;
}

std::size_t Runner::split(const Req& r, QueueState& qs, std::array<BlkBuffer, kMaxSegments>& segs,
                          Shape shape) {
  const bool vary = shape == Shape::kVaried;
  const std::uint32_t size_max = d_.has_feature(blk::kFeatSizeMax) ? d_.config().size_max : 0;
  const std::size_t max_segs =
      std::min<std::size_t>(kMaxSegments, std::max<std::uint32_t>(1, d_.max_data_segments()));
  const std::uint32_t sectors = r.len / blk::kSectorSize;
  std::size_t n = 1;
  if (vary) {
    // Vary the chain shape (1..4 buffers at sector boundaries) so a backend's
    // scatter-gather is exercised, not just single-buffer requests.
    n = 1 + qs.rng.below(4);
  }
  if (size_max != 0) {
    n = std::max<std::size_t>(n, (r.len + size_max - 1) / size_max);
  }
  n = std::min<std::size_t>({n, sectors, max_segs});
  // Random cut points, except under size_max where even pieces stay below it.
  const bool random_cuts = vary && size_max == 0;
  std::uint32_t left = sectors;
  GuestAddr at = r.buf.gpa;
  for (std::size_t i = 0; i < n; ++i) {
    const auto pieces_left = static_cast<std::uint32_t>(n - i);
    std::uint32_t take = left / pieces_left;
    if (random_cuts && pieces_left > 1) {
      take = 1 + static_cast<std::uint32_t>(qs.rng.below(left - pieces_left + 1));
    }
    if (i + 1 == n) {
      take = left;
    }
    segs[i] = BlkBuffer{at, take * blk::kSectorSize};
    at = GuestAddr{at.value + std::uint64_t{take} * blk::kSectorSize};
    left -= take;
  }
  return n;
}

Result<bool> Runner::submit_next(QueueState& qs, Phase phase, std::uint64_t now) {
  const std::uint32_t slot = qs.free.back();
  Req& r = qs.reqs[slot];
  const std::uint32_t bs = o_.block_size;
  switch (phase == Phase::kReadback ? RwMode::kVerify : o_.rw) {
    case RwMode::kRead:
    case RwMode::kWrite:
      if (qs.cursor + bs > qs.region_len) {
        qs.cursor = 0;
      }
      r.offset = qs.region_start + qs.cursor;
      qs.cursor += bs;
      r.len = bs;
      r.write = o_.rw == RwMode::kWrite;
      break;
    case RwMode::kRandRead:
    case RwMode::kRandWrite:
    case RwMode::kRandRw:
      r.offset = qs.region_start + qs.rng.below(qs.region_len / bs) * bs;
      r.len = bs;
      r.write = o_.rw == RwMode::kRandWrite ||
                (o_.rw == RwMode::kRandRw && qs.rng.below(100) >= o_.rw_mix_read);
      break;
    case RwMode::kVerify:
      if (phase == Phase::kReadback) {
        if (!pick_readback_range(qs, r.offset, r.len)) {
          return false;
        }
        r.write = false;
      } else {
        r.write = !qs.any_written || qs.rng.below(3) != 0;
        if (!pick_verify_range(qs, r.offset, r.len)) {
          return false;
        }
        if (r.write) {
          r.seed = qs.next_seed++;
          if (r.seed == kSeedUnknown || r.seed == kSeedNone) {
            r.seed = qs.next_seed++;
          }
          fill_pattern(r.buf.bytes().first(r.len), r.offset, r.seed);
        }
      }
      break;
  }
  std::array<BlkBuffer, kMaxSegments> segs;
  const std::size_t n =
      split(r, qs, segs, o_.rw == RwMode::kVerify ? Shape::kVaried : Shape::kSingle);
  const std::span<const BlkBuffer> data(segs.data(), n);
  const std::uint64_t sector = r.offset / blk::kSectorSize;
  r.start_ns = now;
  auto s = r.write ? d_.write(qs.q, sector, data, slot) : d_.read(qs.q, sector, data, slot);
  if (!s) {
    if (s.error().code == Errc::kResourceExhausted) {
      return false;  // descriptors ran out before slots did: wait for completions
    }
    return unexpected(s.error());
  }
  r.busy = true;
  qs.free.pop_back();
  if (qs.in_flight++ == 0) {
    qs.last_progress_ns = r.start_ns;  // an idle queue has not stalled
  }
  if (r.write) {
    qs.any_written = true;
  }
  return true;
}

void Runner::complete(QueueState& qs, const BlkCompletion& c, Phase phase,
                      std::uint64_t done_ns, ThreadOut& out) {
  const auto slot = static_cast<std::uint32_t>(c.cookie);
  Req& r = qs.reqs[slot];
  const std::uint64_t lat = done_ns - r.start_ns;
  const bool ok = c.status == blk::kStatusOk;
  if (phase == Phase::kMain) {
    OpStats& st = r.write ? out.write : out.read;
    ++st.ios;
    st.latency.record(lat);
    out.all.record(lat);
    if (ok) {
      st.bytes += r.len;
    } else {
      ++st.errors;
    }
  } else {
    ++out.readback_ios;
    if (!ok) {
      ++out.read.errors;
    }
  }
  if (!ok && out.first_error.empty()) {
    out.first_error = std::string(r.write ? "write" : "read") + " of " + std::to_string(r.len) +
                      " bytes at offset " + std::to_string(r.offset) + " on queue " +
                      std::to_string(qs.q) + ": status " + blk_status_name(c.status);
  }
  if (o_.rw == RwMode::kVerify) {
    const std::uint64_t g0 = r.offset / granule_;
    const std::uint64_t ng = r.len / granule_;
    if (r.write) {
      for (std::uint64_t g = g0; g < g0 + ng; ++g) {
        seeds_[g] = ok ? r.seed : kSeedUnknown;
      }
    } else if (ok) {
      for (std::uint64_t i = 0; i < ng; ++i) {
        const std::uint32_t seed = seeds_[g0 + i];
        if (seed == kSeedNone || seed == kSeedUnknown) {
          continue;
        }
        const std::uint64_t off = r.offset + i * granule_;
        auto bytes = r.buf.bytes().subspan(i * granule_, granule_);
        out.verify_bytes += granule_;
        if (auto at = find_pattern_mismatch(bytes, off, seed)) {
          ++out.verify_mismatches;
          if (out.first_error.empty()) {
            out.first_error = "verify: data at offset " + std::to_string(off + *at) +
                              " differs from what was written there (seed " + std::to_string(seed) +
                              ")" + (all_zero(bytes) ? ", the block reads as zeroes" : "");
          }
        }
      }
    }
  }
  r.busy = false;
  qs.free.push_back(slot);
  --qs.in_flight;
}

void Runner::run_thread(unsigned t, std::uint64_t end_ns, ThreadOut& out) {
  ClosedLoopThread<BlkDriver, QueueState, BlkCompletion> loop(
      d_, closed_loop_options(o_, "requests"), abort_, out);
  if (!loop.start(t, queues_)) {
    return;
  }
  const bool main_done = loop.run(
      [end_ns](const QueueState&, std::uint64_t now) { return now < end_ns; },
      [this](QueueState& qs, std::uint64_t now) { return submit_next(qs, Phase::kMain, now); },
      [this, &out](QueueState& qs, const BlkCompletion& c, std::uint64_t done) {
        complete(qs, c, Phase::kMain, done, out);
      });
  if (!main_done) {
    return;
  }
  out.main_done_ns = now_ns();
  if (o_.rw != RwMode::kVerify) {
    return;
  }
  // Read back every block written, each queue its own partition.
  for (QueueState* qs : loop.queues()) {
    qs->cursor = 0;
  }
  (void)loop.run([](const QueueState& qs, std::uint64_t) { return qs.cursor < qs.region_len; },
                 [this](QueueState& qs, std::uint64_t now) {
                   return submit_next(qs, Phase::kReadback, now);
                 },
                 [this, &out](QueueState& qs, const BlkCompletion& c, std::uint64_t done) {
                   complete(qs, c, Phase::kReadback, done, out);
                 });
}

}  // namespace

bool parse_rw_mode(const std::string& name, RwMode& out) {
  static constexpr std::pair<const char*, RwMode> kModes[] = {
      {"read", RwMode::kRead},         {"write", RwMode::kWrite},
      {"randread", RwMode::kRandRead}, {"randwrite", RwMode::kRandWrite},
      {"randrw", RwMode::kRandRw},     {"verify", RwMode::kVerify},
  };
  for (const auto& [n, m] : kModes) {
    if (name == n) {
      out = m;
      return true;
    }
  }
  return false;
}

const char* rw_mode_name(RwMode m) noexcept {
  switch (m) {
    case RwMode::kRead:
      return "read";
    case RwMode::kWrite:
      return "write";
    case RwMode::kRandRead:
      return "randread";
    case RwMode::kRandWrite:
      return "randwrite";
    case RwMode::kRandRw:
      return "randrw";
    case RwMode::kVerify:
      return "verify";
  }
  return "?";
}

Result<WorkloadReport> run_blk_workload(BlkDriver& driver, const WorkloadOptions& options,
                                        std::string* why) {
  auto runner = std::make_unique<Runner>(driver, options);
  VIOPOOL_TRY(runner->prepare(why));
  std::vector<ThreadOut> outs;
  auto seconds = run_closed_loop_threads(*runner, options, outs, why);
  if (!seconds) {
    return unexpected(seconds.error());
  }

  WorkloadReport rep;
  rep.seconds = *seconds;
  for (auto& o : outs) {
    rep.read.ios += o.read.ios;
    rep.read.bytes += o.read.bytes;
    rep.read.errors += o.read.errors;
    rep.read.latency.merge(o.read.latency);
    rep.write.ios += o.write.ios;
    rep.write.bytes += o.write.bytes;
    rep.write.errors += o.write.errors;
    rep.write.latency.merge(o.write.latency);
    rep.latency.merge(o.all);
    rep.verify_bytes += o.verify_bytes;
    rep.verify_mismatches += o.verify_mismatches;
    rep.verify_readback_ios += o.readback_ios;
    if (rep.first_error.empty()) {
      rep.first_error = o.first_error;
    }
  }
  add_kick_counts(driver, rep);
  // Gives the buffers back so the driver can run another workload.
  for (auto& qs : runner->queues()) {
    for (auto& r : qs.reqs) {
      driver.arena().free(r.buf);
    }
  }
  return rep;
}

}  // namespace viopool::frontend
