// virtio-crypto requests (virtio 1.2 §5.9.7): the control-queue parser that
// turns a chain into a session create/destroy command, and the data-queue
// parser that turns a chain into a CryptoJob for the backend. The guest is the
// adversary: every length is checked against the chain and the limits before
// use, and a bad request is answered with BADMSG / NOTSUPP / INVSESS without
// affecting any other. Pure C++: no DPDK.
#pragma once

#include <cstdint>

#include "vhost-backend/devices/crypto/crypto_backend.h"
#include "vhost-backend/devices/crypto/virtio_crypto.h"
#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/split_queue.h"

namespace viopool::crypto {

// Largest request payload (config max_size): src, and dst without an AEAD
// tag. An mbuf holds at most 64 KiB - 1 bytes, so a field always fits one.
inline constexpr std::uint32_t kMaxRequestBytes = 32 * 1024;

// ---- Control queue ----

enum class CtrlKind : std::uint8_t { kCreate, kDestroy, kInvalid };

struct CtrlCommand {
  CtrlKind kind = CtrlKind::kInvalid;
  SessionParams params;             // kCreate
  std::uint64_t session_id = 0;     // kDestroy
  std::uint8_t status = kStatusOk;  // kInvalid: the answer
  const char* why = "";             // kInvalid: for the log
  // Where the answer goes: a SessionInput (create) or one status byte (destroy).
  bool answer_is_session_input = false;
};

// Parses a control request. Never fails: a malformed one becomes kInvalid
// with its status. Keys are copied out of guest memory.
void parse_ctrl(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                CtrlCommand& out) noexcept;

// Checks create parameters against what the engine can do: kStatusOk, or
// NOTSUPP (algorithm or combination the engine lacks) / BADMSG (key, digest
// or AAD size it does not take). `why` names the problem.
std::uint8_t validate_session(const SessionParams& p, const CryptoCapabilities& caps,
                              const char*& why) noexcept;

// Writes the answer into the chain's writable part; returns the used length.
// Create: SessionInput{session_id, status}; destroy (and anything whose
// writable part is shorter than a SessionInput): one status byte.
std::uint32_t complete_ctrl(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                            const CtrlCommand& cmd, std::uint8_t status,
                            std::uint64_t session_id) noexcept;

// ---- vhost-user session messages (QEMU cryptodev-vhost-user) ----

// VHOST_USER_CREATE_CRYPTO_SESSION payload: 632 bytes, int64 session_id at 0
// (0 in the request; the reply carries the id, or a negative value on
// failure), the session description, then the cipher key at 56 (64 bytes)
// and the auth key at 120 (512 bytes). QEMU 7.1+ starts the description at
// 8 with cipher_alg; QEMU up to 7.0 and DPDK's rte_vhost_crypto have a u32
// op_code there first, moving every field 4 bytes later. Both are accepted.
inline constexpr std::size_t kVhostSessionBytes = 632;
inline constexpr std::size_t kVhostSessionCipherKeyOffset = 56;
inline constexpr std::size_t kVhostSessionAuthKeyOffset = 120;
inline constexpr std::size_t kVhostSessionAuthKeyMax = 512;

// Parses a create payload into session parameters: kStatusOk, or the
// status to refuse with (`why` says why). Only CIPHER and ALGORITHM_CHAINING
// sessions travel this way.
std::uint8_t parse_vhost_user_session(const std::uint8_t* payload, std::size_t size,
                                      SessionParams& p, const char*& why) noexcept;

// ---- Data queues ----

enum class DataReject : std::uint8_t {
  kNone,
  kNoStatus,     // no writable byte for the status: completed with used length 0
  kBadChain,     // malformed chain (reported by the queue)
  kBadHeader,    // header missing or short
  kBadLength,    // a length beyond the chain, the limits or what the op needs
  kBadAddress,   // a buffer outside guest memory or too fragmented
  kUnsupported,  // unknown opcode / op type
  kBadSession,   // unknown session, or one of another kind or direction
};
const char* to_string(DataReject r) noexcept;

// One request slot: the parser fills it, the device binds the session, the
// backend runs `job`, complete_data() writes the status.
struct CryptoRequest {
  std::uint16_t head = 0;
  std::uint16_t desc_count = 1;
  std::uint32_t opcode = 0;
  std::uint64_t session_id = 0;
  SessionKind kind = SessionKind::kCipher;
  bool encrypt = true;
  // Lengths from the request header.
  std::uint32_t src_len = 0;
  std::uint32_t dst_len = 0;
  std::uint32_t aad_len = 0;
  std::uint32_t hash_len = 0;
  std::byte* status = nullptr;  // host pointer to the status byte; null: kNoStatus
  std::uint32_t used_len = 0;   // writable bytes up to and including the status
  bool needs_op = false;        // false: complete at once with immediate_status
  std::uint8_t immediate_status = kStatusOk;
  DataReject reject = DataReject::kNone;
  CryptoJob job;
  std::uint64_t start_ns = 0;
  void* session_ref = nullptr;  // the device's session entry while in flight
};

// Parses a data request up to what needs the session. Never fails.
void parse_data(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                CryptoRequest& req) noexcept;

// What the device knows of a session when binding a request to it.
struct SessionInfo {
  SessionParams params;  // keys not needed here, but kept for the kind
  BackendSession backend = nullptr;
};

// Checks a parsed request against its session and the engine (direction,
// IV / digest / AAD sizes, block alignment, dst room) and fills the job's
// session-dependent fields. Returns kStatusOk or the status to answer with.
std::uint8_t bind_session(CryptoRequest& req, const SessionInfo& s, const CryptoCapabilities& caps,
                          const char*& why) noexcept;

// Whether a job built elsewhere (a pooled slot's op off the fabric) fits its
// session, its engine and its own buffers, which the engine trusts: IV,
// AAD and digest of the session's sizes, the session's direction, data and
// cipher / hash ranges within src, dst at least as long as src, whole cipher
// blocks where the mode needs them, nothing beyond max_size. nullptr if so,
// else the reason.
const char* check_job(const CryptoJob& j, const SessionParams& p,
                      const CryptoCapabilities& caps) noexcept;

// Writes the status byte (if there is one); returns the used length.
std::uint32_t complete_data(CryptoRequest& req, std::uint8_t status) noexcept;

}  // namespace viopool::crypto
