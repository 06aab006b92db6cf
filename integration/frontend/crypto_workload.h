// A closed-loop throughput benchmark over a connected CryptoDriver: one
// encrypt (or hash / MAC) session, queue_depth operations of block_size bytes
// in flight on every data queue for the runtime, and ops/s, payload Gbps,
// latency percentiles and per-status counts at the end. main.cc only parses
// options and prints the CryptoWorkloadReport; the engine shares its clock,
// pinning and interrupt waits with blk_workload.h (workload_common.h).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "integration/frontend/crypto_driver.h"
#include "integration/frontend/latency_histogram.h"
#include "integration/frontend/workload_common.h"
#include "vhost-backend/base/result.h"

namespace viopool::frontend {

// aes-gcm: an AEAD session (12-byte IV, 16-byte tag appended to dst);
// aes-cbc / aes-ctr: a cipher session (16-byte IV); sha256: a hash session
// and hmac-sha256 a MAC session, both with a 32-byte result.
enum class CryptoAlgo : std::uint8_t { kAesGcm, kAesCbc, kAesCtr, kSha256, kHmacSha256 };

// "aes-gcm" -> kAesGcm, ...; false for an unknown name.
bool parse_crypto_algo(const std::string& name, CryptoAlgo& out);
const char* crypto_algo_name(CryptoAlgo a) noexcept;

struct CryptoWorkloadOptions {
  CryptoAlgo algo = CryptoAlgo::kAesGcm;
  // Cipher key bytes (16, 24 or 32 for AES), or the HMAC key length.
  std::uint32_t key_size = 16;
  std::uint32_t block_size = 4096;  // payload (src) bytes per operation
  std::uint32_t aad_len = 0;        // aes-gcm: AAD bytes per operation
  std::uint32_t queue_depth = 32;   // per data queue
  std::chrono::milliseconds runtime{10000};
  WaitMode wait_mode = WaitMode::kPoll;
  unsigned threads = 1;    // data queues are dealt round-robin to threads
  std::vector<int> cpus;   // thread i runs on cpus[i % n]; empty: not pinned
  std::uint64_t seed = 1;  // key, IV and payload bytes
  // A queue with operations in flight and no completion for this long fails
  // the run with kTimeout (a stalled or dead backend).
  std::chrono::milliseconds io_timeout{10000};
};

struct CryptoWorkloadReport {
  double seconds = 0;                              // wall time of the timed phase, drain included
  std::uint64_t ops = 0;                           // completed operations, whatever their status
  std::uint64_t payload_bytes = 0;                 // src bytes of the operations that completed OK
  std::uint64_t errors = 0;                        // completions with a status other than OK
  std::array<std::uint64_t, 256> status_counts{};  // by status byte (kCryptoStatusNone too)
  LatencyHistogram latency;                        // submit to completion, nanoseconds
  std::uint64_t session_id = 0;
  std::uint8_t destroy_status = kCryptoStatusNone;  // of the session at the end
  std::string first_error;                          // first failed operation, for people
  std::uint64_t kicks = 0;
  std::uint64_t kicks_suppressed = 0;

  double ops_per_sec() const noexcept {
    return seconds > 0 ? static_cast<double>(ops) / seconds : 0;
  }
  double gbps() const noexcept {
    return seconds > 0 ? static_cast<double>(payload_bytes) * 8 / seconds / 1e9 : 0;
  }
};

// Creates the session, runs the workload on every data queue of `driver`
// (which it uses exclusively until it returns), then destroys the session.
// Blocks for about options.runtime. Operation failures are counted in the
// report; the Result fails only when the run cannot go on: kInvalidArgument
// for options that do not fit the device, kUnsupported when it does not offer
// the algorithm, kProtocol when the session is refused, kResourceExhausted
// when guest memory is too small, kTimeout for a stalled backend. `why` gets a
// message for people.
Result<CryptoWorkloadReport> run_crypto_workload(CryptoDriver& driver,
                                                 const CryptoWorkloadOptions& options,
                                                 std::string* why = nullptr);

}  // namespace viopool::frontend
