// CryptodevBackend: sessions as rte_cryptodev sym sessions, jobs as
// rte_crypto_ops over mbufs with external buffers in guest memory.
#include "vhost-backend/devices/crypto/cryptodev_backend.h"

#include <rte_bus.h>
#include <rte_crypto.h>
#include <rte_cryptodev.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#include "vhost-backend/base/log.h"
#include "vhost-backend/devices/crypto/crypto_request.h"

VIOPOOL_LOG_MODULE("crypto")

namespace viopool::crypto {
namespace {

// Per-op private area, right after the rte_crypto_sym_op (DPDK reads the IV
// from there, at kIvOffset from the op). That is only 8-byte aligned (ops are
// 64-byte aligned, the op and sym op 88 bytes long): nothing in here may ask
// for more, or the compiler will assume it.
struct OpPriv {
  std::uint8_t iv[kMaxIvBytes];
  std::uint8_t aad[kMaxAadBytes];
  std::uint8_t digest[kMaxDigestBytes];
  rte_mbuf_ext_shared_info shinfo_src;
  rte_mbuf_ext_shared_info shinfo_dst;
  CryptoJob* job;
  std::int32_t staging;  // staging buffer index or -1
  bool digest_copy_out;  // digest went to `digest`, copy to the guest on completion
  bool dst_copy_out;     // result is in the staging buffer, copy to job->dst
};
constexpr std::uint32_t kIvOffset = sizeof(rte_crypto_op) + sizeof(rte_crypto_sym_op);
static_assert(alignof(OpPriv) <= 8 && kIvOffset % alignof(OpPriv) == 0);

OpPriv* priv_of(rte_crypto_op* op) noexcept {
  return reinterpret_cast<OpPriv*>(reinterpret_cast<std::uint8_t*>(op) + kIvOffset);
}

// The op's symmetric part. DPDK declares it as a zero-length array, which
// GCC 12's -Warray-bounds misreads as empty when indexed; the access itself
// is how DPDK's own inline functions reach it (computing the address by hand
// instead loses the alignment the compiler knows and is not an option).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
rte_crypto_sym_op* sym_of(rte_crypto_op* op) noexcept { return op->sym; }
#pragma GCC diagnostic pop

// The external buffers are guest memory: nothing to free when the mbuf lets go.
void no_free(void*, void*) noexcept {}

constexpr std::uint32_t kStagingBuffers = 32;
constexpr std::uint32_t kStagingBytes = kMaxRequestBytes + kMaxDigestBytes;
// Most jobs submit() takes at once, and results of the CPU path a queue holds
// until poll() returns them (room for two full submits).
constexpr std::uint32_t kMaxSubmit = 64;
constexpr std::uint32_t kDoneSlots = 2 * kMaxSubmit;
// Longest data the CPU path copies from src into dst (bench/crypto: at 1 KiB
// it gains, at 4 KiB GCM loses 11 %).
constexpr std::uint32_t kCpuCopyMax = 2048;

// What a BackendSession points to.
struct Session {
  void* sess = nullptr;  // the rte_cryptodev sym session
  bool cpu = false;      // its jobs may take the CPU crypto path
};

// Copies the bytes of `v` into `dst` (gather).
void gather(const Iovs& v, std::uint8_t* dst) noexcept {
  for (std::uint32_t i = 0; i < v.n; ++i) {
    std::memcpy(dst, v.v[i].iov_base, v.v[i].iov_len);
    dst += v.v[i].iov_len;
  }
}
// Copies `src` into the buffers of `v` (scatter).
void scatter(const std::uint8_t* src, const Iovs& v) noexcept {
  for (std::uint32_t i = 0; i < v.n; ++i) {
    std::memcpy(v.v[i].iov_base, src, v.v[i].iov_len);
    src += v.v[i].iov_len;
  }
}

SizeRange range(const rte_crypto_param_range& r) noexcept {
  return SizeRange{r.min, r.max, r.increment};
}

// virtio ↔ DPDK algorithm numbers.
struct CipherMap {
  std::uint32_t virtio;
  rte_crypto_cipher_algorithm dpdk;
};
constexpr CipherMap kCiphers[] = {
    {kCipherAesEcb, RTE_CRYPTO_CIPHER_AES_ECB},
    {kCipherAesCbc, RTE_CRYPTO_CIPHER_AES_CBC},
    {kCipherAesCtr, RTE_CRYPTO_CIPHER_AES_CTR},
    {kCipherAesXts, RTE_CRYPTO_CIPHER_AES_XTS},
};
struct AuthMap {
  std::uint32_t virtio;
  bool mac;
  rte_crypto_auth_algorithm dpdk;
};
constexpr AuthMap kAuths[] = {
    {kHashMd5, false, RTE_CRYPTO_AUTH_MD5},
    {kHashSha1, false, RTE_CRYPTO_AUTH_SHA1},
    {kHashSha224, false, RTE_CRYPTO_AUTH_SHA224},
    {kHashSha256, false, RTE_CRYPTO_AUTH_SHA256},
    {kHashSha384, false, RTE_CRYPTO_AUTH_SHA384},
    {kHashSha512, false, RTE_CRYPTO_AUTH_SHA512},
    {kMacHmacMd5, true, RTE_CRYPTO_AUTH_MD5_HMAC},
    {kMacHmacSha1, true, RTE_CRYPTO_AUTH_SHA1_HMAC},
    {kMacHmacSha224, true, RTE_CRYPTO_AUTH_SHA224_HMAC},
    {kMacHmacSha256, true, RTE_CRYPTO_AUTH_SHA256_HMAC},
    {kMacHmacSha384, true, RTE_CRYPTO_AUTH_SHA384_HMAC},
    {kMacHmacSha512, true, RTE_CRYPTO_AUTH_SHA512_HMAC},
    {kMacCmacAes, true, RTE_CRYPTO_AUTH_AES_CMAC},
};
struct AeadMap {
  std::uint32_t virtio;
  rte_crypto_aead_algorithm dpdk;
};
constexpr AeadMap kAeads[] = {
    {kAeadGcm, RTE_CRYPTO_AEAD_AES_GCM},
    {kAeadCcm, RTE_CRYPTO_AEAD_AES_CCM},
    {kAeadChacha20Poly1305, RTE_CRYPTO_AEAD_CHACHA20_POLY1305},
};

class CryptodevBackend final : public CryptoBackend {
 public:
  explicit CryptodevBackend(CryptodevBackendOptions o) : o_(std::move(o)) {}
  ~CryptodevBackend() override { stop(); }

