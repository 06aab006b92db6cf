// A virtio-crypto device served over vhost-user. viopool walks the rings
// itself (virtio/*_queue via VhostRings): data queues 0..N-1 carry symmetric
// ops to a CryptoBackend in bursts, the control queue at index N creates and
// destroys sessions. QEMU's cryptodev-vhost-user keeps the control queue for
// itself and sends VHOST_USER_CREATE/CLOSE_CRYPTO_SESSION instead; both paths
// share one session table. The config space (GET_CONFIG) advertises what the
// backing engine's capabilities allow.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "vhost-backend/devices/crypto/crypto_backend.h"
#include "vhost-backend/devices/crypto/crypto_device.h"
#include "vhost-backend/devices/crypto/crypto_request.h"
#include "vhost-backend/devices/crypto/crypto_stats.h"
#include "vhost-backend/vhost/vhost_ring_device.h"

namespace viopool::vhost {

class VhostCryptoDevice final : public VhostRingDevice {
 public:
  static constexpr std::uint32_t kBurst = 32;
  static constexpr std::uint32_t kMaxSlots = 1024;

  VhostCryptoDevice(control::DeviceConfig cfg, std::unique_ptr<crypto::CryptoBackend> backend,
                    runtime::PollLoop& loop);
  ~VhostCryptoDevice() override;

  Result<void> start(std::string& why) override;
  void stop() noexcept override;
  nlohmann::json describe() const override;
  nlohmann::json stats() const override;

  bool poll() noexcept override;
  bool arm(runtime::WaitSet& ws) noexcept override;
  bool spin_when_idle() const noexcept override;
  void disarm(const runtime::WaitSet& ws) noexcept override;

  MessageResult on_message(int vid, VhostUserMessage& m) noexcept override;
  int on_new_device(int vid) noexcept override;
  void on_destroy_device(int vid) noexcept override;

 private:
  using Queue = SlotQueue<crypto::CryptoRequest, crypto::CryptoJob>;

  bool poll_queue(std::uint16_t q) noexcept;
  bool poll_control() noexcept;
  // Drops session references under one table lock, destroying the backend
  // sessions of closed ones whose last reference this was.
  void release_refs(crypto::SessionTable::Entry* const* entries, std::uint32_t n) noexcept;
  // release_refs() for a burst of completions.
  void release_sessions(const crypto::CryptoCompletion* comps, std::uint32_t n) noexcept;
  void finish(Queue& qu, crypto::CryptoRequest& req, std::uint8_t status) noexcept;
  void drain(std::uint16_t nq) noexcept;
  // Creates a session in the engine and the table: the status and the id.
  std::uint8_t create_session(const crypto::SessionParams& p, std::uint64_t& id,
                              const char*& why) noexcept;
  std::uint8_t close_session(std::uint64_t id) noexcept;
  void destroy_all_sessions() noexcept;
  MessageResult on_create_session_message(int vid, VhostUserMessage& m) noexcept;
  MessageResult on_close_session_message(int vid, VhostUserMessage& m) noexcept;
  // Data queues and the control queue.
  std::uint16_t served_rings() const noexcept override { return cfg_.queues + 1; }
  void connection_closed(int vid) noexcept override;

  const std::unique_ptr<crypto::CryptoBackend> backend_;
  crypto::CryptoDeviceOptions opts_;
  crypto::Config config_{};
  std::array<std::uint8_t, crypto::kConfigSpaceBytes> config_bytes_{};
  std::unique_ptr<crypto::SessionTable> sessions_;
  std::mutex create_mu_;  // serialises engine session creation across threads
  crypto::CryptoSessionStats session_stats_;

  std::atomic<bool> has_control_{false};  // the frontend set up the control queue
  // The frontend acked protocol features but never enables rings (QEMU's
  // cryptodev-vhost-user): rte_vhost thread only.
  bool rings_enabled_at_kick_ = false;
  std::array<Queue, control::kMaxQueuePairs> queues_;
  std::array<crypto::CryptoQueueStats, control::kMaxQueuePairs> stats_{};
};

}  // namespace viopool::vhost
