// A virtio-crypto driver over vhost-user, for component tests and benchmarks
// of vhost-user crypto backends (viopool-host's crypto devices): the config
// space, sessions on the control queue (synchronous), symmetric operations on
// N data queues (asynchronous, as BlkDriver's requests), and raw requests for
// malformed-input tests. The wire format is devices/crypto/virtio_crypto.h
// (without VIRTIO_CRYPTO_F_REVISION_1); the vhost-user set-up is
// virtio_driver_session.h's, shared with blk_driver.h.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "integration/frontend/slot_driver.h"
#include "integration/frontend/vhost_user_frontend.h"
#include "integration/frontend/virtio_driver_session.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/devices/crypto/virtio_crypto.h"
#include "vhost-backend/virtio/features.h"

namespace viopool::frontend {

// ---- virtio-crypto (virtio 1.2, 5.9), driver's view ----
// Completion status (VIRTIO_CRYPTO_*). kCryptoStatusNone is ours: the device
// completed the request without writing a status.
inline constexpr std::uint8_t kCryptoStatusNone = 0xff;
// VIRTIO_CRYPTO_KEY_REJECTED (akcipher signature checks); not in virtio_crypto.h.
inline constexpr std::uint8_t kCryptoStatusKeyRejected = 6;
// "OK", "ERR", "BADMSG", "NOTSUPP", "INVSESS", "NOSPC", "KEY_REJECTED",
// "NONE" (kCryptoStatusNone) or "INVALID". Ours, so that the frontend does not
// link the device library (crypto::status_name is the device's).
const char* crypto_status_name(std::uint8_t status) noexcept;
// Names of services ("CIPHER"...), algorithms ("AES_CBC", "SHA_256",
// "HMAC_SHA_256", "GCM"...), opcodes ("CIPHER_ENCRYPT", "AEAD_CREATE_SESSION"...)
// and feature bits ("REVISION_1", then the transport's); nullptr if unknown.
const char* crypto_service_name(std::uint32_t service) noexcept;
const char* crypto_cipher_name(std::uint32_t algo) noexcept;
const char* crypto_hash_name(std::uint32_t algo) noexcept;
const char* crypto_mac_name(std::uint32_t algo) noexcept;
const char* crypto_aead_name(std::uint32_t algo) noexcept;
const char* crypto_opcode_name(std::uint32_t opcode) noexcept;
const char* crypto_feature_name(unsigned bit) noexcept;

// Config space bytes we read: all of struct virtio_crypto_config.
inline constexpr std::uint32_t kCryptoConfigBytes = sizeof(crypto::Config);

// The config space, decoded, with the algorithm masks as predicates.
struct CryptoConfig : crypto::Config {
  bool hw_ready() const noexcept { return (status & crypto::kConfigStatusHwReady) != 0; }
  bool has_service(std::uint32_t service) const noexcept;
  bool has_cipher(std::uint32_t algo) const noexcept;  // cipher_algo_l / _h
  bool has_hash(std::uint32_t algo) const noexcept;
  bool has_mac(std::uint32_t algo) const noexcept;  // mac_algo_l / _h
  bool has_aead(std::uint32_t algo) const noexcept;
};
// Decodes a little-endian config space of kCryptoConfigBytes (missing bytes read as 0).
CryptoConfig parse_crypto_config(std::span<const std::byte> raw) noexcept;

// Bounds of what a request slot holds (see crypto_driver.cc for the layout).
inline constexpr std::uint32_t kCryptoMaxHeaderBytes = 128;     // submit_raw() header
inline constexpr std::uint32_t kCryptoMaxIvBytes = 64;          // spec IVs are <= 16
inline constexpr std::uint32_t kCryptoMaxHashResultBytes = 64;  // SHA-512
inline constexpr std::uint32_t kCryptoMaxAadBytes = 512;
// Descriptors one request may have (header, fields, data segments, status).
inline constexpr std::size_t kCryptoMaxChain = 64;

// Typed boolean: what to do with the data rings the driver does not use
// (num_queues..max_dataqueues-1).
enum class IdleRings : bool { kSkip = false, kSetUp = true };

struct CryptoDriverOptions {
  std::string socket_path;
  // Data queues to drive (vrings 0..num_queues-1); at most config.max_dataqueues
  // and, with the MQ protocol feature, GET_QUEUE_NUM - 1. The control queue
  // is always set up too, at vring index config.max_dataqueues.
  std::uint16_t num_queues = 1;
  // kSetUp also sets up (and enables, but never uses) the data rings between
  // num_queues and the control queue, as Linux's virtio-crypto driver sets up
  // every queue the device has: rte_vhost (DPDK 22.11, virtio_is_ready) starts
  // a device only when every vring below the highest one set up is ready, so
  // with kSkip and num_queues < max_dataqueues a backend built on it never
  // serves the control queue. kSkip sets up exactly 0..num_queues-1 and the
  // control queue (for backends that must cope with the gap).
  IdleRings idle_rings = IdleRings::kSetUp;
  std::uint16_t queue_size = 256;  // every ring, the control queue's included
  ArenaOptions arena;
  FrontendOptions frontend;
  Indirect use_indirect = Indirect::kNo;  // used only if INDIRECT_DESC is negotiated
  // As BlkDriverOptions::ring_layout: kPacked fails connect() with
  // kUnsupported when the backend does not offer VIRTIO_F_RING_PACKED.
  RingLayout ring_layout = RingLayout::kSplit;
  // Feature bits never acked even when offered (e.g. to test without EVENT_IDX).
  virtio::FeatureSet exclude;
};

// ---- Sessions (control queue) ----
enum class CryptoSessionKind : std::uint8_t { kCipher, kHash, kMac, kChain, kAead };

struct CipherSessionParams {
  std::uint32_t algo = crypto::kCipherNone;  // crypto::kCipher*
  std::span<const std::byte> key;            // borrowed for the create_session() call
  std::uint32_t dir = crypto::kDirEncrypt;   // crypto::kDirEncrypt / kDirDecrypt
};
struct HashSessionParams {
  std::uint32_t algo = crypto::kHashNone;  // crypto::kHash*
  std::uint32_t result_len = 0;
};
struct MacSessionParams {
  std::uint32_t algo = crypto::kMacNone;  // crypto::kMac*
  std::uint32_t result_len = 0;
  std::span<const std::byte> key;  // the auth key
};
struct AeadSessionParams {
  std::uint32_t algo = crypto::kAeadNone;  // crypto::kAead*
  std::span<const std::byte> key;
  std::uint32_t tag_len = 16;  // hash_result_len on the wire
  std::uint32_t aad_len = 0;
  std::uint32_t dir = crypto::kDirEncrypt;
};

// What create_session() asks for. Only the parts `kind` names are sent:
// kCipher: cipher; kHash: hash; kMac: mac; kAead: aead; kChain: cipher plus
// hash (chain_hash_mode plain or nested) or mac (auth), chain_order and
// chain_aad_len. Values are sent as given (no validation), so tests can ask
// for what the device must refuse.
struct CryptoSessionSpec {
  CryptoSessionKind kind = CryptoSessionKind::kCipher;
  CipherSessionParams cipher;
  HashSessionParams hash;
  MacSessionParams mac;
  AeadSessionParams aead;
  std::uint32_t chain_order = crypto::kChainCipherThenHash;  // crypto::kChain*
  std::uint32_t chain_hash_mode = crypto::kHashModePlain;    // crypto::kHashMode*
  std::uint32_t chain_aad_len = 0;