  std::string name() const override { return "cryptodev:" + driver_; }
  const CryptoCapabilities& capabilities() const noexcept override { return caps_; }

  Result<void> start(std::uint16_t queues, std::uint32_t max_sessions) override {
    const std::string devname = o_.devargs.substr(0, o_.devargs.find(','));
    int id = rte_cryptodev_get_dev_id(devname.c_str());
    if (id < 0) {
      if (rte_dev_probe(o_.devargs.c_str()) != 0) {
        VIOPOOL_LOG_ERROR("cannot probe cryptodev {} devargs=\"{}\"", o_.log_id, o_.devargs);
        return fail(Errc::kNotFound, "cryptodev: probe failed (check devargs)");
      }
      probed_ = true;
      id = rte_cryptodev_get_dev_id(devname.c_str());
      if (id < 0) {
        cleanup();
        return fail(Errc::kNotFound, "cryptodev: probed device has no cryptodev of that name");
      }
    }
    dev_ = static_cast<std::uint8_t>(id);
    rte_cryptodev_info info{};
    rte_cryptodev_info_get(dev_, &info);
    driver_ = info.driver_name ? info.driver_name : "?";
    if ((info.feature_flags & RTE_CRYPTODEV_FF_SYMMETRIC_CRYPTO) == 0) {
      cleanup();
      return fail(Errc::kUnsupported, "cryptodev: engine has no symmetric crypto");
    }
    if (info.max_nb_queue_pairs < queues) {
      VIOPOOL_LOG_ERROR(
          "cryptodev has too few queue pairs {} want={} have={} (raise "
          "max_nb_queue_pairs in devargs)",
          o_.log_id, queues, info.max_nb_queue_pairs);
      cleanup();
      return fail(Errc::kResourceExhausted, "cryptodev: fewer queue pairs than data queues");
    }
    oop_ = (info.feature_flags & RTE_CRYPTODEV_FF_OOP_LB_IN_LB_OUT) != 0;
    cpu_crypto_ = o_.cpu_crypto && (info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) != 0;
    read_capabilities(info);
    caps_.max_queues = info.max_nb_queue_pairs;

    const int socket = rte_cryptodev_socket_id(dev_) < 0 ? 0 : rte_cryptodev_socket_id(dev_);
    rte_cryptodev_config conf{};
    conf.socket_id = socket;
    conf.nb_queue_pairs = queues;
    conf.ff_disable = RTE_CRYPTODEV_FF_ASYMMETRIC_CRYPTO | RTE_CRYPTODEV_FF_SECURITY;
    if (rte_cryptodev_configure(dev_, &conf) != 0) {
      cleanup();
      return fail(Errc::kIo, "cryptodev: configure failed");
    }
    const std::string tag = std::to_string(dev_);
    sess_pool_ = rte_cryptodev_sym_session_pool_create(
        ("vp_csess" + tag).c_str(), max_sessions + 1,
        rte_cryptodev_sym_get_private_session_size(dev_), 0, 0, socket);
    const std::uint32_t nops = queues * o_.queue_depth * 2 + 256;
    op_pool_ = rte_crypto_op_pool_create(("vp_cops" + tag).c_str(), RTE_CRYPTO_OP_TYPE_SYMMETRIC,
                                         nops, 64, sizeof(OpPriv), socket);
    mbuf_pool_ = rte_pktmbuf_pool_create(("vp_cmbuf" + tag).c_str(), nops * 2, 64, 0, 0, socket);
    if (sess_pool_ == nullptr || op_pool_ == nullptr || mbuf_pool_ == nullptr) {
      cleanup();
      return fail(Errc::kResourceExhausted, "cryptodev: cannot create pools (EAL memory?)");
    }
    configured_ = true;
    for (std::uint16_t q = 0; q < queues; ++q) {
      rte_cryptodev_qp_conf qc{};
      qc.nb_descriptors = o_.queue_depth;
      qc.mp_session = sess_pool_;
      if (rte_cryptodev_queue_pair_setup(dev_, q, &qc, socket) != 0) {
        cleanup();
        return fail(Errc::kIo, "cryptodev: queue pair setup failed");
      }
    }
    if (rte_cryptodev_start(dev_) != 0) {
      cleanup();
      return fail(Errc::kIo, "cryptodev: start failed");
    }
    started_ = true;
    queues_.resize(queues);
    for (auto& qs : queues_) {
      qs.staging.assign(kStagingBuffers, std::vector<std::uint8_t>(kStagingBytes));
      if (cpu_crypto_) {
        qs.cpu_aad.assign(std::size_t{kMaxSubmit} * kMaxAadBytes, 0);
        qs.cpu_digest.assign(std::size_t{kMaxSubmit} * kMaxDigestBytes, 0);
      }
      qs.free_staging.clear();
      for (std::uint32_t i = 0; i < kStagingBuffers; ++i) {
        qs.free_staging.push_back(static_cast<std::int32_t>(i));
      }
    }
    VIOPOOL_LOG_INFO(
        "cryptodev ready {} name={} driver={} queue_pairs={} depth={} oop={} cpu_crypto={}",
        o_.log_id, devname, driver_, queues, o_.queue_depth, oop_, cpu_crypto_);
    return {};
  }

