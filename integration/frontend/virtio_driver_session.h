// The device-independent half of a virtio driver over vhost-user: connection,
// feature and protocol-feature negotiation, the config space read, guest
// memory (SET_MEM_TABLE) and any set of virtqueues (SET_VRING_*), then
// GET_VRING_BASE on stop. blk_driver.h and crypto_driver.h each own one and add
// their device's requests; vhost_user_frontend.h carries the messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "integration/frontend/vhost_user_frontend.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/virtio/features.h"

namespace viopool::frontend {

struct DeviceSessionOptions {
  std::string socket_path;
  ArenaOptions arena;
  FrontendOptions frontend;
  Indirect use_indirect = Indirect::kNo;  // used only if INDIRECT_DESC is negotiated
  // kPacked acks VIRTIO_F_RING_PACKED; negotiate() fails with kUnsupported if
  // the backend does not offer it. kSplit never acks it, even when offered.
  RingLayout ring_layout = RingLayout::kSplit;
  // Feature bits never acked even when offered.
  virtio::FeatureSet exclude;
};

// The little-endian field of type T at byte `off` of a config space read
// with DeviceSession::read_config(), or 0 when `raw` is too short (the device
// drivers decode their config structs with it).
template <typename T>
T config_le(std::span<const std::byte> raw, std::size_t off) noexcept {
  T v{};
  if (off + sizeof(T) <= raw.size()) {
    std::memcpy(&v, raw.data() + off, sizeof(T));  // little-endian host (virtio_defs.h)
  }
  return v;
}

// Per-ring parameters of setup_queues().
struct SessionQueueOptions {
  std::uint16_t size = 256;
  // Entries of each indirect table (the longest chain the driver builds).
  std::uint16_t max_indirect = 132;
};

// One vhost-user connection and the rings set up on it, driven in the order
// QEMU's vhost-user devices use:
//   open()          SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ,
//                   REPLY_ACK, CONFIG), GET_QUEUE_NUM when MQ was offered
//   read_config()   GET_CONFIG (the device driver decodes and validates it)
//   negotiate()     SET_FEATURES with the wanted bits the device offers
//   setup_memory()  the GuestMemoryArena and SET_MEM_TABLE
//   setup_queues()  per ring SET_VRING_NUM/BASE/ADDR/CALL/KICK, then
//                   SET_VRING_ENABLE for each, then a sync without REPLY_ACK
// Each step takes `why`, which receives a message naming the step (and the
// vhost-user request) that failed. After a failed step the session is only
// good for destruction.
//
// Ownership and threads: all of these are control-path calls from one thread
// at a time that block on the socket (each exchange bounded by
// options.frontend.timeout). The session owns the frontend, the arena and the
// DriverQueues; the queues are destroyed before the arena.
class DeviceSession {
 public:
  DeviceSession() = default;
  // Calls stop() if setup_queues() completed and stop() was not called.
  ~DeviceSession();
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;

  // kUnsupported when the device lacks VERSION_1, the backend lacks protocol
  // features or the CONFIG protocol feature; the frontend's errors otherwise.
  Result<void> open(const DeviceSessionOptions& options, std::string* why);
  // GET_CONFIG of out.size() bytes from offset 0 (qemu-storage-daemon ignores
  // offsets). Needs open().
  Result<void> read_config(std::span<std::byte> out, std::string* why);
  // Acks every bit of `wanted` the device offers and options.exclude does not
  // name, plus RING_PACKED when asked for and VHOST_USER_F_PROTOCOL_FEATURES.
  Result<void> negotiate(std::span<const unsigned> wanted, std::string* why);
  Result<void> setup_memory(std::string* why);
  // Called for each ring right after its DriverQueue is created and before
  // its SET_VRING_* messages, so a driver can allocate per-queue memory (its
  // request slots) next to the ring. `i` is the position in `ring_indices`.
  // On failure it should fill `why` itself (failed_step() helps).
  using QueueHook = std::function<Result<void>(std::size_t i, DriverQueue& vq, std::string* why)>;
  // Creates one DriverQueue per entry of `ring_indices` (any vring indices,
  // in any order, e.g. crypto's data queues 0..n-1 and its control queue at
  // max_dataqueues) with the negotiated layout, EVENT_IDX and indirect
  // setting, interrupts off (busy-polling), and sets up and enables the rings.
  Result<void> setup_queues(std::span<const std::uint16_t> ring_indices,
                            const SessionQueueOptions& queue_options, const QueueHook& hook,
                            std::string* why);

  // Disables every ring set up (SET_VRING_ENABLE 0), then stops each with
  // GET_VRING_BASE and returns the bases the backend reported, in the order of
  // setup_queues()'s `ring_indices` (split: its next avail index; packed:
  // offset | wrap << 15). Requests still in flight are abandoned. Idempotent;
  // later calls return the first result.
  Result<std::vector<std::uint32_t>> stop();

  // Records "<step>: <detail>" in `why` (the frontend's detail naming the
  // request when it has one) and returns `e`.
  unexpected failed_step(std::string* why, const char* step, const Error& e) const;

  // ---- Negotiated state ----
  virtio::FeatureSet offered_features() const noexcept { return offered_; }
  virtio::FeatureSet features() const noexcept { return acked_; }
  bool has_feature(unsigned bit) const noexcept { return acked_.has(bit); }
  RingLayout ring_layout() const noexcept {
    return acked_.has(virtio::kFeatureRingPacked) ? RingLayout::kPacked : RingLayout::kSplit;
  }
  std::uint64_t offered_protocol_features() const noexcept { return offered_protocol_; }
  std::uint64_t protocol_features() const noexcept { return frontend_->protocol_features(); }
  bool has_protocol_feature(unsigned bit) const noexcept {
    return frontend_ != nullptr && ((frontend_->protocol_features() >> bit) & 1) != 0;
  }
  // GET_QUEUE_NUM's answer, or 1 when MQ was not offered.
  std::uint32_t backend_queue_count() const noexcept { return backend_queues_; }
  GuestMemoryArena& arena() noexcept { return *arena_; }
  const GuestMemoryArena& arena() const noexcept { return *arena_; }
  VhostUserFrontend& frontend() noexcept { return *frontend_; }
  // The i-th ring of setup_queues()'s list and its vring index.
  std::size_t queue_count() const noexcept { return queues_.size(); }
  DriverQueue& queue(std::size_t i) noexcept { return *queues_[i]; }
  const DriverQueue& queue(std::size_t i) const noexcept { return *queues_[i]; }
  std::uint16_t ring_index(std::size_t i) const noexcept { return ring_indices_[i]; }

 private:
  DeviceSessionOptions options_;
  std::unique_ptr<VhostUserFrontend> frontend_;
  std::unique_ptr<GuestMemoryArena> arena_;
  // Declared after arena_: destroyed first, as they give ring memory back to it.
  std::vector<std::unique_ptr<DriverQueue>> queues_;
  std::vector<std::uint16_t> ring_indices_;
  virtio::FeatureSet offered_;
  virtio::FeatureSet acked_;
  std::uint64_t offered_protocol_ = 0;
  std::uint32_t backend_queues_ = 1;
  bool started_ = false;  // setup_queues() completed: stop() has rings to stop
  std::optional<Result<std::vector<std::uint32_t>>> stop_result_;
};

}  // namespace viopool::frontend
