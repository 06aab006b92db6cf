// Closed-loop crypto benchmark engine: each thread owns some data queues and
// keeps queue_depth operations in flight on each, every operation on its own
// src / dst buffers in guest memory, with a fresh IV each time. Spins on the
// used rings (or sleeps on the call eventfds) exactly as blk_workload.cc does.
#include "integration/frontend/crypto_workload.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <memory>

namespace viopool::frontend {

namespace {

// What each benchmark algorithm asks of the device, in one table.
struct AlgoInfo {
  CryptoAlgo algo;
  const char* name;
  std::uint32_t service;    // crypto::kService*
  std::uint32_t wire_algo;  // the service's algorithm number
  std::uint32_t iv_len;
  std::uint32_t tag_len;   // appended to dst (AEAD encrypt)
  std::uint32_t hash_len;  // hash_result bytes (hash, MAC)
  std::uint32_t block;     // src length must be a multiple of this
};
constexpr AlgoInfo kAlgos[] = {
    // GCM's 96-bit IV is the one NIST SP 800-38D recommends; 16-byte tag.
    {CryptoAlgo::kAesGcm, "aes-gcm", crypto::kServiceAead, crypto::kAeadGcm, 12, 16, 0, 1},
    {CryptoAlgo::kAesCbc, "aes-cbc", crypto::kServiceCipher, crypto::kCipherAesCbc, 16, 0, 0, 16},
    {CryptoAlgo::kAesCtr, "aes-ctr", crypto::kServiceCipher, crypto::kCipherAesCtr, 16, 0, 0, 1},
    {CryptoAlgo::kSha256, "sha256", crypto::kServiceHash, crypto::kHashSha256, 0, 0, 32, 1},
    {CryptoAlgo::kHmacSha256, "hmac-sha256", crypto::kServiceMac, crypto::kMacHmacSha256, 0, 0, 32,
     1},
};

const AlgoInfo& info_of(CryptoAlgo a) noexcept {
  for (const auto& i : kAlgos) {
    if (i.algo == a) {
      return i;
    }
  }
  return kAlgos[0];
}

// Largest HMAC key we send: a block of SHA-512 (longer keys are hashed first
// by HMAC anyway).
constexpr std::uint32_t kMaxHmacKeyBytes = 128;

constexpr std::uint64_t align64(std::uint64_t n) noexcept { return (n + 63) & ~std::uint64_t{63}; }

// Deterministic filler for keys, IV prefixes and payloads (splitmix64).
void fill_bytes(std::span<std::byte> out, std::uint64_t seed) noexcept {
  std::uint64_t x = seed;
  for (std::size_t i = 0; i < out.size(); i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, std::min<std::size_t>(8, out.size() - i));
  }
}

struct Op {
  ArenaBlock buf;  // src at 0, dst at align64(block_size)
  std::uint64_t start_ns = 0;
};

// q, free (indices into ops), in_flight and last_progress_ns are the loop's.
struct QueueState : ClosedLoopQueue {
  std::vector<Op> ops;
  std::uint64_t iv_counter = 0;
};

struct ThreadOut : ClosedLoopThreadOut {
  std::uint64_t ops = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t errors = 0;
  std::array<std::uint64_t, 256> status_counts{};
  LatencyHistogram latency;
};

class Runner {
 public:
  Runner(CryptoDriver& d, const CryptoWorkloadOptions& o) : d_(d), o_(o), a_(info_of(o.algo)) {}

  Result<void> prepare(std::string* why);
  Result<void> open_session(std::string* why);
  void run_thread(unsigned t, std::uint64_t end_ns, ThreadOut& out);
  std::uint8_t close_session();
  void release();
  std::vector<QueueState>& queues() { return queues_; }
  std::uint64_t session_id() const noexcept { return session_id_; }

 private:
  Result<bool> submit_next(QueueState& qs, std::uint64_t now);
  void complete(QueueState& qs, const CryptoCompletion& c, std::uint64_t done_ns, ThreadOut& out);
  std::uint32_t dst_len() const noexcept {
    return a_.service == crypto::kServiceHash || a_.service == crypto::kServiceMac
               ? 0
               : o_.block_size + a_.tag_len;
  }