  static CryptoSessionSpec make_cipher(std::uint32_t algo, std::span<const std::byte> key,
                                       std::uint32_t dir) noexcept;
  static CryptoSessionSpec make_hash(std::uint32_t algo, std::uint32_t result_len) noexcept;
  static CryptoSessionSpec make_mac(std::uint32_t algo, std::uint32_t result_len,
                                    std::span<const std::byte> key) noexcept;
  static CryptoSessionSpec make_aead(std::uint32_t algo, std::span<const std::byte> key,
                                     std::uint32_t tag_len, std::uint32_t aad_len,
                                     std::uint32_t dir) noexcept;
  // A chain with a plain hash (kHashModePlain).
  static CryptoSessionSpec make_chain(std::uint32_t order, const CipherSessionParams& cipher,
                                      const HashSessionParams& hash,
                                      std::uint32_t aad_len = 0) noexcept;
  // A chain with a MAC (kHashModeAuth): the auth key follows the cipher key.
  static CryptoSessionSpec make_chain(std::uint32_t order, const CipherSessionParams& cipher,
                                      const MacSessionParams& mac,
                                      std::uint32_t aad_len = 0) noexcept;
};

// The control request create_session() sends for `spec` (opcode, header.algo,
// queue_id 0, the service's parameters), and the key bytes that follow it in
// their own readable descriptor: the cipher key, then the auth key (a MAC, or
// a chain in kHashModeAuth); `key_len` is their total.
struct EncodedCreateSession {
  crypto::CtrlRequest request{};
  std::uint32_t key_len = 0;
};
EncodedCreateSession encode_create_session(const CryptoSessionSpec& spec) noexcept;

struct CryptoSessionResult {
  // The status the device wrote (SessionInput.status, a le32), or
  // kCryptoStatusNone when it wrote none or a value above 0xfe.
  std::uint8_t status = kCryptoStatusNone;
  std::uint32_t status_word = 0xffffffff;  // SessionInput.status as written
  std::uint64_t session_id = 0;
  std::uint32_t used_len = 0;  // bytes the device says it wrote
};

// Typed boolean for raw requests: end the chain with a 1-byte writable status
// (the driver's, reported as the completion's status) or not.
enum class AppendStatus : bool { kNo = false, kYes = true };

struct CryptoRawResult {
  std::uint8_t status = kCryptoStatusNone;  // the appended status byte (AppendStatus::kYes)
  std::uint32_t used_len = 0;
  // One per writable length given, as the device left it (prefilled 0xff).
  std::vector<std::vector<std::byte>> writable;
};

// ---- Data requests ----
// One symmetric operation. The fields that follow the 72-byte DataRequest
// come from crypto_data_layout(); iv and aad are copied into the request's
// slot, src and dst are the caller's guest buffers (or execute()'s copies).
struct CryptoOp {
  std::uint32_t opcode = crypto::kOpCipherEncrypt;  // crypto::kOp*
  std::uint32_t algo = 0;                           // header.algo: the session's algorithm
  std::uint64_t session_id = 0;
  std::uint32_t flag = 0;  // header.flag
  std::uint32_t op_type =
      crypto::kSymOpCipher;           // cipher-service opcodes: kSymOpCipher / kSymOpChain
  std::span<const std::byte> iv;      // <= kCryptoMaxIvBytes
  std::span<const std::byte> aad;     // chain, AEAD; <= kCryptoMaxAadBytes
  std::uint32_t hash_result_len = 0;  // chain, hash, MAC; <= kCryptoMaxHashResultBytes
  // Chain only (op_type kSymOpChain), offsets into src.
  std::uint32_t cipher_start_src_offset = 0;
  std::uint32_t len_to_cipher = 0;
  std::uint32_t hash_start_src_offset = 0;
  std::uint32_t len_to_hash = 0;
};

// The variable-length fields after the DataRequest and before the status
// byte, in wire order; kIv, kSrc and kAad are device-readable, kDst and
// kHashResult device-writable.
enum class CryptoField : std::uint8_t { kIv, kSrc, kAad, kDst, kHashResult };
struct CryptoDataLayout {
  std::array<CryptoField, 5> fields{};
  std::uint8_t count = 0;
  std::span<const CryptoField> span() const noexcept { return {fields.data(), count}; }
};
// The one place that decides the order of a data request's fields, by service
// (opcode >> 8) and, for the cipher service, op_type:
//   cipher:   iv, src       | dst
//   chain:    iv, src, aad  | dst, hash_result
//   hash/MAC: src           | hash_result
//   AEAD:     iv, src, aad  | dst (ciphertext + tag on encrypt; src is
//             ciphertext + tag on decrypt), as virtio 1.2 §5.9.7.2 orders them.
// Unknown services get every field, in the chain's order.
CryptoDataLayout crypto_data_layout(std::uint32_t opcode, std::uint32_t op_type) noexcept;
// The DataRequest submit() sends for `op` with src_len / dst_len data bytes:
// the header, then the service's parameters (cipher or chain for the cipher
// service by op_type, hash for hash and MAC, aead; zero for other services).
crypto::DataRequest encode_data_request(const CryptoOp& op, std::uint32_t src_len,
                                        std::uint32_t dst_len) noexcept;

struct CryptoCompletion {
  std::uint64_t cookie = 0;
  std::uint8_t status = kCryptoStatusNone;
  std::uint32_t used_len = 0;  // bytes the device says it wrote, status byte included
  // The request's hash_result field, copied out of its slot (chain, hash, MAC).
  std::uint32_t hash_result_len = 0;
  std::array<std::byte, kCryptoMaxHashResultBytes> hash_result{};
};

struct CryptoResult {
  std::uint8_t status = kCryptoStatusNone;
  std::uint32_t used_len = 0;
  std::vector<std::byte> dst;          // dst_len bytes as the device left them
  std::vector<std::byte> hash_result;  // op.hash_result_len bytes
};

// Cookie execute() and execute_raw() give their request: one that timed out
// stays in flight and a later poll() reports it with this cookie.
inline constexpr std::uint64_t kCryptoExecuteCookie = ~std::uint64_t{0};

// A data request's bookkeeping in host memory (its bytes in guest memory are
// crypto_driver.cc's slot layout).
struct CryptoSlot {
  std::uint64_t cookie = 0;
  std::uint32_t hash_result_len = 0;  // bytes to copy out of the slot on completion
};

// Ownership and threads: connect() and stop() are control-path calls that
// block on the socket (each exchange bounded by options.frontend.timeout).
// Control-queue calls (create_session, destroy_session, control_raw) are
// synchronous, one thread at a time, and may run beside the data queues'
// threads. Each data queue is driven by one thread at a time. Submissions
// check only what protects our own memory (buffers in the arena, slot bounds,
// descriptor counts) and that each field has a place in the request's layout;
// they do not check algorithms, lengths or sessions against the device, so
// tests can see the device reject them.
class CryptoDriver : public SlotDriver<CryptoSlot> {
 public:
  // SET_OWNER, feature negotiation (VERSION_1, EVENT_IDX, INDIRECT_DESC,
  // RING_PACKED if asked; never REVISION_1 or the stateless modes), protocol
  // features (MQ, REPLY_ACK, CONFIG), GET_QUEUE_NUM, GET_CONFIG, then data
  // vrings 0..num_queues-1 (and the idle ones up to max_dataqueues-1 with
  // IdleRings::kSetUp) and the control vring at config.max_dataqueues.
  // kInvalidArgument (with `why`) when num_queues does not fit the device,
  // kUnsupported when it has no data queues or (MQ) no ring index for its
  // control queue; the session's errors otherwise.
  static Result<std::unique_ptr<CryptoDriver>> connect(const CryptoDriverOptions& options,
                                                       std::string* why = nullptr);
  // Calls stop() if it was not called (bounded by the message timeout).
  ~CryptoDriver();