  void stop() noexcept override { cleanup(); }

  Result<BackendSession> create_session(const SessionParams& p) noexcept override {
    rte_crypto_sym_xform cipher{};
    rte_crypto_sym_xform auth{};
    rte_crypto_sym_xform aead{};
    rte_crypto_sym_xform* first = nullptr;
    if (p.kind == SessionKind::kCipher || p.kind == SessionKind::kChain) {
      cipher.type = RTE_CRYPTO_SYM_XFORM_CIPHER;
      cipher.cipher.op = p.encrypt ? RTE_CRYPTO_CIPHER_OP_ENCRYPT : RTE_CRYPTO_CIPHER_OP_DECRYPT;
      if (!map_cipher(p.cipher_algo, cipher.cipher.algo)) {
        return fail(Errc::kUnsupported, "cipher algorithm has no DPDK form");
      }
      cipher.cipher.key.data = p.key.data();
      cipher.cipher.key.length = static_cast<std::uint16_t>(p.key_len);
      cipher.cipher.iv.offset = kIvOffset;
      cipher.cipher.iv.length = static_cast<std::uint16_t>(p.iv_len);
      first = &cipher;
    }
    if (p.kind == SessionKind::kHash || p.kind == SessionKind::kMac ||
        p.kind == SessionKind::kChain) {
      auth.type = RTE_CRYPTO_SYM_XFORM_AUTH;
      auth.auth.op = RTE_CRYPTO_AUTH_OP_GENERATE;  // virtio always returns the hash
      if (!map_auth(p.auth_algo, p.auth_is_mac, auth.auth.algo)) {
        return fail(Errc::kUnsupported, "hash algorithm has no DPDK form");
      }
      if (p.auth_is_mac) {
        auth.auth.key.data = p.auth_key.data();
        auth.auth.key.length = static_cast<std::uint16_t>(p.auth_key_len);
      }
      auth.auth.digest_length = static_cast<std::uint16_t>(p.digest_len);
      if (first == nullptr) {
        first = &auth;
      } else if (p.cipher_first) {
        cipher.next = &auth;
      } else {
        auth.next = &cipher;
        first = &auth;
      }
    }
    if (p.kind == SessionKind::kAead) {
      aead.type = RTE_CRYPTO_SYM_XFORM_AEAD;
      aead.aead.op = p.encrypt ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT;
      if (!map_aead(p.aead_algo, aead.aead.algo)) {
        return fail(Errc::kUnsupported, "AEAD algorithm has no DPDK form");
      }
      aead.aead.key.data = p.key.data();
      aead.aead.key.length = static_cast<std::uint16_t>(p.key_len);
      aead.aead.iv.offset = kIvOffset;
      aead.aead.iv.length = static_cast<std::uint16_t>(p.iv_len);
      aead.aead.digest_length = static_cast<std::uint16_t>(p.digest_len);
      aead.aead.aad_length = static_cast<std::uint16_t>(p.aad_len);
      first = &aead;
    }
    if (first == nullptr) {
      return fail(Errc::kUnsupported, "empty session");
    }
    void* s = rte_cryptodev_sym_session_create(dev_, first, sess_pool_);
    if (s == nullptr) {
      // rte_errno: ENOMEM when the pool is empty, ENOTSUP / EINVAL for a
      // combination the engine refuses.
      if (rte_errno == ENOMEM) {
        return fail(Errc::kResourceExhausted, "cryptodev: session pool exhausted");
      }
      return fail(Errc::kUnsupported, "cryptodev: engine refused the session");
    }
    auto* box = new (std::nothrow) Session{s, cpu_crypto_ && cpu_kind(p)};
    if (box == nullptr) {
      rte_cryptodev_sym_session_free(dev_, s);
      return fail(Errc::kResourceExhausted, "cryptodev: out of memory for a session");
    }
    return static_cast<BackendSession>(box);
  }

