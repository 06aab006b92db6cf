// The bridge between rte_vhost's per-process C callbacks and viopool's device
// objects: a socket path → VhostClient table. rte_vhost calls back with a vid
// only, so one table per process is unavoidable; everything else is owned.
// This directory is the only code that includes rte_vhost.h.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "vhost-backend/base/result.h"

namespace viopool::vhost {

// A vhost-user message as rte_vhost received it (vhost-user spec, "Message
// Specification"): a packed 12-byte header, then `size` payload bytes. The
// payload is not aligned: read and write it with memcpy (get/put below).
struct VhostUserMessage {
  std::uint32_t request;
  std::uint32_t flags;
  std::uint32_t size;
  // Followed by the payload (rte_vhost's buffer holds up to kMaxPayload bytes).
  static constexpr std::uint32_t kMaxPayload = 4096;

  char* payload() noexcept { return reinterpret_cast<char*>(this) + 12; }
  template <typename T>
  T get(std::size_t offset = 0) noexcept;
  template <typename T>
  void put(const T& v, std::size_t offset = 0) noexcept;
};
static_assert(sizeof(VhostUserMessage) == 12);

inline constexpr std::uint32_t kVhostUserGetFeatures = 1;
inline constexpr std::uint32_t kVhostUserSetFeatures = 2;
inline constexpr std::uint32_t kVhostUserGetQueueNum = 17;
inline constexpr std::uint32_t kVhostUserGetConfig = 24;
inline constexpr std::uint32_t kVhostUserSetConfig = 25;
inline constexpr std::uint32_t kVhostUserCreateCryptoSession = 26;
inline constexpr std::uint32_t kVhostUserCloseCryptoSession = 27;

// vhost-user protocol feature bits (VHOST_USER_PROTOCOL_F_*).
inline constexpr unsigned kProtoMq = 0;
inline constexpr unsigned kProtoRarp = 2;
inline constexpr unsigned kProtoReplyAck = 3;
inline constexpr unsigned kProtoNetMtu = 4;
inline constexpr unsigned kProtoCryptoSession = 7;
inline constexpr unsigned kProtoPagefault = 8;
inline constexpr unsigned kProtoConfig = 9;
inline constexpr unsigned kProtoHostNotifier = 11;
inline constexpr unsigned kProtoStatus = 16;
constexpr std::uint64_t proto_bit(unsigned b) noexcept { return std::uint64_t{1} << b; }

// What a pre-message hook did with a message (maps to rte_vhost_msg_result).
enum class MessageResult : std::uint8_t {
  kNotHandled,  // let rte_vhost handle it
  kHandled,     // done, no reply (a REPLY_ACK is still sent if requested)
  kReply,       // the message was rewritten into the reply; send it
  kError,       // refuse: rte_vhost closes the connection
};

// Implemented by a device. Called on rte_vhost's message thread (or on the
// thread that unregisters, for destroy_*). Must not call back into the
// registry. Return 0 on success as rte_vhost expects.
class VhostClient {
 public:
  virtual ~VhostClient() = default;
  // Every message of a connection, before rte_vhost handles it (from the
  // first one on: the hook is installed in new_connection). The frontend is
  // untrusted: validate `size` before reading the payload.
  virtual MessageResult on_message(int vid, VhostUserMessage& m) noexcept = 0;
  virtual int on_new_connection(int vid) noexcept = 0;
  virtual void on_destroy_connection(int vid) noexcept = 0;
  virtual int on_new_device(int vid) noexcept = 0;
  virtual void on_destroy_device(int vid) noexcept = 0;
  virtual int on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept = 0;
};

enum class SocketRole : std::uint8_t { kServer, kClient };

template <typename T>
T VhostUserMessage::get(std::size_t offset) noexcept {
  T v;
  std::memcpy(&v, payload() + offset, sizeof(T));
  return v;
}
template <typename T>
void VhostUserMessage::put(const T& v, std::size_t offset) noexcept {
  std::memcpy(payload() + offset, &v, sizeof(T));
}

struct VhostSocketOptions {
  std::string path;
  SocketRole role = SocketRole::kServer;
  // Offered to the frontend. With builtin_net, rte_vhost may support fewer
  // bits; register_socket() reports what is really offered.
  std::uint64_t features = 0;
  bool builtin_net = true;              // rte_vhost's virtio-net data path (stats on)
  // Protocol feature bits to add to / remove from rte_vhost's defaults.
  std::uint64_t protocol_features_add = 0;
  std::uint64_t protocol_features_remove = 0;
};

// Control thread. Registers the socket and starts serving it (server: listen,
// client: connect and reconnect every second until the frontend is there).
// Returns the feature bits actually offered.
Result<std::uint64_t> register_socket(const VhostSocketOptions& o, VhostClient* client,
                                      std::string& why);
// Control thread. Closes the connection (destroy callbacks run first, on this
// thread) and forgets the socket. Idempotent.
void unregister_socket(const std::string& path) noexcept;

}  // namespace viopool::vhost
