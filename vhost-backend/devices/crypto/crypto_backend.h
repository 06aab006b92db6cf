// CryptoBackend: where a virtio-crypto device's sessions and symmetric ops go.
// The local implementation (cryptodev_backend.h) drives a DPDK cryptodev; the
// pooled one carries the same calls over the fabric. Everything here is in
// virtio terms (algorithm numbers of virtio_crypto.h): no DPDK types leak into
// the device. Data moves through iovecs pointing into guest memory; a backend
// copies only where its engine cannot take the layout (see cryptodev_backend.h).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vhost-backend/base/result.h"
#include "vhost-backend/devices/crypto/virtio_crypto.h"

namespace viopool::crypto {

// A set of sizes in bytes: min..max in steps of inc (inc 0: only min).
struct SizeRange {
  std::uint16_t min = 0;
  std::uint16_t max = 0;
  std::uint16_t inc = 0;
  bool contains(std::uint32_t v) const noexcept {
    if (v < min || v > max) {
      return false;
    }
    if (inc == 0) {
      return v == min;
    }
    return (v - min) % inc == 0;
  }
};

// What an engine does with one algorithm.
struct AlgoCaps {
  SizeRange key;                 // cipher / AEAD / MAC key
  SizeRange digest;              // hash, MAC or AEAD tag
  SizeRange iv;                  // cipher / AEAD IV
  SizeRange aad;                 // AEAD only
  std::uint16_t block_size = 1;  // data length multiple for block modes (CBC, ECB)
};

// Capabilities in virtio numbering; an algorithm the engine lacks is nullopt.
struct CryptoCapabilities {
  static constexpr std::size_t kAlgos = 64;
  std::array<std::optional<AlgoCaps>, kAlgos> cipher{};
  std::array<std::optional<AlgoCaps>, kAlgos> hash{};
  std::array<std::optional<AlgoCaps>, kAlgos> mac{};
  std::array<std::optional<AlgoCaps>, kAlgos> aead{};
  std::uint16_t max_queues = 1;  // queue pairs the engine gives one device
};

enum class SessionKind : std::uint8_t { kCipher, kHash, kMac, kChain, kAead };
const char* to_string(SessionKind k) noexcept;

inline constexpr std::uint32_t kMaxKeyBytes = 64;       // cipher / AEAD key (AES-256-XTS)
inline constexpr std::uint32_t kMaxAuthKeyBytes = 128;  // HMAC key (one SHA-512 block)
inline constexpr std::uint32_t kMaxIvBytes = 16;
inline constexpr std::uint32_t kMaxDigestBytes = 64;
inline constexpr std::uint32_t kMaxAadBytes = 256;

// The IV length virtio requests carry for an algorithm: the AES block for
// the AES modes, the 96-bit nonce for GCM and ChaCha20-Poly1305; 0 if none.
std::uint32_t cipher_iv_len(std::uint32_t cipher_algo) noexcept;
std::uint32_t aead_iv_len(std::uint32_t aead_algo) noexcept;

// A session as the guest asked for it, validated against the capabilities.
struct SessionParams {
  SessionKind kind = SessionKind::kCipher;
  // Cipher (kCipher, kChain) or AEAD (kAead).
  std::uint32_t cipher_algo = kCipherNone;  // kCipher* (kChain, kCipher)
  std::uint32_t aead_algo = kAeadNone;      // kAead* (kAead)
  bool encrypt = true;
  std::uint32_t iv_len = 0;  // what every request of the session carries
  std::array<std::uint8_t, kMaxKeyBytes> key{};
  std::uint32_t key_len = 0;
  // Hash or MAC (kHash, kMac, kChain). auth_is_mac: auth_algo is a kMac*
  // number and auth_key is used; else a kHash* number.
  std::uint32_t auth_algo = 0;
  bool auth_is_mac = false;
  std::array<std::uint8_t, kMaxAuthKeyBytes> auth_key{};
  std::uint32_t auth_key_len = 0;
  std::uint32_t digest_len = 0;  // hash result / tag length
  std::uint32_t aad_len = 0;     // kAead (and kChain, unused by engines we know)
  bool cipher_first = true;      // kChain: CIPHER_THEN_HASH (else HASH_THEN_CIPHER)