  void destroy_session(BackendSession s) noexcept override {
    auto* box = static_cast<Session*>(s);
    if (box == nullptr) {
      return;
    }
    if (configured_) {
      rte_cryptodev_sym_session_free(dev_, box->sess);
    }
    delete box;
  }

  // Jobs in order, so that what is taken is a prefix: a run of CPU-path jobs
  // of one session goes to the engine in one call, a run of the others as
  // ops; a run the engine cannot take in full ends the submit.
  std::uint32_t submit(std::uint16_t q, CryptoJob* const* jobs, std::uint32_t n) noexcept override {
    auto& qs = queues_[q];
    n = std::min(n, kMaxSubmit);
    std::uint32_t i = 0;
    while (i < n) {
      std::uint32_t j = i + 1;
      if (cpu_ready(*jobs[i])) {
        if (qs.done_n + 1 > kDoneSlots) {
          break;  // poll() first
        }
        while (j < n && j - i < kDoneSlots - qs.done_n && jobs[j]->session == jobs[i]->session &&
               cpu_ready(*jobs[j])) {
          ++j;
        }
        run_cpu(qs, jobs + i, j - i);
        i = j;
        continue;
      }
      while (j < n && !cpu_ready(*jobs[j])) {
        ++j;
      }
      const std::uint32_t k = submit_ops(q, qs, jobs + i, j - i);
      i += k;
      if (i < j) {
        break;
      }
    }
    return i;
  }

  std::uint32_t poll(std::uint16_t q, CryptoCompletion* out, std::uint32_t max) noexcept override {
    auto& qs = queues_[q];
    std::uint32_t got = 0;
    while (got < max && qs.done_n > 0) {
      out[got++] = qs.done[qs.done_head];
      qs.done_head = (qs.done_head + 1) % kDoneSlots;
      --qs.done_n;
    }
    return got + poll_ops(qs, q, out + got, max - got);
  }

  void counters(std::vector<std::pair<const char*, std::uint64_t>>& out) const override {
    out.emplace_back("cpu_ops", cpu_ops_.load(std::memory_order_relaxed));
    out.emplace_back("queue_pair_ops", queue_pair_ops_.load(std::memory_order_relaxed));
  }

  std::uint32_t in_flight(std::uint16_t q) const noexcept override {
    return q < queues_.size() ? queues_[q].in_flight + queues_[q].done_n : 0;
  }

 private:
  struct QueueState {
    std::vector<std::vector<std::uint8_t>> staging;
    std::vector<std::int32_t> free_staging;
    std::uint32_t in_flight = 0;  // ops in the engine
    // CPU path: finished jobs not yet polled (a ring), and per-job room for
    // an AAD or digest that is not one guest buffer.
    std::array<CryptoCompletion, kDoneSlots> done{};
    std::uint32_t done_head = 0;
    std::uint32_t done_n = 0;
    std::vector<std::uint8_t> cpu_aad;
    std::vector<std::uint8_t> cpu_digest;
  };

