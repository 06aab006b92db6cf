// fio-like closed-loop workloads over a connected BlkDriver: sequential or
// random reads/writes, a read/write mix, and `verify` (patterned writes at
// random offsets and sizes, read back and compared). Measures IOPS, bandwidth
// and latency percentiles with LatencyHistogram. main.cc only parses options
// and prints the WorkloadReport.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "integration/frontend/blk_driver.h"
#include "integration/frontend/latency_histogram.h"
#include "integration/frontend/workload_common.h"
#include "vhost-backend/base/result.h"

namespace viopool::frontend {

enum class RwMode : std::uint8_t { kRead, kWrite, kRandRead, kRandWrite, kRandRw, kVerify };

// "randread" -> kRandRead, ...; false for an unknown name.
bool parse_rw_mode(const std::string& name, RwMode& out);
const char* rw_mode_name(RwMode m) noexcept;

struct WorkloadOptions {
  RwMode rw = RwMode::kRandRead;
  // Bytes per request; with kVerify the largest request (sizes vary from one
  // block to this).
  std::uint32_t block_size = 4096;
  std::uint32_t queue_depth = 32;  // per queue
  std::chrono::milliseconds runtime{10000};
  // Bytes of the device used, from offset 0; 0: the whole capacity.
  std::uint64_t size = 0;
  unsigned rw_mix_read = 50;  // kRandRw: percent of reads
  WaitMode wait_mode = WaitMode::kPoll;
  unsigned threads = 1;   // queues are dealt round-robin to threads
  std::vector<int> cpus;  // thread i runs on cpus[i % n]; empty: not pinned
  std::uint64_t seed = 1;
  // A queue with requests in flight and no completion for this long fails
  // the run with kTimeout (a stalled or dead backend).
  std::chrono::milliseconds io_timeout{10000};
};

struct OpStats {
  std::uint64_t ios = 0;
  std::uint64_t bytes = 0;
  std::uint64_t errors = 0;  // completions with a status other than OK
  LatencyHistogram latency;
};

struct WorkloadReport {
  double seconds = 0;  // wall time of the timed phase, drain included
  OpStats read;
  OpStats write;
  LatencyHistogram latency;  // all requests of the timed phase
  // kVerify: bytes compared against the expected pattern, and granules that
  // differed (stale data, torn writes, data landing at the wrong offset).
  std::uint64_t verify_bytes = 0;
  std::uint64_t verify_mismatches = 0;
  std::uint64_t verify_readback_ios = 0;  // reads of the final read-back pass
  std::string first_error;                // first failed request or mismatch, for people
  std::uint64_t kicks = 0;
  std::uint64_t kicks_suppressed = 0;

  std::uint64_t ios() const noexcept { return read.ios + write.ios; }
  std::uint64_t errors() const noexcept { return read.errors + write.errors; }
};

// Runs the workload on every queue of `driver` (which it uses exclusively
// until it returns). Blocks for about options.runtime (kVerify: plus the
// read-back pass). Request failures and mismatches are counted in the
// report; the Result fails only when the run itself cannot go on:
// kInvalidArgument for options that do not fit the device, kResourceExhausted
// when guest memory is too small for the buffers, kTimeout for a stalled
// backend, kProtocol for a broken ring. `why` gets a message for people.
Result<WorkloadReport> run_blk_workload(BlkDriver& driver, const WorkloadOptions& options,
                                        std::string* why = nullptr);

}  // namespace viopool::frontend