  // Stops every ring with GET_VRING_BASE and returns their bases in vring
  // order: the data queues', the idle rings' (IdleRings::kSetUp), then the
  // control queue's. Idempotent; later calls return the first result.
  Result<std::vector<std::uint32_t>> stop();

  // ---- Negotiated state (the rest, and num_queues() (data queues),
  // max_in_flight(), queue(), kick() and in_flight(), are SlotDriver's) ----
  const CryptoConfig& config() const noexcept { return config_; }
  std::uint16_t control_ring_index() const noexcept { return control_index_; }
  DriverQueue& control_queue() noexcept { return *control_vq_; }

  // ---- Control queue (synchronous; bounded by `limit`) ----
  // Each waits for its completion; kTimeout when it does not come in time,
  // after which the request stays with the device and later control calls
  // fail with kBusy until its completion arrives (it is then discarded).
  // kInvalidArgument when keys or raw segments do not fit the control area.
  static constexpr std::chrono::milliseconds kControlTimeout{5000};
  // CtrlRequest (72 bytes), the key bytes (one readable descriptor, absent
  // without keys), then a writable SessionInput (16 bytes, prefilled 0xff).
  Result<CryptoSessionResult> create_session(const CryptoSessionSpec& spec,
                                             std::chrono::milliseconds limit = kControlTimeout);
  // CtrlRequest{opcode (crypto::kOp*DestroySession), destroy_session_id}, then
  // a 1-byte writable status; returns that status (kCryptoStatusNone if unwritten).
  Result<std::uint8_t> destroy_session(std::uint32_t opcode, std::uint64_t session_id,
                                       std::chrono::milliseconds limit = kControlTimeout);
  // Any control request: each readable span in its own descriptor, then one
  // writable descriptor per length (prefilled 0xff), then the status byte if
  // asked. Zero-length segments are not allowed (rings refuse them).
  Result<CryptoRawResult> control_raw(std::span<const std::span<const std::byte>> readable,
                                      std::span<const std::uint32_t> writable_lens,
                                      AppendStatus status = AppendStatus::kNo,
                                      std::chrono::milliseconds limit = kControlTimeout);

