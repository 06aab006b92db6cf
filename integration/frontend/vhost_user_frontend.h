// The frontend (driver / VMM) side of the vhost-user protocol over a unix
// socket: the messages QEMU sends to a vhost-user backend, each bounded by a
// timeout. blk_driver.h drives it; tests use it directly to poke backends. The
// wire structs below are ours (QEMU docs/interop/vhost-user.rst), not copied.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "vhost-backend/base/result.h"
#include "vhost-backend/base/types.h"

namespace viopool::frontend {

// ---- Wire format (vhost-user.rst, "Message Specification") ----
namespace vhost_user {

// Front-end message types this frontend sends. 0 (NONE) is never sent: some
// backends (libvhost-user) exit on it.
enum class Request : std::uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kGetConfig = 24,
  kCreateCryptoSession = 26,
  kCloseCryptoSession = 27,
};
const char* request_name(Request r) noexcept;

// Header flags: bits 0-1 version (always 1), bit 2 reply, bit 3 need_reply.
inline constexpr std::uint32_t kFlagVersion = 0x1;
inline constexpr std::uint32_t kFlagVersionMask = 0x3;
inline constexpr std::uint32_t kFlagReply = 0x4;
inline constexpr std::uint32_t kFlagNeedReply = 0x8;

// Protocol feature bit numbers (VHOST_USER_PROTOCOL_F_*).
inline constexpr unsigned kProtocolMq = 0;
inline constexpr unsigned kProtocolLogShmfd = 1;
inline constexpr unsigned kProtocolReplyAck = 3;
inline constexpr unsigned kProtocolBackendReq = 5;
inline constexpr unsigned kProtocolCryptoSession = 7;
inline constexpr unsigned kProtocolConfig = 9;
inline constexpr unsigned kProtocolInflightShmfd = 12;
inline constexpr unsigned kProtocolConfigureMemSlots = 15;
// Name of a protocol feature bit ("MQ", "REPLY_ACK", ...) or nullptr.
const char* protocol_feature_name(unsigned bit) noexcept;

// SET_VRING_KICK / SET_VRING_CALL payload: the vring index in bits 0-7, bit 8
// set when no fd is passed (the ring is then polled).
inline constexpr std::uint64_t kVringIndexMask = 0xff;
inline constexpr std::uint64_t kVringNoFd = 0x100;

// At most this many regions (and fds) in SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS).
inline constexpr std::size_t kMaxMemRegions = 8;
// Largest device config space GET_CONFIG may carry (VHOST_USER_MAX_CONFIG_SIZE).
inline constexpr std::uint32_t kMaxConfigBytes = 256;

struct [[gnu::packed]] MsgHeader {
  std::uint32_t request;
  std::uint32_t flags;
  std::uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(MsgHeader) == 12);
static_assert(offsetof(MsgHeader, flags) == 4);
static_assert(offsetof(MsgHeader, size) == 8);

// SET_VRING_NUM / SET_VRING_BASE / GET_VRING_BASE / SET_VRING_ENABLE.
struct VringState {
  std::uint32_t index;
  std::uint32_t num;
};
static_assert(sizeof(VringState) == 8);
static_assert(offsetof(VringState, num) == 4);

// SET_VRING_ADDR. The three ring addresses are frontend virtual addresses
// ("user addresses"), translated by the backend through the memory table's
// userspace_addr; note the order: descriptors, used, then available.
struct VringAddr {
  std::uint32_t index;
  std::uint32_t flags;  // bit 0: VHOST_VRING_F_LOG (dirty logging of the used ring)
  std::uint64_t desc_user_addr;
  std::uint64_t used_user_addr;
  std::uint64_t avail_user_addr;
  std::uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);
static_assert(offsetof(VringAddr, desc_user_addr) == 8);
static_assert(offsetof(VringAddr, used_user_addr) == 16);
static_assert(offsetof(VringAddr, avail_user_addr) == 24);
static_assert(offsetof(VringAddr, log_guest_addr) == 32);

struct MemRegion {
  std::uint64_t guest_phys_addr;
  std::uint64_t memory_size;
  std::uint64_t userspace_addr;  // where the frontend has the region mapped
  std::uint64_t mmap_offset;     // offset of the region in the fd passed along
};
static_assert(sizeof(MemRegion) == 32);
static_assert(offsetof(MemRegion, userspace_addr) == 16);

struct MemTable {
  std::uint32_t num_regions;
  std::uint32_t padding;
  MemRegion regions[kMaxMemRegions];
};
static_assert(sizeof(MemTable) == 8 + 32 * kMaxMemRegions);
static_assert(offsetof(MemTable, regions) == 8);

// GET_CONFIG: this header, then `size` bytes of config space.
struct ConfigHeader {
  std::uint32_t offset;
  std::uint32_t size;
  std::uint32_t flags;  // 0: a plain read (VHOST_SET_CONFIG_TYPE_FRONTEND)
};
static_assert(sizeof(ConfigHeader) == 12);

// CREATE_CRYPTO_SESSION payload (QEMU's VhostUserCryptoSession): int64
// session_id, the session description, a 64-byte cipher key at 56 and a
// 512-byte auth key at 120.
inline constexpr std::uint32_t kCryptoSessionBytes = 632;
// Largest payload we send or accept in a reply: a crypto session.
inline constexpr std::uint32_t kMaxPayload = kCryptoSessionBytes;
static_assert(kMaxPayload >= sizeof(MemTable));
static_assert(kMaxPayload >= sizeof(ConfigHeader) + kMaxConfigBytes);

}  // namespace vhost_user

struct FrontendOptions {
  // Bound on each request/reply exchange (send, then wait for the reply).
  std::chrono::milliseconds timeout{5000};
  // connect() retries a socket that is missing or refuses connections for this
  // long, for backends that are still starting; 0 tries once.
  std::chrono::milliseconds connect_timeout{0};
};

