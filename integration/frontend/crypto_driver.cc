// CryptoDriver: virtio-crypto config and feature choice on top of
// DeviceSession, sessions on the control queue (one request at a time, in a
// fixed control area) and symmetric operations built from per-request slots in
// guest memory (DataRequest, status, iv, hash_result, aad) plus the caller's
// src / dst buffers.
#include "integration/frontend/crypto_driver.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "vhost-backend/base/log.h"
#include "vhost-backend/virtio/virtio_defs.h"

VIOPOOL_LOG_MODULE("frontend.crypto")

namespace viopool::frontend {

namespace {

// Per-request slot in guest memory. The device writes only the status byte and
// hash_result, each on a cache line of its own, so its writes never share a
// line with the bytes we fill for the next request in a neighbouring field.
constexpr std::uint64_t kSlotHeader = 0;  // DataRequest (72) or a raw header
constexpr std::uint64_t kSlotStatus = 128;
constexpr std::uint64_t kSlotIv = 192;
constexpr std::uint64_t kSlotHashResult = 256;
constexpr std::uint64_t kSlotAad = 512;
constexpr std::uint64_t kSlotBytes = 1024;
static_assert(kSlotHeader + kCryptoMaxHeaderBytes <= kSlotStatus);
static_assert(sizeof(crypto::DataRequest) <= kCryptoMaxHeaderBytes);
static_assert(kSlotIv + kCryptoMaxIvBytes <= kSlotHashResult);
static_assert(kSlotHashResult + kCryptoMaxHashResultBytes <= kSlotAad);
static_assert(kSlotAad + kCryptoMaxAadBytes <= kSlotBytes);
static_assert(kSlotBytes % 64 == 0);

// The control area holds the one control request in flight: the request, key
// bytes (or raw segments) and what the device writes back. 16 KiB is far more
// than real keys need (max_cipher_key_len / max_auth_key_len are tens of
// bytes) and leaves room for oversized keys in tests.
constexpr std::uint64_t kControlAreaBytes = 16 << 10;
// execute()'s buffers start at this size and grow on demand.
constexpr std::uint64_t kMinExecAreaBytes = 64 << 10;
// Control waits sleep on the call eventfd in slices this long and re-check
// the used ring in between, so a backend that never signals costs latency,
// not the whole timeout.
constexpr std::chrono::milliseconds kControlWaitSlice{10};

// What we ack when offered. Never VIRTIO_CRYPTO_F_REVISION_1 (bit 0): we speak
// the 72-byte request layout of virtio_crypto.h. Never the stateless modes
// (bits 1-4): every request here names a session.
constexpr unsigned kWantedBits[] = {
    virtio::kFeatureVersion1,
    virtio::kFeatureRingEventIdx,
    virtio::kFeatureRingIndirectDesc,
};

// vhost-user SET_VRING_KICK / CALL carry the ring index in 8 bits.
constexpr std::uint32_t kMaxVringIndex = vhost_user::kVringIndexMask;

void note(std::string* why, const std::string& s) {
  if (why != nullptr) {
    *why = s;
  }
}

constexpr std::uint64_t align64(std::uint64_t n) noexcept { return (n + 63) & ~std::uint64_t{63}; }

// Hands out 64-byte aligned pieces of an arena block, front to back.
class AreaCursor {
 public:
  explicit AreaCursor(const ArenaBlock& area) noexcept : area_(area) {}
  // The offset of `len` more bytes, or nullopt when they do not fit.
  std::optional<std::uint64_t> take(std::uint64_t len) noexcept {
    if (len > area_.len || used_ > area_.len - len) {
      return std::nullopt;
    }
    const std::uint64_t off = used_;
    used_ = std::min(area_.len, align64(used_ + len));
    return off;
  }
  std::byte* host(std::uint64_t off) const noexcept { return area_.host + off; }
  GuestAddr gpa(std::uint64_t off) const noexcept { return GuestAddr{area_.gpa.value + off}; }