  // Sessions whose jobs the CPU path can carry on the engines that have it.
  static bool cpu_kind(const SessionParams& p) noexcept {
    if (p.kind == SessionKind::kCipher) {
      return p.cipher_algo == kCipherAesCbc || p.cipher_algo == kCipherAesCtr;
    }
    return p.kind == SessionKind::kAead && p.aead_algo == kAeadGcm;
  }

  // A job the CPU path takes: its session's kind, data that is one buffer
  // on each side, and short enough that copying src into dst costs less
  // than an op and its mbufs (beyond, the copy and the in-place pass read
  // and write the data twice where the op path does it once), unless the
  // guest already works in place.
  static bool cpu_ready(const CryptoJob& job) noexcept {
    return static_cast<const Session*>(job.session)->cpu && job.src.n == 1 && job.dst.n == 1 &&
           job.src.bytes >= job.data_len && job.dst.bytes >= job.data_len &&
           (job.data_len <= kCpuCopyMax || job.src.v[0].iov_base == job.dst.v[0].iov_base);
  }

  // Runs `m` CPU-path jobs of one session and queues their completions.
  void run_cpu(QueueState& qs, CryptoJob* const* jobs, std::uint32_t m) noexcept {
    rte_crypto_vec data[kMaxSubmit];
    rte_crypto_sgl sgl[kMaxSubmit];
    rte_crypto_va_iova_ptr iv[kMaxSubmit];
    rte_crypto_va_iova_ptr aad[kMaxSubmit];
    rte_crypto_va_iova_ptr digest[kMaxSubmit];
    std::int32_t status[kMaxSubmit];
    const bool va = rte_eal_iova_mode() == RTE_IOVA_VA;
    for (std::uint32_t k = 0; k < m; ++k) {
      CryptoJob& job = *jobs[k];
      auto* src = static_cast<std::uint8_t*>(job.src.v[0].iov_base);
      auto* dst = static_cast<std::uint8_t*>(job.dst.v[0].iov_base);
      if (src != dst) {
        std::memmove(dst, src, job.data_len);  // the guest may hand overlapping buffers
      }
      data[k] = rte_crypto_vec{dst, va ? reinterpret_cast<rte_iova_t>(dst) : RTE_BAD_IOVA,
                               job.data_len, job.data_len};
      sgl[k] = rte_crypto_sgl{&data[k], 1};
      iv[k] = rte_crypto_va_iova_ptr{job.iv.data(), RTE_BAD_IOVA};
      std::uint8_t* a = single(job.aad);
      if (a == nullptr) {
        a = qs.cpu_aad.data() + std::size_t{k} * kMaxAadBytes;
        gather(job.aad, a);
      }
      aad[k] = rte_crypto_va_iova_ptr{a, RTE_BAD_IOVA};
      std::uint8_t* d = single(job.digest);
      if (d == nullptr) {
        d = qs.cpu_digest.data() + std::size_t{k} * kMaxDigestBytes;
        if (digest_is_input(job)) {
          gather(job.digest, d);  // tag to verify
        }
      }
      digest[k] = rte_crypto_va_iova_ptr{d, RTE_BAD_IOVA};
      // The engine sets each status it processes; one it gives up on before
      // (no per-thread manager, say) must not read as success.
      status[k] = EINPROGRESS;
    }
    rte_crypto_sym_vec vec{};
    vec.num = m;
    vec.src_sgl = sgl;
    vec.dest_sgl = nullptr;  // in place
    vec.iv = iv;
    vec.digest = digest;
    vec.aad = aad;
    vec.status = status;
    rte_crypto_sym_ofs ofs{};
    rte_cryptodev_sym_cpu_crypto_process(dev_, static_cast<Session*>(jobs[0]->session)->sess, ofs,
                                         &vec);
    cpu_ops_.fetch_add(m, std::memory_order_relaxed);
    for (std::uint32_t k = 0; k < m; ++k) {
      CryptoJob& job = *jobs[k];
      std::uint8_t st = kStatusOk;
      // aesni_mb reports any failed job as EBADMSG: only a tag to verify
      // makes it a bad message rather than an engine error.
      if (status[k] == EBADMSG && digest_is_input(job)) {
        st = kStatusBadMsg;
      } else if (status[k] != 0) {
        st = kStatusErr;
      } else if (job.digest.n > 1 && !digest_is_input(job)) {
        scatter(static_cast<std::uint8_t*>(digest[k].va), job.digest);
      }
      qs.done[(qs.done_head + qs.done_n) % kDoneSlots] = CryptoCompletion{job.cookie, st};
      ++qs.done_n;
    }
  }