  CryptoDriver& d_;
  const CryptoWorkloadOptions& o_;
  const AlgoInfo& a_;
  std::vector<std::byte> key_;
  std::vector<std::byte> aad_;
  std::uint64_t session_id_ = 0;
  bool session_open_ = false;
  std::vector<QueueState> queues_;
  std::atomic<bool> abort_{false};
};

Result<void> Runner::prepare(std::string* why) {
  auto bad = [&](Errc code, const std::string& s) {
    if (why) *why = s;
    return fail(code, "workload options do not fit the device");
  };
  const CryptoConfig& c = d_.config();
  if (o_.block_size == 0 || o_.block_size % a_.block != 0) {
    return bad(Errc::kInvalidArgument, std::string(a_.name) +
                                           " needs a block size that is a "
                                           "non-zero multiple of " +
                                           std::to_string(a_.block));
  }
  if (c.max_size != 0 && o_.block_size + a_.tag_len > c.max_size) {
    return bad(Errc::kInvalidArgument, "block size " + std::to_string(o_.block_size) +
                                           " exceeds the device's max_size " +
                                           std::to_string(c.max_size));
  }
  if (o_.queue_depth == 0 || o_.queue_depth > d_.max_in_flight()) {
    return bad(
        Errc::kInvalidArgument,
        "queue depth must be 1.." + std::to_string(d_.max_in_flight()) + " (the queue size)");
  }
  if (o_.aad_len != 0 && (o_.algo != CryptoAlgo::kAesGcm || o_.aad_len > kCryptoMaxAadBytes)) {
    return bad(Errc::kInvalidArgument,
               "AAD is for aes-gcm only, up to " + std::to_string(kCryptoMaxAadBytes) + " bytes");
  }
  if (!c.has_service(a_.service)) {
    return bad(Errc::kUnsupported, std::string("the device does not offer the ") +
                                       crypto_service_name(a_.service) + " service (services " +
                                       std::to_string(c.crypto_services) + ")");
  }
  bool offered = false;
  std::uint32_t max_key = 0;
  switch (a_.service) {
    case crypto::kServiceCipher:
      offered = c.has_cipher(a_.wire_algo);
      max_key = c.max_cipher_key_len;
      break;
    case crypto::kServiceAead:
      offered = c.has_aead(a_.wire_algo);
      max_key = c.max_cipher_key_len;
      break;
    case crypto::kServiceHash:
      offered = c.has_hash(a_.wire_algo);
      break;
    case crypto::kServiceMac:
      offered = c.has_mac(a_.wire_algo);
      max_key = c.max_auth_key_len;
      break;
    default:
      break;
  }
  if (!offered) {
    return bad(Errc::kUnsupported,
               std::string("the device does not offer ") + a_.name + " (its algorithm masks)");
  }
  const bool aes = a_.service == crypto::kServiceCipher || a_.service == crypto::kServiceAead;
  if (aes && o_.key_size != 16 && o_.key_size != 24 && o_.key_size != 32) {
    return bad(Errc::kInvalidArgument, "AES keys are 16, 24 or 32 bytes");
  }
  if (a_.service == crypto::kServiceMac && (o_.key_size == 0 || o_.key_size > kMaxHmacKeyBytes)) {
    return bad(Errc::kInvalidArgument,
               "HMAC keys are 1.." + std::to_string(kMaxHmacKeyBytes) + " bytes here");
  }
  if (max_key != 0 && o_.key_size > max_key) {
    return bad(Errc::kInvalidArgument, "key size " + std::to_string(o_.key_size) +
                                           " exceeds the device's maximum " +
                                           std::to_string(max_key));
  }
  if (a_.service != crypto::kServiceHash) {
    key_.resize(o_.key_size);
    fill_bytes(key_, o_.seed ^ 0x6b6579ull);
  }
  aad_.resize(o_.aad_len);
  fill_bytes(aad_, o_.seed ^ 0x616164ull);

  const std::uint16_t nq = d_.num_queues();
  const std::uint64_t op_bytes = align64(o_.block_size) + align64(dst_len());
  queues_.resize(nq);
  for (std::uint16_t q = 0; q < nq; ++q) {
    QueueState& qs = queues_[q];
    qs.q = q;
    // IVs unique across queues and runs with different seeds.
    qs.iv_counter = (o_.seed << 40) ^ (std::uint64_t{q} << 32);
    qs.ops.resize(o_.queue_depth);
    for (std::uint32_t i = 0; i < o_.queue_depth; ++i) {
      auto b = alloc_request_buffer(d_.arena(), op_bytes, nq, o_.queue_depth, why);
      if (!b) {
        return unexpected(b.error());
      }
      qs.ops[i].buf = *b;
      fill_bytes(b->bytes().first(o_.block_size), o_.seed + q * 0x10000ull + i);
      qs.free.push_back(o_.queue_depth - 1 - i);
    }
  }
  return {};
}

Result<void> Runner::open_session(std::string* why) {
  CryptoSessionSpec spec;
  switch (a_.service) {
    case crypto::kServiceAead:
      spec = CryptoSessionSpec::make_aead(a_.wire_algo, key_, a_.tag_len, o_.aad_len,
                                          crypto::kDirEncrypt);
      break;
    case crypto::kServiceHash:
      spec = CryptoSessionSpec::make_hash(a_.wire_algo, a_.hash_len);
      break;
    case crypto::kServiceMac:
      spec = CryptoSessionSpec::make_mac(a_.wire_algo, a_.hash_len, key_);
      break;
    default:
      spec = CryptoSessionSpec::make_cipher(a_.wire_algo, key_, crypto::kDirEncrypt);
      break;
  }
  auto r = d_.create_session(spec);
  if (!r) {
    if (why) *why = "create session: " + to_string(r.error());
    return unexpected(r.error());
  }
  if (r->status != crypto::kStatusOk) {
    if (why) {
      *why = std::string("create session: the device answered ") + crypto_status_name(r->status) +
             " for " + a_.name + " with a " + std::to_string(o_.key_size) + "-byte key";
    }
    return fail(r->status == crypto::kStatusNotSupp ? Errc::kUnsupported : Errc::kProtocol,
                "the device refused the session");
  }
  session_id_ = r->session_id;
  session_open_ = true;
  return {};
}

std::uint8_t Runner::close_session() {
  if (!session_open_) {
    return kCryptoStatusNone;
  }
  session_open_ = false;
  std::uint32_t opcode = crypto::kOpCipherDestroySession;
  switch (a_.service) {
    case crypto::kServiceAead:
      opcode = crypto::kOpAeadDestroySession;
      break;
    case crypto::kServiceHash:
      opcode = crypto::kOpHashDestroySession;
      break;
    case crypto::kServiceMac:
      opcode = crypto::kOpMacDestroySession;
      break;
    default:
      break;
  }
  auto r = d_.destroy_session(opcode, session_id_);
  return r ? *r : kCryptoStatusNone;
}

void Runner::release() {
  // Gives the buffers back so the driver can run another workload.
  for (auto& qs : queues_) {
    for (auto& op : qs.ops) {
      if (op.buf) {
        d_.arena().free(op.buf);
        op.buf = ArenaBlock{};
      }
    }
  }
}

Result<bool> Runner::submit_next(QueueState& qs, std::uint64_t now) {
  const std::uint32_t slot = qs.free.back();
  Op& op = qs.ops[slot];
  // A fresh IV per operation: a counter in the last 8 bytes (GCM must never
  // reuse an IV under one key).
  std::array<std::byte, 16> iv{};
  const std::uint64_t ctr = qs.iv_counter++;
  if (a_.iv_len >= 8) {
    std::memcpy(iv.data() + a_.iv_len - 8, &ctr, 8);
  }
  CryptoOp c;
  c.algo = a_.wire_algo;
  c.session_id = session_id_;
  c.iv = std::span<const std::byte>(iv.data(), a_.iv_len);
  switch (a_.service) {
    case crypto::kServiceAead:
      c.opcode = crypto::kOpAeadEncrypt;
      c.aad = aad_;
      break;
    case crypto::kServiceHash:
      c.opcode = crypto::kOpHash;
      c.hash_result_len = a_.hash_len;
      break;
    case crypto::kServiceMac:
      c.opcode = crypto::kOpMac;
      c.hash_result_len = a_.hash_len;
      break;
    default:
      c.opcode = crypto::kOpCipherEncrypt;
      c.op_type = crypto::kSymOpCipher;
      break;
  }
  const GuestBuffer src{op.buf.gpa, o_.block_size};
  const GuestBuffer dst{GuestAddr{op.buf.gpa.value + align64(o_.block_size)}, dst_len()};
  const std::span<const GuestBuffer> dsts =
      dst.len == 0 ? std::span<const GuestBuffer>() : std::span<const GuestBuffer>(&dst, 1);
  op.start_ns = now;
  auto s = d_.submit(qs.q, c, std::span<const GuestBuffer>(&src, 1), dsts, slot);
  if (!s) {
    if (s.error().code == Errc::kResourceExhausted) {
      return false;  // descriptors ran out before slots did: wait for completions
    }
    return unexpected(s.error());
  }
  qs.free.pop_back();
  if (qs.in_flight++ == 0) {
    qs.last_progress_ns = op.start_ns;  // an idle queue has not stalled
  }
  return true;
}

void Runner::complete(QueueState& qs, const CryptoCompletion& c, std::uint64_t done_ns,
                      ThreadOut& out) {
  const auto slot = static_cast<std::uint32_t>(c.cookie);
  const Op& op = qs.ops[slot];
  out.latency.record(done_ns - op.start_ns);
  ++out.ops;
  ++out.status_counts[c.status];
  if (c.status == crypto::kStatusOk) {
    out.payload_bytes += o_.block_size;
  } else {
    ++out.errors;
    if (out.first_error.empty()) {
      out.first_error = std::string(a_.name) + " of " + std::to_string(o_.block_size) +
                        " bytes on queue " + std::to_string(qs.q) + ": status " +
                        crypto_status_name(c.status);
    }
  }
  qs.free.push_back(slot);
  --qs.in_flight;
}

void Runner::run_thread(unsigned t, std::uint64_t end_ns, ThreadOut& out) {
  ClosedLoopThread<CryptoDriver, QueueState, CryptoCompletion> loop(
      d_, closed_loop_options(o_, "operations"), abort_, out);
  if (!loop.start(t, queues_)) {
    return;
  }
  const bool done =
      loop.run([end_ns](const QueueState&, std::uint64_t now) { return now < end_ns; },
               [this](QueueState& qs, std::uint64_t now) { return submit_next(qs, now); },
               [this, &out](QueueState& qs, const CryptoCompletion& c, std::uint64_t done) {
                 complete(qs, c, done, out);
               });
  if (done) {
    out.main_done_ns = now_ns();
  }
}

}  // namespace

