// virtio-crypto wire format (virtio 1.2 §5.9), the layout without
// VIRTIO_CRYPTO_F_REVISION_1 that Linux's virtio_crypto driver and QEMU use:
// 72-byte control and data request headers, variable-length fields after
// them. Shared by the device (devices/crypto) and our driver-side frontend
// (integration/frontend). Pure constants and structs; little-endian fields.
#pragma once

#include <cstddef>
#include <cstdint>

namespace viopool::crypto {

// ---- Services, opcodes ----
inline constexpr std::uint32_t kServiceCipher = 0;
inline constexpr std::uint32_t kServiceHash = 1;
inline constexpr std::uint32_t kServiceMac = 2;
inline constexpr std::uint32_t kServiceAead = 3;

constexpr std::uint32_t opcode(std::uint32_t service, std::uint32_t op) noexcept {
  return (service << 8) | op;
}
// Control queue.
inline constexpr std::uint32_t kOpCipherCreateSession = opcode(kServiceCipher, 2);
inline constexpr std::uint32_t kOpCipherDestroySession = opcode(kServiceCipher, 3);
inline constexpr std::uint32_t kOpHashCreateSession = opcode(kServiceHash, 2);
inline constexpr std::uint32_t kOpHashDestroySession = opcode(kServiceHash, 3);
inline constexpr std::uint32_t kOpMacCreateSession = opcode(kServiceMac, 2);
inline constexpr std::uint32_t kOpMacDestroySession = opcode(kServiceMac, 3);
inline constexpr std::uint32_t kOpAeadCreateSession = opcode(kServiceAead, 2);
inline constexpr std::uint32_t kOpAeadDestroySession = opcode(kServiceAead, 3);
// Data queues.
inline constexpr std::uint32_t kOpCipherEncrypt = opcode(kServiceCipher, 0);
inline constexpr std::uint32_t kOpCipherDecrypt = opcode(kServiceCipher, 1);
inline constexpr std::uint32_t kOpHash = opcode(kServiceHash, 0);
inline constexpr std::uint32_t kOpMac = opcode(kServiceMac, 0);
inline constexpr std::uint32_t kOpAeadEncrypt = opcode(kServiceAead, 0);
inline constexpr std::uint32_t kOpAeadDecrypt = opcode(kServiceAead, 1);

// ---- Algorithms (bit numbers of the config masks) ----
inline constexpr std::uint32_t kCipherNone = 0;
inline constexpr std::uint32_t kCipherAesEcb = 2;
inline constexpr std::uint32_t kCipherAesCbc = 3;
inline constexpr std::uint32_t kCipherAesCtr = 4;
inline constexpr std::uint32_t kCipherAesXts = 13;

inline constexpr std::uint32_t kHashNone = 0;
inline constexpr std::uint32_t kHashMd5 = 1;
inline constexpr std::uint32_t kHashSha1 = 2;
inline constexpr std::uint32_t kHashSha224 = 3;
inline constexpr std::uint32_t kHashSha256 = 4;
inline constexpr std::uint32_t kHashSha384 = 5;
inline constexpr std::uint32_t kHashSha512 = 6;

inline constexpr std::uint32_t kMacNone = 0;
inline constexpr std::uint32_t kMacHmacMd5 = 1;
inline constexpr std::uint32_t kMacHmacSha1 = 2;
inline constexpr std::uint32_t kMacHmacSha224 = 3;
inline constexpr std::uint32_t kMacHmacSha256 = 4;
inline constexpr std::uint32_t kMacHmacSha384 = 5;
inline constexpr std::uint32_t kMacHmacSha512 = 6;
inline constexpr std::uint32_t kMacCmacAes = 26;

inline constexpr std::uint32_t kAeadNone = 0;
inline constexpr std::uint32_t kAeadGcm = 1;
inline constexpr std::uint32_t kAeadCcm = 2;
inline constexpr std::uint32_t kAeadChacha20Poly1305 = 3;

// Cipher / AEAD direction (VIRTIO_CRYPTO_OP_*).
inline constexpr std::uint32_t kDirEncrypt = 1;
inline constexpr std::uint32_t kDirDecrypt = 2;

// Symmetric op types (VIRTIO_CRYPTO_SYM_OP_*).
inline constexpr std::uint32_t kSymOpNone = 0;
inline constexpr std::uint32_t kSymOpCipher = 1;
inline constexpr std::uint32_t kSymOpChain = 2;

// Algorithm chaining (VIRTIO_CRYPTO_SYM_ALG_CHAIN_ORDER_*, _HASH_MODE_*).
inline constexpr std::uint32_t kChainHashThenCipher = 1;
inline constexpr std::uint32_t kChainCipherThenHash = 2;
inline constexpr std::uint32_t kHashModePlain = 1;
inline constexpr std::uint32_t kHashModeAuth = 2;
inline constexpr std::uint32_t kHashModeNested = 3;

// ---- Status (VIRTIO_CRYPTO_*) ----
inline constexpr std::uint8_t kStatusOk = 0;
inline constexpr std::uint8_t kStatusErr = 1;
inline constexpr std::uint8_t kStatusBadMsg = 2;
inline constexpr std::uint8_t kStatusNotSupp = 3;
inline constexpr std::uint8_t kStatusInvSess = 4;
inline constexpr std::uint8_t kStatusNoSpc = 5;
const char* status_name(std::uint8_t s) noexcept;

// ---- Feature bits ----
inline constexpr unsigned kFeatRevision1 = 0;  // not offered: the 72-byte layout below

inline constexpr std::uint32_t kConfigStatusHwReady = 1;

// ---- Config space (struct virtio_crypto_config) ----
struct Config {
  std::uint32_t status;
  std::uint32_t max_dataqueues;
  std::uint32_t crypto_services;  // bit per kService*
  std::uint32_t cipher_algo_l;    // bit per kCipher* (0..31)
  std::uint32_t cipher_algo_h;
  std::uint32_t hash_algo;
  std::uint32_t mac_algo_l;
  std::uint32_t mac_algo_h;
  std::uint32_t aead_algo;
  std::uint32_t max_cipher_key_len;
  std::uint32_t max_auth_key_len;
  std::uint32_t akcipher_algo;
  std::uint64_t max_size;
};
static_assert(sizeof(Config) == 56);
static_assert(offsetof(Config, max_size) == 48);

// ---- Control queue ----
struct CtrlHeader {
  std::uint32_t opcode;
  std::uint32_t algo;
  std::uint32_t flag;
  std::uint32_t queue_id;
};
static_assert(sizeof(CtrlHeader) == 16);

struct CipherSessionPara {
  std::uint32_t algo;
  std::uint32_t keylen;
  std::uint32_t op;  // kDirEncrypt / kDirDecrypt
  std::uint32_t padding;
};
static_assert(sizeof(CipherSessionPara) == 16);

struct HashSessionPara {
  std::uint32_t algo;
  std::uint32_t hash_result_len;
  std::uint8_t padding[8];
};
static_assert(sizeof(HashSessionPara) == 16);

struct MacSessionPara {
  std::uint32_t algo;
  std::uint32_t hash_result_len;
  std::uint32_t auth_key_len;
  std::uint32_t padding;
};
static_assert(sizeof(MacSessionPara) == 16);

struct AeadSessionPara {
  std::uint32_t algo;
  std::uint32_t key_len;
  std::uint32_t hash_result_len;  // tag length
  std::uint32_t aad_len;
  std::uint32_t op;
  std::uint32_t padding;
};
static_assert(sizeof(AeadSessionPara) == 24);

struct ChainSessionPara {
  std::uint32_t alg_chain_order;
  std::uint32_t hash_mode;
  CipherSessionPara cipher;
  union {
    HashSessionPara hash;
    MacSessionPara mac;
  } u;
  std::uint32_t aad_len;
  std::uint32_t padding;
};
static_assert(sizeof(ChainSessionPara) == 48);

// sym_create_session: op_type follows a 48-byte union.
struct SymCreateSession {
  union {
    CipherSessionPara cipher;
    ChainSessionPara chain;
    std::uint8_t padding[48];
  } u;
  std::uint32_t op_type;  // kSymOp*
  std::uint32_t padding;
};
static_assert(sizeof(SymCreateSession) == 56);
static_assert(offsetof(SymCreateSession, op_type) == 48);

struct CtrlRequest {
  CtrlHeader header;
  union {
    SymCreateSession sym;
    HashSessionPara hash;
    MacSessionPara mac;
    AeadSessionPara aead;
    std::uint64_t destroy_session_id;
    std::uint8_t padding[56];
  } u;
};
static_assert(sizeof(CtrlRequest) == 72);
// After CtrlRequest, device-readable: the key(s) (cipher key, then the auth
// key for a chain with hash_mode AUTH). Device-writable: SessionInput on
// create, one status byte on destroy.
struct SessionInput {
  std::uint64_t session_id;
  std::uint32_t status;
  std::uint32_t padding;
};
static_assert(sizeof(SessionInput) == 16);

// ---- Data queues ----
struct OpHeader {
  std::uint32_t opcode;
  std::uint32_t algo;
  std::uint64_t session_id;
  std::uint32_t flag;
  std::uint32_t padding;
};
static_assert(sizeof(OpHeader) == 24);

struct CipherPara {
  std::uint32_t iv_len;
  std::uint32_t src_data_len;
  std::uint32_t dst_data_len;
  std::uint32_t padding;
};
static_assert(sizeof(CipherPara) == 16);

struct ChainDataPara {
  std::uint32_t iv_len;
  std::uint32_t src_data_len;
  std::uint32_t dst_data_len;
  std::uint32_t cipher_start_src_offset;
  std::uint32_t len_to_cipher;
  std::uint32_t hash_start_src_offset;
  std::uint32_t len_to_hash;
  std::uint32_t aad_len;
  std::uint32_t hash_result_len;
  std::uint32_t reserved;
};
static_assert(sizeof(ChainDataPara) == 40);

struct HashPara {
  std::uint32_t src_data_len;
  std::uint32_t hash_result_len;
};
static_assert(sizeof(HashPara) == 8);

struct AeadPara {
  std::uint32_t iv_len;
  std::uint32_t aad_len;
  std::uint32_t src_data_len;
  std::uint32_t dst_data_len;
};
static_assert(sizeof(AeadPara) == 16);

struct SymDataReq {
  union {
    CipherPara cipher;
    ChainDataPara chain;
    std::uint8_t padding[40];
  } u;
  std::uint32_t op_type;  // kSymOp*
  std::uint32_t padding;
};
static_assert(sizeof(SymDataReq) == 48);

struct DataRequest {
  OpHeader header;
  union {
    SymDataReq sym;
    HashPara hash;  // hash and MAC
    AeadPara aead;
    std::uint8_t padding[48];
  } u;
};
static_assert(sizeof(DataRequest) == 72);
// Variable-length fields after DataRequest, device-readable then -writable,
// then one status byte (struct virtio_crypto_inhdr), virtio 1.2 §5.9.7.2:
//   cipher:   iv, src        | dst, status
//   chain:    iv, src, aad   | dst, hash_result, status
//   hash/MAC: src            | hash_result, status
//   AEAD:     iv, src, aad   | dst, status
// AEAD encrypt writes the ciphertext and then the tag into dst (dst_data_len
// >= src_data_len + tag length); decrypt takes src = ciphertext || tag. The
// tag length is the session's (Linux's header has no per-request tag_len).

}  // namespace viopool::crypto