  // The op path: up to n jobs as rte_crypto_ops; how many the engine took.
  std::uint32_t submit_ops(std::uint16_t q, QueueState& qs, CryptoJob* const* jobs,
                           std::uint32_t n) noexcept {
    rte_crypto_op* ops[kMaxSubmit];
    if (n == 0) {
      return 0;
    }
    if (rte_crypto_op_bulk_alloc(op_pool_, RTE_CRYPTO_OP_TYPE_SYMMETRIC, ops, n) == 0) {
      return 0;  // pool dry: the device retries later
    }
    std::uint32_t built = 0;
    for (; built < n; ++built) {
      if (!build(qs, ops[built], *jobs[built])) {
        break;
      }
    }
    const std::uint16_t k =
        built ? rte_cryptodev_enqueue_burst(dev_, q, ops, static_cast<std::uint16_t>(built)) : 0;
    for (std::uint32_t i = k; i < built; ++i) {
      release(qs, ops[i]);
    }
    for (std::uint32_t i = built; i < n; ++i) {
      rte_crypto_op_free(ops[i]);
    }
    qs.in_flight += k;
    queue_pair_ops_.fetch_add(k, std::memory_order_relaxed);
    return k;
  }

  std::uint32_t poll_ops(QueueState& qs, std::uint16_t q, CryptoCompletion* out,
                         std::uint32_t max) noexcept {
    if (qs.in_flight == 0 || max == 0) {
      return 0;
    }
    rte_crypto_op* ops[kMaxSubmit];
    const std::uint16_t n = rte_cryptodev_dequeue_burst(
        dev_, q, ops, static_cast<std::uint16_t>(std::min(max, kMaxSubmit)));
    for (std::uint16_t i = 0; i < n; ++i) {
      OpPriv* pv = priv_of(ops[i]);
      CryptoJob& job = *pv->job;
      std::uint8_t status = kStatusOk;
      switch (ops[i]->status) {
        case RTE_CRYPTO_OP_STATUS_SUCCESS:
          break;
        case RTE_CRYPTO_OP_STATUS_AUTH_FAILED:
          status = kStatusBadMsg;
          break;
        default:
          status = kStatusErr;
          break;
      }
      if (status == kStatusOk) {
        if (pv->dst_copy_out) {
          scatter(qs.staging[static_cast<std::size_t>(pv->staging)].data(), job.dst);
        }
        if (pv->digest_copy_out) {
          scatter(pv->digest, job.digest);
        }
      }
      out[i] = CryptoCompletion{job.cookie, status};
      release(qs, ops[i]);
    }
    qs.in_flight -= n;
    return n;
  }

  static bool map_cipher(std::uint32_t v, rte_crypto_cipher_algorithm& out) noexcept {
    for (const auto& m : kCiphers) {
      if (m.virtio == v) {
        out = m.dpdk;
        return true;
      }
    }
    return false;
  }
  static bool map_auth(std::uint32_t v, bool mac, rte_crypto_auth_algorithm& out) noexcept {
    for (const auto& m : kAuths) {
      if (m.virtio == v && m.mac == mac) {
        out = m.dpdk;
        return true;
      }
    }
    return false;
  }
  static bool map_aead(std::uint32_t v, rte_crypto_aead_algorithm& out) noexcept {
    for (const auto& m : kAeads) {
      if (m.virtio == v) {
        out = m.dpdk;
        return true;
      }
    }
    return false;
  }