  // Zeroes both keys: for copies kept once the engine session exists.
  void wipe_keys() noexcept {
    key.fill(0);
    auth_key.fill(0);
  }
};

// Opaque per-session state of a backend.
using BackendSession = void*;

// Data segments of one field of a request. 16 covers any guest that keeps a
// field in one or two buffers per page of a 64 KiB request.
inline constexpr std::uint32_t kMaxFieldSegs = 16;
struct Iovs {
  std::array<iovec, kMaxFieldSegs> v{};
  std::uint32_t n = 0;
  std::uint32_t bytes = 0;
};

// One symmetric operation, owned by the device until its completion returns.
// For kChain, src is copied by the backend into dst when its engine works in
// place; offsets are relative to the start of src (= of dst).
struct CryptoJob {
  BackendSession session = nullptr;
  SessionKind kind = SessionKind::kCipher;
  bool encrypt = true;
  std::array<std::uint8_t, kMaxIvBytes> iv{};
  std::uint32_t iv_len = 0;
  Iovs src;     // device-readable input
  Iovs dst;     // device-writable output (cipher, chain, AEAD); same length as src
                // except AEAD (± tag)
  Iovs aad;     // AEAD / chain additional data (readable)
  Iovs digest;  // writable hash result (hash, MAC, chain) or AEAD encrypt tag;
                // AEAD decrypt: readable tag to verify
  std::uint32_t cipher_offset = 0;
  std::uint32_t cipher_len = 0;
  std::uint32_t auth_offset = 0;
  std::uint32_t auth_len = 0;
  std::uint32_t data_len = 0;  // bytes processed (cipher/AEAD payload, or hashed)
  void* cookie = nullptr;
};

// AEAD decryption reads its digest (the tag to verify); every other job
// writes it.
inline bool digest_is_input(const CryptoJob& j) noexcept {
  return j.kind == SessionKind::kAead && !j.encrypt;
}

struct CryptoCompletion {
  void* cookie = nullptr;
  std::uint8_t status = kStatusOk;  // virtio status: OK, BADMSG (tag mismatch), ERR
};

class CryptoBackend {
 public:
  virtual ~CryptoBackend() = default;

  // "cryptodev:crypto_aesni_mb" and the like.
  virtual std::string name() const = 0;
  // Control thread, once: prepares `queues` queue pairs and `max_sessions`
  // sessions. Capabilities are valid afterwards.
  virtual Result<void> start(std::uint16_t queues, std::uint32_t max_sessions) = 0;
  // Control thread, after every submitted job completed. Idempotent.
  virtual void stop() noexcept = 0;
  virtual const CryptoCapabilities& capabilities() const noexcept = 0;

  // Any thread (serialised by the caller). kUnsupported if the engine refuses
  // the combination, kResourceExhausted when out of session memory.
  virtual Result<BackendSession> create_session(const SessionParams& p) noexcept = 0;
  // Any thread, once no job of the session is in flight.
  virtual void destroy_session(BackendSession s) noexcept = 0;

  // Polling thread of queue q. Accepts up to n jobs; returns how many (the
  // rest are offered again later). Never blocks.
  virtual std::uint32_t submit(std::uint16_t q, CryptoJob* const* jobs,
                               std::uint32_t n) noexcept = 0;
  // Polling thread of queue q. Up to max completions; never blocks.
  virtual std::uint32_t poll(std::uint16_t q, CryptoCompletion* out,
                             std::uint32_t max) noexcept = 0;
  virtual std::uint32_t in_flight(std::uint16_t q) const noexcept = 0;

  // An engine whose completions arrive from afar (a pooled slot) gives a
  // descriptor that becomes readable when poll(q) may have something, so an
  // idle poller can sleep on it: prepare_sleep(q) (polling thread, right
  // before sleeping) returns false if completions are already waiting. -1:
  // none (local engines complete within submit or soon after: poll again).
  virtual int completion_fd(std::uint16_t) const noexcept { return -1; }
  virtual bool prepare_sleep(std::uint16_t) noexcept { return false; }
  // Polling thread: queue q has work of its own with no op in flight (a
  // pooled slot's delayed fabric ack): an idle poller sleeps on
  // completion_fd(q) after prepare_sleep(q) all the same.
  virtual bool needs_service(std::uint16_t) const noexcept { return false; }
  // True for engines reached over a network: spinning on them only takes the
  // CPU from whoever answers.
  virtual bool remote() const noexcept { return false; }
  // Any thread: the mechanism's own counters, by name, for device_stats.
  // Approximate while queues run.
  virtual void counters(std::vector<std::pair<const char*, std::uint64_t>>& out) const {
    (void)out;
  }
};

}  // namespace viopool::crypto