  // ---- Data queues (queue q's thread) ----
  // Adds one operation and returns at once; nothing reaches the device until
  // kick(q). DataRequest, the layout's fields (empty ones are left out), then
  // the status byte. kInvalidArgument for a bad queue, a buffer empty or
  // outside the arena, an iv / aad / hash_result over its bound or a field
  // the layout has no place for; kResourceExhausted when the queue is full
  // (reap first) or out of descriptors.
  Result<void> submit(std::uint16_t q, const CryptoOp& op, std::span<const GuestBuffer> src,
                      std::span<const GuestBuffer> dst, std::uint64_t cookie) noexcept;
  // Any request: `header` (copied into the slot, 1..kCryptoMaxHeaderBytes,
  // or empty for none), the readable then the writable buffers, then the
  // status byte if asked. Only arena checks.
  Result<void> submit_raw(std::uint16_t q, std::span<const std::byte> header,
                          std::span<const GuestBuffer> readable,
                          std::span<const GuestBuffer> writable, AppendStatus status,
                          std::uint64_t cookie) noexcept;
  // Completed requests, without waiting (busy-poll). Returns the count.
  Result<std::size_t> poll(std::uint16_t q, std::span<CryptoCompletion> out) noexcept;
  // Waits on the call eventfd up to `limit` for completions, then polls;
  // 0 on timeout. Leaves the queue's interrupts enabled.
  Result<std::size_t> wait(std::uint16_t q, std::span<CryptoCompletion> out,
                           std::chrono::milliseconds limit) noexcept;