  void read_capabilities(const rte_cryptodev_info& info) noexcept {
    caps_ = CryptoCapabilities{};
    for (const auto* c = info.capabilities; c && c->op != RTE_CRYPTO_OP_TYPE_UNDEFINED; ++c) {
      if (c->op != RTE_CRYPTO_OP_TYPE_SYMMETRIC) {
        continue;
      }
      const auto& s = c->sym;
      if (s.xform_type == RTE_CRYPTO_SYM_XFORM_CIPHER) {
        for (const auto& m : kCiphers) {
          if (m.dpdk == s.cipher.algo) {
            AlgoCaps a;
            a.key = range(s.cipher.key_size);
            a.iv = range(s.cipher.iv_size);
            // Only the block modes need whole blocks (CTR and XTS do not).
            a.block_size =
                (m.virtio == kCipherAesCbc || m.virtio == kCipherAesEcb) ? s.cipher.block_size : 1;
            caps_.cipher[m.virtio] = a;
          }
        }
      } else if (s.xform_type == RTE_CRYPTO_SYM_XFORM_AUTH) {
        for (const auto& m : kAuths) {
          if (m.dpdk == s.auth.algo) {
            AlgoCaps a;
            a.key = range(s.auth.key_size);
            a.digest = range(s.auth.digest_size);
            (m.mac ? caps_.mac : caps_.hash)[m.virtio] = a;
          }
        }
      } else if (s.xform_type == RTE_CRYPTO_SYM_XFORM_AEAD) {
        for (const auto& m : kAeads) {
          if (m.dpdk == s.aead.algo) {
            AlgoCaps a;
            a.key = range(s.aead.key_size);
            a.digest = range(s.aead.digest_size);
            a.aad = range(s.aead.aad_size);
            a.iv = range(s.aead.iv_size);
            caps_.aead[m.virtio] = a;
          }
        }
      }
    }
  }

  // An mbuf whose data is [ptr, ptr + len) of memory we do not own.
  rte_mbuf* wrap(void* ptr, std::uint32_t len, rte_mbuf_ext_shared_info* shinfo) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(mbuf_pool_);
    if (m == nullptr) {
      return nullptr;
    }
    shinfo->free_cb = no_free;
    shinfo->fcb_opaque = nullptr;
    rte_mbuf_ext_refcnt_set(shinfo, 1);
    // Software engines address data by virtual address; the IOVA matters only
    // to hardware, which needs guest memory registered (VA mode).
    const rte_iova_t iova =
        rte_eal_iova_mode() == RTE_IOVA_VA ? reinterpret_cast<rte_iova_t>(ptr) : RTE_BAD_IOVA;
    rte_pktmbuf_attach_extbuf(m, ptr, iova, static_cast<std::uint16_t>(len), shinfo);
    m->data_off = 0;
    m->data_len = static_cast<std::uint16_t>(len);
    m->pkt_len = len;
    return m;
  }

  // Contiguous view of a field: its only buffer, or nullptr if it has several.
  static std::uint8_t* single(const Iovs& v) noexcept {
    return v.n == 1 ? static_cast<std::uint8_t*>(v.v[0].iov_base) : nullptr;
  }

  bool take_staging(QueueState& qs, OpPriv* pv) noexcept {
    if (qs.free_staging.empty()) {
      return false;
    }
    pv->staging = qs.free_staging.back();
    qs.free_staging.pop_back();
    return true;
  }