// One region of the memory table, with the fd that backs it.
struct MemTableEntry {
  GuestAddr guest_phys_addr;
  std::uint64_t size = 0;
  std::uint64_t userspace_addr = 0;
  std::uint64_t mmap_offset = 0;
  int fd = -1;  // borrowed; sent with SCM_RIGHTS
};

// Typed boolean for SET_VRING_ENABLE.
enum class VringEnable : bool { kNo = false, kYes = true };

// A connection to one backend. Control path only: every call blocks for at
// most options.timeout and is made from one thread at a time.
//
// Error contract: kIo when the socket fails or the backend closes it, kTimeout
// when no (complete) reply arrives in time, kProtocol for a reply that breaks
// the protocol (wrong type, flags or size) or a REPLY_ACK nack, kUnsupported
// for a request whose protocol feature was not negotiated. After kIo, kTimeout
// or a malformed reply the stream can no longer be trusted: the frontend is
// broken and every later call fails at once. last_error_detail() names the
// request that failed, for messages to people.
class VhostUserFrontend {
 public:
  // Connects to the backend listening on `socket_path`.
  static Result<std::unique_ptr<VhostUserFrontend>> connect(const std::string& socket_path,
                                                            const FrontendOptions& options);
  ~VhostUserFrontend();
  VhostUserFrontend(const VhostUserFrontend&) = delete;
  VhostUserFrontend& operator=(const VhostUserFrontend&) = delete;

  // Negotiation. set_protocol_features records what was acked; from then on
  // REPLY_ACK (if acked) makes every request without a reply of its own wait
  // for the backend's ack, so errors surface at the request that caused them.
  Result<void> set_owner();
  Result<std::uint64_t> get_features();
  Result<void> set_features(std::uint64_t features);
  Result<std::uint64_t> get_protocol_features();
  Result<void> set_protocol_features(std::uint64_t features);
  // Needs MQ negotiated.
  Result<std::uint32_t> get_queue_num();
  // Reads config space [offset, offset + out.size()) into `out` (<= 256 bytes).
  // Needs CONFIG negotiated. kProtocol if the backend refuses (empty reply) or
  // answers with another size. qemu-storage-daemon ignores `offset`: read from 0.
  Result<void> get_config(std::uint32_t offset, std::span<std::byte> out);

  // QEMU's cryptodev-vhost-user session messages. Create sends the
  // kCryptoSessionBytes payload and returns the reply's session_id (negative:
  // the backend refused); close expects no reply, as QEMU does. Need the
  // CRYPTO_SESSION protocol feature negotiated.
  Result<std::int64_t> create_crypto_session(std::span<const std::byte> payload);
  Result<void> close_crypto_session(std::uint64_t session_id);

  // Memory and rings. The fds are borrowed: the backend gets its own copies.
  Result<void> set_mem_table(std::span<const MemTableEntry> regions);
  Result<void> set_vring_num(std::uint32_t index, std::uint32_t num);
  Result<void> set_vring_base(std::uint32_t index, std::uint32_t base);
  Result<void> set_vring_addr(const vhost_user::VringAddr& addr);
  // fd < 0 sends the no-fd flag instead of an fd.
  Result<void> set_vring_kick(std::uint32_t index, int fd);
  Result<void> set_vring_call(std::uint32_t index, int fd);
  // Needs protocol features negotiated (VHOST_USER_F_PROTOCOL_FEATURES).
  Result<void> set_vring_enable(std::uint32_t index, VringEnable enable);
  // Stops the ring and returns the backend's next avail index for it.
  Result<std::uint32_t> get_vring_base(std::uint32_t index);

  // A round trip that proves the backend processed everything sent before
  // (GET_FEATURES), for backends without REPLY_ACK.
  Result<void> sync();

  std::uint64_t protocol_features() const noexcept { return protocol_features_; }
  bool reply_ack() const noexcept;
  bool broken() const noexcept { return broken_; }
  int fd() const noexcept { return fd_; }
  // "<REQUEST>: <what happened>" for the last failure, "" if none.
  const std::string& last_error_detail() const noexcept { return last_error_; }

 private:
  VhostUserFrontend(int fd, const FrontendOptions& options) noexcept;

  // Sends one message; waits for REPLY_ACK when negotiated and `ackable`.
  Result<void> request_no_reply(vhost_user::Request req, const void* payload, std::uint32_t size,
                                std::span<const int> fds, bool ackable);
  // Sends one message and reads its reply payload into `reply` (size in
  // `reply_size`, at most reply.size()).
  Result<void> request_with_reply(vhost_user::Request req, const void* payload, std::uint32_t size,
                                  std::span<std::byte> reply, std::uint32_t& reply_size);
  Result<void> send_message(vhost_user::Request req, std::uint32_t flags, const void* payload,
                            std::uint32_t size, std::span<const int> fds,
                            std::chrono::steady_clock::time_point deadline);
  Result<void> recv_reply(vhost_user::Request req, std::span<std::byte> reply,
                          std::uint32_t& reply_size,
                          std::chrono::steady_clock::time_point deadline);
  Result<void> read_exact(std::byte* dst, std::size_t len,
                          std::chrono::steady_clock::time_point deadline);
  Result<std::uint64_t> get_u64(vhost_user::Request req);
  // Records `e` for `req`, marks the connection broken if `fatal`, returns e.
  unexpected failed(vhost_user::Request req, Error e, bool fatal);

  int fd_ = -1;
  FrontendOptions options_;
  std::uint64_t protocol_features_ = 0;
  bool broken_ = false;
  Error broken_error_{};
  std::string last_error_;
};

}  // namespace viopool::frontend