  // Convenience for tests and set-up: copies `src` into guest memory, gives
  // the device dst_len writable bytes, submits, kicks and polls until the
  // request completes or `limit` passes (kTimeout). Needs an idle queue
  // (kBusy otherwise). Allocates; not for the data path.
  Result<CryptoResult> execute(std::uint16_t q, const CryptoOp& op, std::span<const std::byte> src,
                               std::uint32_t dst_len,
                               std::chrono::milliseconds limit = std::chrono::seconds(10));
  // submit_raw() the same way: readable spans copied to guest memory, one
  // writable buffer per length (prefilled 0xff) returned as the device left it.
  Result<CryptoRawResult> execute_raw(std::uint16_t q, std::span<const std::byte> header,
                                      std::span<const std::span<const std::byte>> readable,
                                      std::span<const std::uint32_t> writable_lens,
                                      AppendStatus status,
                                      std::chrono::milliseconds limit = std::chrono::seconds(10));

 private:
  CryptoDriver() = default;
  Result<void> setup(const CryptoDriverOptions& options, std::string* why);
  Result<void> ensure_exec_area(std::uint16_t q, std::uint64_t bytes);
  Result<CryptoCompletion> wait_one(std::uint16_t q, std::chrono::milliseconds limit);
  // One control request: adds `segs`, kicks, waits. Returns the used length.
  Result<std::uint32_t> control_exchange(std::span<const DriverSegment> segs,
                                         std::chrono::milliseconds limit);
  Result<void> reap_stale_control();

  // Per data queue: execute()'s data, grown while the queue is idle.
  std::vector<ArenaBlock> exec_areas_;
  DriverQueue* control_vq_ = nullptr;  // owned by session_
  ArenaBlock control_area_;            // the one control request in flight
  std::uint64_t control_seq_ = 0;      // cookie of the last control request
  bool control_pending_ = false;       // it timed out and is still with the device
  std::uint16_t control_index_ = 0;
  CryptoConfig config_;
};

}  // namespace viopool::frontend