bool parse_crypto_algo(const std::string& name, CryptoAlgo& out) {
  for (const auto& i : kAlgos) {
    if (name == i.name) {
      out = i.algo;
      return true;
    }
  }
  return false;
}

const char* crypto_algo_name(CryptoAlgo a) noexcept { return info_of(a).name; }

Result<CryptoWorkloadReport> run_crypto_workload(CryptoDriver& driver,
                                                 const CryptoWorkloadOptions& options,
                                                 std::string* why) {
  auto runner = std::make_unique<Runner>(driver, options);
  if (auto p = runner->prepare(why); !p) {
    runner->release();
    return unexpected(p.error());
  }
  if (auto s = runner->open_session(why); !s) {
    runner->release();
    return unexpected(s.error());
  }
  std::vector<ThreadOut> outs;
  auto seconds = run_closed_loop_threads(*runner, options, outs, why);
  if (!seconds) {
    // Operations may still be in flight: the buffers stay allocated (the
    // device may still write them) and the session open.
    return unexpected(seconds.error());
  }

  CryptoWorkloadReport rep;
  rep.session_id = runner->session_id();
  rep.seconds = *seconds;
  for (auto& o : outs) {
    rep.ops += o.ops;
    rep.payload_bytes += o.payload_bytes;
    rep.errors += o.errors;
    for (std::size_t s = 0; s < o.status_counts.size(); ++s) {
      rep.status_counts[s] += o.status_counts[s];
    }
    rep.latency.merge(o.latency);
    if (rep.first_error.empty()) {
      rep.first_error = o.first_error;
    }
  }
  add_kick_counts(driver, rep);
  rep.destroy_status = runner->close_session();
  runner->release();
  return rep;
}

}  // namespace viopool::frontend