 private:
  ArenaBlock area_;
  std::uint64_t used_ = 0;
};

// The key bytes of a create-session request, in wire order: the cipher key,
// then the auth key (MAC, or a chain in kHashModeAuth); AEAD's key alone.
std::array<std::span<const std::byte>, 2> session_keys(const CryptoSessionSpec& s) noexcept {
  switch (s.kind) {
    case CryptoSessionKind::kCipher:
      return {s.cipher.key, {}};
    case CryptoSessionKind::kHash:
      return {};
    case CryptoSessionKind::kMac:
      return {s.mac.key, {}};
    case CryptoSessionKind::kChain:
      return {s.cipher.key, s.chain_hash_mode == crypto::kHashModeAuth
                                ? s.mac.key
                                : std::span<const std::byte>()};
    case CryptoSessionKind::kAead:
      return {s.aead.key, {}};
  }
  return {};
}

crypto::CipherSessionPara cipher_para(const CipherSessionParams& c) noexcept {
  return crypto::CipherSessionPara{c.algo, static_cast<std::uint32_t>(c.key.size()), c.dir, 0};
}

}  // namespace

// ---- Names ----

const char* crypto_status_name(std::uint8_t status) noexcept {
  switch (status) {
    case crypto::kStatusOk:
      return "OK";
    case crypto::kStatusErr:
      return "ERR";
    case crypto::kStatusBadMsg:
      return "BADMSG";
    case crypto::kStatusNotSupp:
      return "NOTSUPP";
    case crypto::kStatusInvSess:
      return "INVSESS";
    case crypto::kStatusNoSpc:
      return "NOSPC";
    case kCryptoStatusKeyRejected:
      return "KEY_REJECTED";
    case kCryptoStatusNone:
      return "NONE";
    default:
      return "INVALID";
  }
}

const char* crypto_service_name(std::uint32_t service) noexcept {
  switch (service) {
    case crypto::kServiceCipher:
      return "CIPHER";
    case crypto::kServiceHash:
      return "HASH";
    case crypto::kServiceMac:
      return "MAC";
    case crypto::kServiceAead:
      return "AEAD";
    case 4:
      return "AKCIPHER";
    default:
      return nullptr;
  }
}

// Algorithm numbers without a constant in virtio_crypto.h are those of Linux's
// include/uapi/linux/virtio_crypto.h.
const char* crypto_cipher_name(std::uint32_t algo) noexcept {
  switch (algo) {
    case crypto::kCipherNone:
      return "NONE";
    case 1:
      return "ARC4";
    case crypto::kCipherAesEcb:
      return "AES_ECB";
    case crypto::kCipherAesCbc:
      return "AES_CBC";
    case crypto::kCipherAesCtr:
      return "AES_CTR";
    case 5:
      return "DES_ECB";
    case 6:
      return "DES_CBC";
    case 7:
      return "3DES_ECB";
    case 8:
      return "3DES_CBC";
    case 9:
      return "3DES_CTR";
    case 10:
      return "KASUMI_F8";
    case 11:
      return "SNOW3G_UEA2";
    case 12:
      return "AES_F8";
    case crypto::kCipherAesXts:
      return "AES_XTS";
    case 14:
      return "ZUC_EEA3";
    default:
      return nullptr;
  }
}

const char* crypto_hash_name(std::uint32_t algo) noexcept {
  switch (algo) {
    case crypto::kHashNone:
      return "NONE";
    case crypto::kHashMd5:
      return "MD5";
    case crypto::kHashSha1:
      return "SHA1";
    case crypto::kHashSha224:
      return "SHA_224";
    case crypto::kHashSha256:
      return "SHA_256";
    case crypto::kHashSha384:
      return "SHA_384";
    case crypto::kHashSha512:
      return "SHA_512";
    case 7:
      return "SHA3_224";
    case 8:
      return "SHA3_256";
    case 9:
      return "SHA3_384";
    case 10:
      return "SHA3_512";
    case 11:
      return "SHA3_SHAKE128";
    case 12:
      return "SHA3_SHAKE256";
    default:
      return nullptr;
  }
}

const char* crypto_mac_name(std::uint32_t algo) noexcept {
  switch (algo) {
    case crypto::kMacNone:
      return "NONE";
    case crypto::kMacHmacMd5:
      return "HMAC_MD5";
    case crypto::kMacHmacSha1:
      return "HMAC_SHA1";
    case crypto::kMacHmacSha224:
      return "HMAC_SHA_224";
    case crypto::kMacHmacSha256:
      return "HMAC_SHA_256";
    case crypto::kMacHmacSha384:
      return "HMAC_SHA_384";
    case crypto::kMacHmacSha512:
      return "HMAC_SHA_512";
    case 25:
      return "CMAC_3DES";
    case crypto::kMacCmacAes:
      return "CMAC_AES";
    case 27:
      return "KASUMI_F9";
    case 28:
      return "SNOW3G_UIA2";
    case 41:
      return "GMAC_AES";
    case 42:
      return "GMAC_TWOFISH";
    case 49:
      return "CBCMAC_AES";
    case 50:
      return "CBCMAC_KASUMI_F9";
    case 53:
      return "XCBC_AES";
    default:
      return nullptr;
  }
}

const char* crypto_aead_name(std::uint32_t algo) noexcept {
  switch (algo) {
    case crypto::kAeadNone:
      return "NONE";
    case crypto::kAeadGcm:
      return "GCM";
    case crypto::kAeadCcm:
      return "CCM";
    case crypto::kAeadChacha20Poly1305:
      return "CHACHA20_POLY1305";
    default:
      return nullptr;
  }
}

const char* crypto_opcode_name(std::uint32_t opcode) noexcept {
  switch (opcode) {
    case crypto::kOpCipherCreateSession:
      return "CIPHER_CREATE_SESSION";
    case crypto::kOpCipherDestroySession:
      return "CIPHER_DESTROY_SESSION";
    case crypto::kOpHashCreateSession:
      return "HASH_CREATE_SESSION";
    case crypto::kOpHashDestroySession:
      return "HASH_DESTROY_SESSION";
    case crypto::kOpMacCreateSession:
      return "MAC_CREATE_SESSION";
    case crypto::kOpMacDestroySession:
      return "MAC_DESTROY_SESSION";
    case crypto::kOpAeadCreateSession:
      return "AEAD_CREATE_SESSION";
    case crypto::kOpAeadDestroySession:
      return "AEAD_DESTROY_SESSION";
    case crypto::kOpCipherEncrypt:
      return "CIPHER_ENCRYPT";
    case crypto::kOpCipherDecrypt:
      return "CIPHER_DECRYPT";
    case crypto::kOpHash:
      return "HASH";
    case crypto::kOpMac:
      return "MAC";
    case crypto::kOpAeadEncrypt:
      return "AEAD_ENCRYPT";
    case crypto::kOpAeadDecrypt:
      return "AEAD_DECRYPT";
    default:
      return nullptr;
  }
}

const char* crypto_feature_name(unsigned bit) noexcept {
  switch (bit) {
    case crypto::kFeatRevision1:
      return "REVISION_1";
    case 1:
      return "CIPHER_STATELESS_MODE";
    case 2:
      return "HASH_STATELESS_MODE";
    case 3:
      return "MAC_STATELESS_MODE";
    case 4:
      return "AEAD_STATELESS_MODE";
    default:
      return virtio::feature_name(bit);
  }
}

// ---- Config ----

namespace {
bool bit_of(std::uint32_t mask, std::uint32_t bit) noexcept {
  return bit < 32 && ((mask >> bit) & 1) != 0;
}
bool bit_of(std::uint32_t lo, std::uint32_t hi, std::uint32_t bit) noexcept {
  return bit < 32 ? bit_of(lo, bit) : bit_of(hi, bit - 32);
}
}  // namespace

bool CryptoConfig::has_service(std::uint32_t service) const noexcept {
  return bit_of(crypto_services, service);
}
bool CryptoConfig::has_cipher(std::uint32_t algo) const noexcept {
  return bit_of(cipher_algo_l, cipher_algo_h, algo);
}
bool CryptoConfig::has_hash(std::uint32_t algo) const noexcept { return bit_of(hash_algo, algo); }
bool CryptoConfig::has_mac(std::uint32_t algo) const noexcept {
  return bit_of(mac_algo_l, mac_algo_h, algo);
}
bool CryptoConfig::has_aead(std::uint32_t algo) const noexcept { return bit_of(aead_algo, algo); }

CryptoConfig parse_crypto_config(std::span<const std::byte> raw) noexcept {
  using C = crypto::Config;
  CryptoConfig c{};
  c.status = config_le<std::uint32_t>(raw, offsetof(C, status));
  c.max_dataqueues = config_le<std::uint32_t>(raw, offsetof(C, max_dataqueues));
  c.crypto_services = config_le<std::uint32_t>(raw, offsetof(C, crypto_services));
  c.cipher_algo_l = config_le<std::uint32_t>(raw, offsetof(C, cipher_algo_l));
  c.cipher_algo_h = config_le<std::uint32_t>(raw, offsetof(C, cipher_algo_h));
  c.hash_algo = config_le<std::uint32_t>(raw, offsetof(C, hash_algo));
  c.mac_algo_l = config_le<std::uint32_t>(raw, offsetof(C, mac_algo_l));
  c.mac_algo_h = config_le<std::uint32_t>(raw, offsetof(C, mac_algo_h));
  c.aead_algo = config_le<std::uint32_t>(raw, offsetof(C, aead_algo));
  c.max_cipher_key_len = config_le<std::uint32_t>(raw, offsetof(C, max_cipher_key_len));
  c.max_auth_key_len = config_le<std::uint32_t>(raw, offsetof(C, max_auth_key_len));
  c.akcipher_algo = config_le<std::uint32_t>(raw, offsetof(C, akcipher_algo));
  c.max_size = config_le<std::uint64_t>(raw, offsetof(C, max_size));
  return c;
}

// ---- Session specs and their encoding ----

CryptoSessionSpec CryptoSessionSpec::make_cipher(std::uint32_t algo, std::span<const std::byte> key,
                                                 std::uint32_t dir) noexcept {
  CryptoSessionSpec s;
  s.kind = CryptoSessionKind::kCipher;
  s.cipher = CipherSessionParams{algo, key, dir};
  return s;
}

CryptoSessionSpec CryptoSessionSpec::make_hash(std::uint32_t algo,
                                               std::uint32_t result_len) noexcept {
  CryptoSessionSpec s;
  s.kind = CryptoSessionKind::kHash;
  s.hash = HashSessionParams{algo, result_len};
  return s;
}

CryptoSessionSpec CryptoSessionSpec::make_mac(std::uint32_t algo, std::uint32_t result_len,
                                              std::span<const std::byte> key) noexcept {
  CryptoSessionSpec s;
  s.kind = CryptoSessionKind::kMac;
  s.mac = MacSessionParams{algo, result_len, key};
  return s;
}

CryptoSessionSpec CryptoSessionSpec::make_aead(std::uint32_t algo, std::span<const std::byte> key,
                                               std::uint32_t tag_len, std::uint32_t aad_len,
                                               std::uint32_t dir) noexcept {
  CryptoSessionSpec s;
  s.kind = CryptoSessionKind::kAead;
  s.aead = AeadSessionParams{algo, key, tag_len, aad_len, dir};
  return s;
}

CryptoSessionSpec CryptoSessionSpec::make_chain(std::uint32_t order,
                                                const CipherSessionParams& cipher,
                                                const HashSessionParams& hash,
                                                std::uint32_t aad_len) noexcept {
  CryptoSessionSpec s;
  s.kind = CryptoSessionKind::kChain;
  s.chain_order = order;
  s.chain_hash_mode = crypto::kHashModePlain;
  s.cipher = cipher;
  s.hash = hash;
  s.chain_aad_len = aad_len;
  return s;
}

CryptoSessionSpec CryptoSessionSpec::make_chain(std::uint32_t order,
                                                const CipherSessionParams& cipher,
                                                const MacSessionParams& mac,
                                                std::uint32_t aad_len) noexcept {
  CryptoSessionSpec s;
  s.kind = CryptoSessionKind::kChain;
  s.chain_order = order;
  s.chain_hash_mode = crypto::kHashModeAuth;
  s.cipher = cipher;
  s.mac = mac;
  s.chain_aad_len = aad_len;
  return s;
}

EncodedCreateSession encode_create_session(const CryptoSessionSpec& s) noexcept {
  EncodedCreateSession e;
  // Unused union bytes go out as zeroes, as the spec's padding fields ask.
  std::memset(&e.request, 0, sizeof(e.request));
  crypto::CtrlRequest& r = e.request;
  r.header.queue_id = 0;
  switch (s.kind) {
    case CryptoSessionKind::kCipher:
      r.header.opcode = crypto::kOpCipherCreateSession;
      r.header.algo = s.cipher.algo;
      r.u.sym.u.cipher = cipher_para(s.cipher);
      r.u.sym.op_type = crypto::kSymOpCipher;
      break;
    case CryptoSessionKind::kHash:
      r.header.opcode = crypto::kOpHashCreateSession;
      r.header.algo = s.hash.algo;
      r.u.hash.algo = s.hash.algo;
      r.u.hash.hash_result_len = s.hash.result_len;
      break;
    case CryptoSessionKind::kMac:
      r.header.opcode = crypto::kOpMacCreateSession;
      r.header.algo = s.mac.algo;
      r.u.mac = crypto::MacSessionPara{s.mac.algo, s.mac.result_len,
                                       static_cast<std::uint32_t>(s.mac.key.size()), 0};
      break;
    case CryptoSessionKind::kChain: {
      r.header.opcode = crypto::kOpCipherCreateSession;
      r.header.algo = s.cipher.algo;
      crypto::ChainSessionPara& c = r.u.sym.u.chain;
      c.alg_chain_order = s.chain_order;
      c.hash_mode = s.chain_hash_mode;
      c.cipher = cipher_para(s.cipher);
      if (s.chain_hash_mode == crypto::kHashModeAuth) {
        c.u.mac = crypto::MacSessionPara{s.mac.algo, s.mac.result_len,
                                         static_cast<std::uint32_t>(s.mac.key.size()), 0};
      } else {
        c.u.hash.algo = s.hash.algo;
        c.u.hash.hash_result_len = s.hash.result_len;
      }
      c.aad_len = s.chain_aad_len;
      r.u.sym.op_type = crypto::kSymOpChain;
      break;
    }
    case CryptoSessionKind::kAead:
      r.header.opcode = crypto::kOpAeadCreateSession;
      r.header.algo = s.aead.algo;
      r.u.aead =
          crypto::AeadSessionPara{s.aead.algo,    static_cast<std::uint32_t>(s.aead.key.size()),
                                  s.aead.tag_len, s.aead.aad_len,
                                  s.aead.dir,     0};
      break;
  }
  for (const auto& k : session_keys(s)) {
    e.key_len += static_cast<std::uint32_t>(k.size());
  }
  return e;
}

// ---- Data request encoding ----

CryptoDataLayout crypto_data_layout(std::uint32_t opcode, std::uint32_t op_type) noexcept {
  using F = CryptoField;
  switch (opcode >> 8) {
    case crypto::kServiceCipher:
      if (op_type == crypto::kSymOpChain) {
        return CryptoDataLayout{{F::kIv, F::kSrc, F::kAad, F::kDst, F::kHashResult}, 5};
      }
      return CryptoDataLayout{{F::kIv, F::kSrc, F::kDst}, 3};
    case crypto::kServiceHash:
    case crypto::kServiceMac:
      return CryptoDataLayout{{F::kSrc, F::kHashResult}, 2};
    case crypto::kServiceAead:
      // virtio 1.2 §5.9.7.2: iv, src, aad.
      return CryptoDataLayout{{F::kIv, F::kSrc, F::kAad, F::kDst}, 4};
    default:
      return CryptoDataLayout{{F::kIv, F::kSrc, F::kAad, F::kDst, F::kHashResult}, 5};
  }
}

crypto::DataRequest encode_data_request(const CryptoOp& op, std::uint32_t src_len,
                                        std::uint32_t dst_len) noexcept {
  crypto::DataRequest r;
  std::memset(&r, 0, sizeof(r));
  r.header.opcode = op.opcode;
  r.header.algo = op.algo;
  r.header.session_id = op.session_id;
  r.header.flag = op.flag;
  const auto iv_len = static_cast<std::uint32_t>(op.iv.size());
  const auto aad_len = static_cast<std::uint32_t>(op.aad.size());
  switch (op.opcode >> 8) {
    case crypto::kServiceCipher:
      r.u.sym.op_type = op.op_type;
      if (op.op_type == crypto::kSymOpChain) {
        r.u.sym.u.chain = crypto::ChainDataPara{iv_len,
                                                src_len,
                                                dst_len,
                                                op.cipher_start_src_offset,
                                                op.len_to_cipher,
                                                op.hash_start_src_offset,
                                                op.len_to_hash,
                                                aad_len,
                                                op.hash_result_len,
                                                0};
      } else {
        r.u.sym.u.cipher = crypto::CipherPara{iv_len, src_len, dst_len, 0};
      }
      break;
    case crypto::kServiceHash:
    case crypto::kServiceMac:
      r.u.hash = crypto::HashPara{src_len, op.hash_result_len};
      break;
    case crypto::kServiceAead:
      r.u.aead = crypto::AeadPara{iv_len, aad_len, src_len, dst_len};
      break;
    default:
      break;  // unknown service: the header alone, for the device to refuse
  }
  return r;
}

// ---- Driver set-up ----

Result<std::unique_ptr<CryptoDriver>> CryptoDriver::connect(const CryptoDriverOptions& options,
                                                            std::string* why) {
  std::unique_ptr<CryptoDriver> d(new CryptoDriver());
  VIOPOOL_TRY(d->setup(options, why));
  return d;
}

// SlotDriver's session_ stops the rings (if they came up and stop() was not
// called) and frees them before the arena.
CryptoDriver::~CryptoDriver() = default;

Result<std::vector<std::uint32_t>> CryptoDriver::stop() { return session_.stop(); }

Result<void> CryptoDriver::setup(const CryptoDriverOptions& o, std::string* why) {
  VIOPOOL_TRY(session_.open(session_options(o), why));

  std::array<std::byte, kCryptoConfigBytes> raw{};
  VIOPOOL_TRY(session_.read_config(raw, why));
  config_ = parse_crypto_config(raw);
  if (config_.max_dataqueues == 0) {
    note(why, "config: the device reports max_dataqueues 0");
    return fail(Errc::kUnsupported, "device has no data queues");
  }
  // The control queue sits at index max_dataqueues, whatever we set up.
  if (config_.max_dataqueues > kMaxVringIndex) {
    note(why, "config: max_dataqueues " + std::to_string(config_.max_dataqueues) +
                  " puts the control queue beyond vring index " + std::to_string(kMaxVringIndex));
    return fail(Errc::kUnsupported, "control queue index beyond what vhost-user addresses");
  }
  std::uint32_t device_queues = config_.max_dataqueues;
  if (session_.has_protocol_feature(vhost_user::kProtocolMq)) {
    const std::uint32_t rings = session_.backend_queue_count();
    if (rings <= config_.max_dataqueues) {
      note(why, "queues: GET_QUEUE_NUM reports " + std::to_string(rings) +
                    " rings, none left for the control queue at index max_dataqueues " +
                    std::to_string(config_.max_dataqueues));
      return fail(Errc::kUnsupported, "no ring for the control queue");
    }
    device_queues = std::min(device_queues, rings - 1);
  }
  if (o.num_queues == 0 || o.num_queues > device_queues) {
    note(why, "queues: " + std::to_string(o.num_queues) + " requested, the device offers " +
                  std::to_string(device_queues) + " data queues");
    return fail(Errc::kInvalidArgument, "more queues requested than the device offers");
  }

  VIOPOOL_TRY(session_.negotiate(kWantedBits, why));
  VIOPOOL_TRY(session_.setup_memory(why));

  init_queues(o.num_queues, o.queue_size, kSlotBytes, kCryptoMaxChain);
  exec_areas_.resize(o.num_queues);
  control_index_ = static_cast<std::uint16_t>(config_.max_dataqueues);
  std::vector<std::uint16_t> rings(o.num_queues);
  for (std::uint16_t i = 0; i < o.num_queues; ++i) {
    rings[i] = i;
  }
  if (o.idle_rings == IdleRings::kSetUp) {
    for (std::uint32_t i = o.num_queues; i < config_.max_dataqueues; ++i) {
      rings.push_back(static_cast<std::uint16_t>(i));
    }
  }
  rings.push_back(control_index_);
  const std::size_t control_pos = rings.size() - 1;
  SessionQueueOptions qo;
  qo.size = o.queue_size;
  qo.max_indirect = static_cast<std::uint16_t>(kCryptoMaxChain);
  // Data queues get their request slots, the control queue its area, each
  // right after its ring; idle rings get nothing more.
  auto alloc = [this, control_pos](std::size_t i, DriverQueue& vq, std::string* w) -> Result<void> {
    if (i == control_pos) {
      control_vq_ = &vq;
      auto area = session_.arena().alloc(kControlAreaBytes, 64);
      if (!area) {
        return session_.failed_step(w, "control area", area.error());
      }
      control_area_ = *area;
      return {};
    }
    if (i >= num_queues()) {
      return {};  // an idle data ring
    }
    return attach_queue(i, vq, w);
  };
  VIOPOOL_TRY(session_.setup_queues(rings, qo, alloc, why));
  VIOPOOL_LOG_DEBUG(
      "connected socket={} features={} ring={} queues={} control={} services={:#x} "
      "max_size={}",
      o.socket_path, virtio::to_string(session_.features()),
      session_.ring_layout() == RingLayout::kPacked ? "packed" : "split", o.num_queues,
      control_index_, config_.crypto_services, config_.max_size);
  return {};
}

// ---- Control queue ----

Result<void> CryptoDriver::reap_stale_control() {
  if (!control_pending_) {
    return {};
  }
  DriverCompletion c;
  auto n = control_vq_->reap(std::span<DriverCompletion>(&c, 1));
  if (!n) {
    return unexpected(n.error());
  }
  if (*n == 0) {
    return fail(Errc::kBusy, "an earlier control request is still with the device");
  }
  // The late completion of the request that timed out: nobody waits for it.
  control_pending_ = false;
  return {};
}

Result<std::uint32_t> CryptoDriver::control_exchange(std::span<const DriverSegment> segs,
                                                     std::chrono::milliseconds limit) {
  const std::uint64_t cookie = ++control_seq_;
  VIOPOOL_TRY(control_vq_->add(segs, cookie));
  if (auto k = control_vq_->kick(); !k) {
    control_pending_ = true;  // published, so the device may still take it
    return unexpected(k.error());
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    DriverCompletion c;
    auto n = control_vq_->reap(std::span<DriverCompletion>(&c, 1));
    if (!n) {
      return unexpected(n.error());
    }
    if (*n == 1) {
      if (c.cookie != cookie) {
        return fail(Errc::kProtocol, "control completion for another request");
      }
      return c.len;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      control_pending_ = true;
      return fail(Errc::kTimeout, "control request did not complete in time");
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    auto w = control_vq_->wait_used(std::min(left, kControlWaitSlice));
    if (!w) {
      return unexpected(w.error());
    }
  }
}

Result<CryptoSessionResult> CryptoDriver::create_session(const CryptoSessionSpec& spec,
                                                         std::chrono::milliseconds limit) {
  VIOPOOL_TRY(reap_stale_control());
  const EncodedCreateSession enc = encode_create_session(spec);
  AreaCursor area(control_area_);
  const auto req_off = area.take(sizeof(crypto::CtrlRequest));
  const auto key_off = area.take(enc.key_len);
  const auto in_off = area.take(sizeof(crypto::SessionInput));
  if (!req_off || !key_off || !in_off) {
    return fail(Errc::kInvalidArgument, "session keys do not fit the control area");
  }
  std::memcpy(area.host(*req_off), &enc.request, sizeof(enc.request));
  std::uint64_t at = *key_off;
  for (const auto& k : session_keys(spec)) {
    if (!k.empty()) {
      std::memcpy(area.host(at), k.data(), k.size());
      at += k.size();
    }
  }
  // 0xff everywhere: a status the device never wrote reads as kCryptoStatusNone.
  std::memset(area.host(*in_off), 0xff, sizeof(crypto::SessionInput));

  std::array<DriverSegment, 3> segs;
  std::size_t n = 0;
  segs[n++] = DriverSegment{area.gpa(*req_off), sizeof(crypto::CtrlRequest), Writable::kNo};
  if (enc.key_len != 0) {
    segs[n++] = DriverSegment{area.gpa(*key_off), enc.key_len, Writable::kNo};
  }
  segs[n++] = DriverSegment{area.gpa(*in_off), sizeof(crypto::SessionInput), Writable::kYes};
  auto used = control_exchange(std::span<const DriverSegment>(segs.data(), n), limit);
  if (!used) {
    return unexpected(used.error());
  }
  // The device wrote SessionInput before publishing the used entry; reap()'s
  // acquire load of the used index makes it visible here.
  crypto::SessionInput in;
  std::memcpy(&in, area.host(*in_off), sizeof(in));
  CryptoSessionResult r;
  r.status_word = in.status;
  r.status =
      in.status < kCryptoStatusNone ? static_cast<std::uint8_t>(in.status) : kCryptoStatusNone;
  r.session_id = in.session_id;
  r.used_len = *used;
  return r;
}

Result<std::uint8_t> CryptoDriver::destroy_session(std::uint32_t opcode, std::uint64_t session_id,
                                                   std::chrono::milliseconds limit) {
  VIOPOOL_TRY(reap_stale_control());
  crypto::CtrlRequest req;
  std::memset(&req, 0, sizeof(req));
  req.header.opcode = opcode;
  req.u.destroy_session_id = session_id;
  AreaCursor area(control_area_);
  const auto req_off = area.take(sizeof(req));
  const auto status_off = area.take(1);
  if (!req_off || !status_off) {
    return fail(Errc::kInternal, "control area too small");
  }
  std::memcpy(area.host(*req_off), &req, sizeof(req));
  *area.host(*status_off) = std::byte{kCryptoStatusNone};
  const std::array<DriverSegment, 2> segs{
      DriverSegment{area.gpa(*req_off), sizeof(req), Writable::kNo},
      DriverSegment{area.gpa(*status_off), 1, Writable::kYes}};
  VIOPOOL_TRY(control_exchange(segs, limit));
  return static_cast<std::uint8_t>(*area.host(*status_off));
}

Result<CryptoRawResult> CryptoDriver::control_raw(
    std::span<const std::span<const std::byte>> readable,
    std::span<const std::uint32_t> writable_lens, AppendStatus status,
    std::chrono::milliseconds limit) {
  VIOPOOL_TRY(reap_stale_control());
  const std::size_t nseg =
      readable.size() + writable_lens.size() + (status == AppendStatus::kYes ? 1 : 0);
  if (nseg == 0 || nseg > kCryptoMaxChain) {
    return fail(Errc::kInvalidArgument, "a control request needs 1 to 64 buffers");
  }
  AreaCursor area(control_area_);
  std::vector<DriverSegment> segs;
  std::vector<std::uint64_t> out_offs;
  for (const auto& r : readable) {
    const auto off = area.take(r.size());
    if (r.empty() || !off) {
      return fail(Errc::kInvalidArgument, "raw segment empty or beyond the control area");
    }
    std::memcpy(area.host(*off), r.data(), r.size());
    segs.push_back(
        DriverSegment{area.gpa(*off), static_cast<std::uint32_t>(r.size()), Writable::kNo});
  }
  for (const std::uint32_t len : writable_lens) {
    const auto off = area.take(len);
    if (len == 0 || !off) {
      return fail(Errc::kInvalidArgument, "raw segment empty or beyond the control area");
    }
    std::memset(area.host(*off), 0xff, len);
    out_offs.push_back(*off);
    segs.push_back(DriverSegment{area.gpa(*off), len, Writable::kYes});
  }
  std::optional<std::uint64_t> status_off;
  if (status == AppendStatus::kYes) {
    status_off = area.take(1);
    if (!status_off) {
      return fail(Errc::kInvalidArgument, "raw segments fill the control area");
    }
    *area.host(*status_off) = std::byte{kCryptoStatusNone};
    segs.push_back(DriverSegment{area.gpa(*status_off), 1, Writable::kYes});
  }
  auto used = control_exchange(segs, limit);
  if (!used) {
    return unexpected(used.error());
  }
  CryptoRawResult r;
  r.used_len = *used;
  if (status_off) {
    r.status = static_cast<std::uint8_t>(*area.host(*status_off));
  }
  for (std::size_t i = 0; i < out_offs.size(); ++i) {
    const std::byte* p = area.host(out_offs[i]);
    r.writable.emplace_back(p, p + writable_lens[i]);
  }
  return r;
}

// ---- Data queues ----

Result<void> CryptoDriver::submit(std::uint16_t q, const CryptoOp& op,
                                  std::span<const GuestBuffer> src,
                                  std::span<const GuestBuffer> dst, std::uint64_t cookie) noexcept {
  auto slot = next_slot(q);
  if (!slot) {
    return unexpected(slot.error());
  }
  if (op.iv.size() > kCryptoMaxIvBytes || op.aad.size() > kCryptoMaxAadBytes ||
      op.hash_result_len > kCryptoMaxHashResultBytes) {
    return fail(Errc::kInvalidArgument, "iv, aad or hash result larger than a request slot holds");
  }
  VIOPOOL_TRY(check_buffers(src));
  VIOPOOL_TRY(check_buffers(dst));
  std::uint64_t src_len = 0;
  std::uint64_t dst_len = 0;
  for (const auto& b : src) {
    src_len += b.len;
  }
  for (const auto& b : dst) {
    dst_len += b.len;
  }
  if (src_len > UINT32_MAX || dst_len > UINT32_MAX) {
    return fail(Errc::kInvalidArgument, "data longer than a 32-bit length field");
  }
  const CryptoDataLayout layout = crypto_data_layout(op.opcode, op.op_type);
  const auto in_layout = [&](CryptoField f) {
    return std::find(layout.span().begin(), layout.span().end(), f) != layout.span().end();
  };
  if ((!op.iv.empty() && !in_layout(CryptoField::kIv)) ||
      (!src.empty() && !in_layout(CryptoField::kSrc)) ||
      (!op.aad.empty() && !in_layout(CryptoField::kAad)) ||
      (!dst.empty() && !in_layout(CryptoField::kDst)) ||
      (op.hash_result_len != 0 && !in_layout(CryptoField::kHashResult))) {
    return fail(Errc::kInvalidArgument, "a field this request's layout has no place for");
  }

  std::byte* base = slot_base(q, *slot);
  const GuestAddr gpa = slot_gpa(q, *slot);
  const crypto::DataRequest req = encode_data_request(op, static_cast<std::uint32_t>(src_len),
                                                      static_cast<std::uint32_t>(dst_len));
  std::memcpy(base + kSlotHeader, &req, sizeof(req));
  base[kSlotStatus] = std::byte{kCryptoStatusNone};
  if (!op.iv.empty()) {
    std::memcpy(base + kSlotIv, op.iv.data(), op.iv.size());
  }
  if (!op.aad.empty()) {
    std::memcpy(base + kSlotAad, op.aad.data(), op.aad.size());
  }
  std::memset(base + kSlotHashResult, 0, op.hash_result_len);

  const std::span<DriverSegment> segs = segment_scratch(q);
  std::size_t n = 0;
  bool overflow = false;
  const auto push = [&](GuestAddr addr, std::uint32_t len, Writable w) {
    if (n == segs.size()) {
      overflow = true;
      return;
    }
    // Field by field: GCC copies a whole DriverSegment temporary with two
    // overlapping loads that defeat store forwarding, a stall per buffer.
    DriverSegment& s = segs[n++];
    s.addr = addr;
    s.len = len;
    s.writable = w;
  };
  const auto at = [&](std::uint64_t off) { return GuestAddr{gpa.value + off}; };
  push(at(kSlotHeader), sizeof(crypto::DataRequest), Writable::kNo);
  // Empty fields get no descriptor (rings refuse zero-length buffers); the
  // header's length fields say they are absent.
  for (const CryptoField f : layout.span()) {
    switch (f) {
      case CryptoField::kIv:
        if (!op.iv.empty()) {
          push(at(kSlotIv), static_cast<std::uint32_t>(op.iv.size()), Writable::kNo);
        }
        break;
      case CryptoField::kSrc:
        for (const auto& b : src) {
          push(b.addr, b.len, Writable::kNo);
        }
        break;
      case CryptoField::kAad:
        if (!op.aad.empty()) {
          push(at(kSlotAad), static_cast<std::uint32_t>(op.aad.size()), Writable::kNo);
        }
        break;
      case CryptoField::kDst:
        for (const auto& b : dst) {
          push(b.addr, b.len, Writable::kYes);
        }
        break;
      case CryptoField::kHashResult:
        if (op.hash_result_len != 0) {
          push(at(kSlotHashResult), op.hash_result_len, Writable::kYes);
        }
        break;
    }
  }
  push(at(kSlotStatus), 1, Writable::kYes);
  if (overflow) {
    return fail(Errc::kInvalidArgument, "request has too many buffers");
  }
  return commit_slot(q, *slot, segs.first(n), CryptoSlot{cookie, op.hash_result_len});
}

Result<void> CryptoDriver::submit_raw(std::uint16_t q, std::span<const std::byte> header,
                                      std::span<const GuestBuffer> readable,
                                      std::span<const GuestBuffer> writable, AppendStatus status,
                                      std::uint64_t cookie) noexcept {
  auto slot = next_slot(q);
  if (!slot) {
    return unexpected(slot.error());
  }
  if (header.size() > kCryptoMaxHeaderBytes) {
    return fail(Errc::kInvalidArgument, "raw header larger than a request slot holds");
  }
  VIOPOOL_TRY(check_buffers(readable));
  VIOPOOL_TRY(check_buffers(writable));
  const std::size_t nseg = (header.empty() ? 0 : 1) + readable.size() + writable.size() +
                           (status == AppendStatus::kYes ? 1 : 0);
  if (nseg == 0 || nseg > kCryptoMaxChain) {
    return fail(Errc::kInvalidArgument, "a request needs 1 to 64 buffers");
  }
  std::byte* base = slot_base(q, *slot);
  const GuestAddr gpa = slot_gpa(q, *slot);
  if (!header.empty()) {
    std::memcpy(base + kSlotHeader, header.data(), header.size());
  }
  base[kSlotStatus] = std::byte{kCryptoStatusNone};
  std::array<DriverSegment, kCryptoMaxChain> segs;
  std::size_t n = 0;
  if (!header.empty()) {
    segs[n++] = DriverSegment{GuestAddr{gpa.value + kSlotHeader},
                              static_cast<std::uint32_t>(header.size()), Writable::kNo};
  }
  for (const auto& b : readable) {
    segs[n++] = DriverSegment{b.addr, b.len, Writable::kNo};
  }
  for (const auto& b : writable) {
    segs[n++] = DriverSegment{b.addr, b.len, Writable::kYes};
  }
  if (status == AppendStatus::kYes) {
    segs[n++] = DriverSegment{GuestAddr{gpa.value + kSlotStatus}, 1, Writable::kYes};
  }
  return commit_slot(q, *slot, std::span<const DriverSegment>(segs.data(), n),
                     CryptoSlot{cookie, 0});
}

Result<std::size_t> CryptoDriver::poll(std::uint16_t q, std::span<CryptoCompletion> out) noexcept {
  return reap_slots(q, out,
                    [this, q](std::uint32_t slot, const CryptoSlot& s, std::uint32_t used_len,
                              CryptoCompletion& c) noexcept {
                      const std::byte* base = slot_base(q, slot);
                      // The device wrote the status byte and hash_result before it published
                      // the used entry; reap()'s acquire load of the used index makes them
                      // visible here.
                      c.cookie = s.cookie;
                      c.status = static_cast<std::uint8_t>(base[kSlotStatus]);
                      c.used_len = used_len;
                      c.hash_result_len = s.hash_result_len;
                      std::memcpy(c.hash_result.data(), base + kSlotHashResult, s.hash_result_len);
                    });
}

Result<std::size_t> CryptoDriver::wait(std::uint16_t q, std::span<CryptoCompletion> out,
                                       std::chrono::milliseconds limit) noexcept {
  return wait_then_poll(q, limit, [&]() noexcept { return poll(q, out); });
}

Result<void> CryptoDriver::ensure_exec_area(std::uint16_t q, std::uint64_t bytes) {
  ArenaBlock& exec_area = exec_areas_[q];
  if (exec_area && exec_area.len >= bytes) {
    return {};
  }
  // Only called on an idle queue, so no request still points into the old area.
  if (exec_area) {
    session_.arena().free(exec_area);
    exec_area = ArenaBlock{};
  }
  auto area = session_.arena().alloc(std::max(bytes, kMinExecAreaBytes), 4096);
  if (!area) {
    return unexpected(area.error());
  }
  exec_area = *area;
  return {};
}

Result<CryptoCompletion> CryptoDriver::wait_one(std::uint16_t q, std::chrono::milliseconds limit) {
  return kick_and_poll_one<CryptoCompletion>(
      q, limit, [this, q](std::span<CryptoCompletion> c) noexcept { return poll(q, c); });
}

Result<CryptoResult> CryptoDriver::execute(std::uint16_t q, const CryptoOp& op,
                                           std::span<const std::byte> src, std::uint32_t dst_len,
                                           std::chrono::milliseconds limit) {
  VIOPOOL_TRY(check_idle(q, "execute() needs an idle queue"));
  if (src.size() > UINT32_MAX) {
    return fail(Errc::kInvalidArgument, "data longer than a 32-bit length field");
  }
  VIOPOOL_TRY(ensure_exec_area(q, align64(src.size()) + align64(dst_len)));
  AreaCursor area(exec_areas_[q]);
  const auto src_off = area.take(src.size());
  const auto dst_off = area.take(dst_len);
  if (!src_off || !dst_off) {
    return fail(Errc::kInternal, "execute area too small");
  }
  if (!src.empty()) {
    std::memcpy(area.host(*src_off), src.data(), src.size());
  }
  std::memset(area.host(*dst_off), 0, dst_len);
  const GuestBuffer sb{area.gpa(*src_off), static_cast<std::uint32_t>(src.size())};
  const GuestBuffer db{area.gpa(*dst_off), dst_len};
  const auto src_bufs =
      src.empty() ? std::span<const GuestBuffer>() : std::span<const GuestBuffer>(&sb, 1);
  const auto dst_bufs =
      dst_len == 0 ? std::span<const GuestBuffer>() : std::span<const GuestBuffer>(&db, 1);
  VIOPOOL_TRY(submit(q, op, src_bufs, dst_bufs, kCryptoExecuteCookie));
  auto c = wait_one(q, limit);
  if (!c) {
    return unexpected(c.error());
  }
  CryptoResult r;
  r.status = c->status;
  r.used_len = c->used_len;
  const std::byte* d = area.host(*dst_off);
  r.dst.assign(d, d + dst_len);
  r.hash_result.assign(c->hash_result.begin(), c->hash_result.begin() + c->hash_result_len);
  return r;
}

Result<CryptoRawResult> CryptoDriver::execute_raw(
    std::uint16_t q, std::span<const std::byte> header,
    std::span<const std::span<const std::byte>> readable,
    std::span<const std::uint32_t> writable_lens, AppendStatus status,
    std::chrono::milliseconds limit) {
  VIOPOOL_TRY(check_idle(q, "execute_raw() needs an idle queue"));
  std::uint64_t bytes = 0;
  for (const auto& r : readable) {
    bytes += align64(r.size());
  }
  for (const std::uint32_t len : writable_lens) {
    bytes += align64(len);
  }
  VIOPOOL_TRY(ensure_exec_area(q, bytes));
  AreaCursor area(exec_areas_[q]);
  std::vector<GuestBuffer> in;
  std::vector<GuestBuffer> out;
  std::vector<std::uint64_t> out_offs;
  for (const auto& r : readable) {
    const auto off = area.take(r.size());
    if (r.empty() || !off) {
      return fail(Errc::kInvalidArgument, "raw segment empty or too large");
    }
    std::memcpy(area.host(*off), r.data(), r.size());
    in.push_back(GuestBuffer{area.gpa(*off), static_cast<std::uint32_t>(r.size())});
  }
  for (const std::uint32_t len : writable_lens) {
    const auto off = area.take(len);
    if (len == 0 || !off) {
      return fail(Errc::kInvalidArgument, "raw segment empty or too large");
    }
    std::memset(area.host(*off), 0xff, len);
    out.push_back(GuestBuffer{area.gpa(*off), len});
    out_offs.push_back(*off);
  }
  VIOPOOL_TRY(submit_raw(q, header, in, out, status, kCryptoExecuteCookie));
  auto c = wait_one(q, limit);
  if (!c) {
    return unexpected(c.error());
  }
  CryptoRawResult r;
  r.status = status == AppendStatus::kYes ? c->status : kCryptoStatusNone;
  r.used_len = c->used_len;
  for (std::size_t i = 0; i < out_offs.size(); ++i) {
    const std::byte* p = area.host(out_offs[i]);
    r.writable.emplace_back(p, p + writable_lens[i]);
  }
  return r;
}

}  // namespace viopool::frontend
