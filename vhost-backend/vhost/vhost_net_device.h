// A virtio-net device served over vhost-user: rte_vhost's built-in virtio-net
// rings moved in bursts to and from a NetBackend, polled by one PollLoop.
// Lifecycle: start() on the control thread registers the socket; rte_vhost's
// thread attaches/detaches frontends through the VhostClient callbacks; stop()
// tears everything down. Only poll()/arm()/disarm() run on the polling lcore.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vhost-backend/control/config.h"
#include "vhost-backend/devices/net/net_backend.h"
#include "vhost-backend/devices/net/net_stats.h"
#include "vhost-backend/runtime/poll_loop.h"
#include "vhost-backend/vhost/vhost_device.h"

struct rte_mempool;
struct rte_mbuf;

namespace viopool::vhost {

enum class NetDeviceState : std::uint8_t {
  kWaiting,   // socket up, no frontend (or frontend not ready)
  kRunning,   // frontend attached, rings polled
  kStopped,
};
const char* to_string(NetDeviceState s) noexcept;

struct NetDeviceInfo {
  NetDeviceState state;
  int vid;
  std::uint64_t offered_features;
  std::uint64_t negotiated_features;
  std::uint16_t active_queue_pairs;
  std::uint64_t connections;  // frontends seen since start
  std::uint64_t resets;       // connections that ended
};

class VhostNetDevice final : public VhostDevice {
 public:
  static constexpr std::uint16_t kBurst = 32;
  static constexpr std::uint16_t kTxBurst = 64;  // guest frames handed to the backend at once

  // idle_sleep_us: how long an idle poller may sleep when the backend can
  // receive on its own (a NIC); guest-driven backends sleep until a kick.
  VhostNetDevice(control::DeviceConfig cfg, std::unique_ptr<net::NetBackend> backend,
                 rte_mempool* pool, runtime::PollLoop& loop, std::uint32_t idle_sleep_us);
  ~VhostNetDevice() override;

  Result<void> start(std::string& why) override;
  void stop() noexcept override;
  nlohmann::json describe() const override;
  nlohmann::json stats() const override;

  NetDeviceInfo info() const;
  // Per queue pair, for the configured number of pairs.
  std::vector<net::QueuePairSnapshot> queue_stats() const;

  // runtime::Poller (polling lcore)
  bool poll() noexcept override;
  bool arm(runtime::WaitSet& ws) noexcept override;
  void disarm(const runtime::WaitSet& ws) noexcept override;
  bool spin_when_idle() const noexcept override { return !backend_->remote(); }

  // VhostClient (rte_vhost thread)
  MessageResult on_message(int vid, VhostUserMessage& m) noexcept override;
  int on_new_connection(int vid) noexcept override;
  void on_destroy_connection(int vid) noexcept override;
  int on_new_device(int vid) noexcept override;
  void on_destroy_device(int vid) noexcept override;
  int on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept override;

 private:
  static constexpr std::size_t kMaxVrings = 2 * control::kMaxQueuePairs;

  // Packets taken from the backend that the guest had no buffers for yet.
  // They are retried before anything new is pulled, so a slow guest pushes
  // back on the backend (whose own queue then fills and drops, as a NIC
  // does) instead of viopool dropping; freed (counted as rx_drops) on detach.
  struct RxStash {
    std::array<rte_mbuf*, kBurst> pkts{};
    std::uint16_t head = 0;
    std::uint16_t count = 0;
  };
  struct Armed {
    int slot = -1;
    std::uint16_t vring = 0;
  };

  bool poll_queue_pair(int vid, std::uint16_t q) noexcept;
  void free_stashes() noexcept;
  std::uint64_t guest_notifications(int vid, std::uint16_t vring) const;

  const std::unique_ptr<net::NetBackend> backend_;
  rte_mempool* const pool_;
  std::uint64_t offered_features_;  // narrowed to what rte_vhost supports in start()

  mutable std::mutex mu_;  // orders callbacks against stats readers and stop()
  std::atomic<bool> ready_{false};
  std::atomic<int> vid_{-1};
  std::atomic<std::uint16_t> active_qps_{0};
  std::uint64_t negotiated_features_ = 0;  // guarded by mu_
  std::uint64_t connections_ = 0;          // guarded by mu_
  std::uint64_t resets_ = 0;               // guarded by mu_
  bool started_ = false;                   // control thread only
  std::array<std::atomic<bool>, kMaxVrings> enabled_{};
  std::array<net::QueuePairStats, control::kMaxQueuePairs> stats_{};
  std::array<RxStash, control::kMaxQueuePairs> stash_{};  // polling lcore only
  std::array<Armed, kMaxVrings> armed_{};                 // polling lcore only
  std::size_t n_armed_ = 0;
  std::array<bool, kMaxVrings> notify_off_{};  // polling lcore only; reset on detach
  const std::uint32_t idle_sleep_us_;
};

}  // namespace viopool::vhost