  // Fills `op` for `job`. False when a resource ran out (retry later).
  bool build(QueueState& qs, rte_crypto_op* op, CryptoJob& job) noexcept {
    OpPriv* pv = priv_of(op);
    pv->job = &job;
    pv->staging = -1;
    pv->digest_copy_out = false;
    pv->dst_copy_out = false;
    std::memcpy(pv->iv, job.iv.data(), job.iv_len);
    rte_crypto_sym_op* sym = sym_of(op);
    sym->m_src = nullptr;
    sym->m_dst = nullptr;
    rte_crypto_op_attach_sym_session(op, static_cast<Session*>(job.session)->sess);

    const bool has_out = job.kind != SessionKind::kHash && job.kind != SessionKind::kMac;
    // In place (in dst, after copying src there) for chains and engines
    // without out-of-place; out of place straight from src to dst otherwise.
    const bool in_place = has_out && (!oop_ || job.kind == SessionKind::kChain);
    std::uint8_t* src = single(job.src);
    std::uint8_t* dst = has_out ? single(job.dst) : nullptr;
    const std::uint32_t len = job.src.bytes;
    if (has_out && dst == nullptr && job.dst.bytes > 0) {
      // dst spread over several buffers: work in a staging buffer, scatter on completion.
      if (!take_staging(qs, pv)) {
        return false;
      }
      dst = qs.staging[static_cast<std::size_t>(pv->staging)].data();
      pv->dst_copy_out = true;
    }
    if (in_place) {
      gather(job.src, dst);
      sym->m_src = wrap(dst, len, &pv->shinfo_src);
    } else {
      if (src == nullptr && len > 0) {
        if (pv->staging >= 0) {
          // dst already uses the staging buffer: work in place there.
          gather(job.src, dst);
          sym->m_src = wrap(dst, len, &pv->shinfo_src);
          dst = nullptr;
        } else {
          if (!take_staging(qs, pv)) {
            return false;
          }
          src = qs.staging[static_cast<std::size_t>(pv->staging)].data();
          gather(job.src, src);
        }
      }
      if (sym->m_src == nullptr) {
        // A zero-length message still needs a valid address.
        sym->m_src = wrap(len ? src : pv->aad, len, &pv->shinfo_src);
        if (has_out && dst != nullptr && sym->m_src != nullptr) {
          sym->m_dst = wrap(dst, job.dst.bytes, &pv->shinfo_dst);
          if (sym->m_dst == nullptr) {
            return release_partial(qs, op);
          }
        }
      }
    }
    if (sym->m_src == nullptr) {
      return release_partial(qs, op);
    }

    // The digest (hash result, AEAD tag): straight into / out of guest memory
    // when it is one buffer, else through the op's private area.
    std::uint8_t* digest = single(job.digest);
    if (digest == nullptr && job.digest.bytes > 0) {
      digest = pv->digest;
      if (digest_is_input(job)) {
        gather(job.digest, digest);  // tag to verify
      } else {
        pv->digest_copy_out = true;
      }
    }
    const rte_iova_t no_iova = RTE_BAD_IOVA;
    switch (job.kind) {
      case SessionKind::kCipher:
        sym->cipher.data.offset = 0;
        sym->cipher.data.length = job.data_len;
        break;
      case SessionKind::kHash:
      case SessionKind::kMac:
        sym->auth.data.offset = 0;
        sym->auth.data.length = job.data_len;
        sym->auth.digest.data = digest;
        sym->auth.digest.phys_addr = no_iova;
        break;
      case SessionKind::kChain:
        sym->cipher.data.offset = job.cipher_offset;
        sym->cipher.data.length = job.cipher_len;
        sym->auth.data.offset = job.auth_offset;
        sym->auth.data.length = job.auth_len;
        sym->auth.digest.data = digest;
        sym->auth.digest.phys_addr = no_iova;
        break;
      case SessionKind::kAead: {
        sym->aead.data.offset = 0;
        sym->aead.data.length = job.data_len;
        std::uint8_t* aad = single(job.aad);
        if (aad == nullptr) {
          aad = pv->aad;
          gather(job.aad, aad);
        }
        sym->aead.aad.data = aad;
        sym->aead.aad.phys_addr = no_iova;
        sym->aead.digest.data = digest;
        sym->aead.digest.phys_addr = no_iova;
        break;
      }
    }
    return true;
  }

  bool release_partial(QueueState& qs, rte_crypto_op* op) noexcept {
    OpPriv* pv = priv_of(op);
    rte_crypto_sym_op* sym = sym_of(op);
    rte_pktmbuf_free(sym->m_src);
    rte_pktmbuf_free(sym->m_dst);
    sym->m_src = nullptr;
    sym->m_dst = nullptr;
    if (pv->staging >= 0) {
      qs.free_staging.push_back(pv->staging);
      pv->staging = -1;
    }
    return false;
  }

  void release(QueueState& qs, rte_crypto_op* op) noexcept {
    release_partial(qs, op);
    rte_crypto_op_free(op);
  }

  void cleanup() noexcept {
    if (started_) {
      rte_cryptodev_stop(dev_);
      started_ = false;
    }
    if (configured_ || probed_) {
      rte_cryptodev_close(dev_);
      configured_ = false;
    }
    if (probed_) {
      rte_devargs da{};
      if (rte_devargs_parse(&da, o_.devargs.c_str()) == 0) {
        rte_eal_hotplug_remove(rte_bus_name(da.bus), da.name);
        rte_devargs_reset(&da);
      }
      probed_ = false;
    }
    rte_mempool_free(mbuf_pool_);
    rte_mempool_free(op_pool_);
    rte_mempool_free(sess_pool_);
    mbuf_pool_ = op_pool_ = sess_pool_ = nullptr;
    queues_.clear();
  }

  CryptodevBackendOptions o_;
  std::string driver_;
  std::uint8_t dev_ = 0;
  bool probed_ = false;
  bool configured_ = false;
  bool started_ = false;
  bool oop_ = false;
  bool cpu_crypto_ = false;
  // Ops each path took, all queues (one relaxed add per burst).
  std::atomic<std::uint64_t> cpu_ops_{0};
  std::atomic<std::uint64_t> queue_pair_ops_{0};
  CryptoCapabilities caps_;
  rte_mempool* sess_pool_ = nullptr;
  rte_mempool* op_pool_ = nullptr;
  rte_mempool* mbuf_pool_ = nullptr;
  std::vector<QueueState> queues_;
};

}  // namespace

std::unique_ptr<CryptoBackend> make_cryptodev_backend(CryptodevBackendOptions o) {
  return std::make_unique<CryptodevBackend>(std::move(o));
}

}  // namespace viopool::crypto
