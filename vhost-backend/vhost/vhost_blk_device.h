// A virtio-blk device served over vhost-user. viopool walks the rings itself
// (virtio/split_queue) — rte_vhost only handles the protocol and memory
// mapping — parses requests (devices/blk/blk_request) and hands them to a
// BlockBackend with iovecs into guest memory. The config space is answered in
// a pre-message hook (GET_CONFIG), as QEMU's vhost-user-blk requires.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "vhost-backend/devices/blk/blk_backend.h"
#include "vhost-backend/devices/blk/blk_device.h"
#include "vhost-backend/devices/blk/blk_request.h"
#include "vhost-backend/devices/blk/blk_stats.h"
#include "vhost-backend/vhost/vhost_device.h"
#include "vhost-backend/vhost/vhost_rings.h"
#include "vhost-backend/virtio/any_queue.h"

namespace viopool::vhost {

class VhostBlkDevice final : public VhostDevice {
 public:
  static constexpr std::uint32_t kBurst = 32;
  // Request slots per queue: bounds memory (a slot holds 128 iovecs) while
  // keeping far more in flight than any backend queue depth we configure.
  static constexpr std::uint32_t kMaxSlots = 1024;

  VhostBlkDevice(control::DeviceConfig cfg, std::unique_ptr<blk::BlockBackend> backend,
                 runtime::PollLoop& loop);
  ~VhostBlkDevice() override;

  Result<void> start(std::string& why) override;
  void stop() noexcept override;
  nlohmann::json describe() const override;
  nlohmann::json stats() const override;

  // runtime::Poller (polling lcore)
  bool poll() noexcept override;
  bool arm(runtime::WaitSet& ws) noexcept override;
  void disarm(const runtime::WaitSet& ws) noexcept override;

  // VhostClient (rte_vhost thread)
  MessageResult on_message(int vid, VhostUserMessage& m) noexcept override;
  int on_new_connection(int vid) noexcept override;
  void on_destroy_connection(int vid) noexcept override;
  int on_new_device(int vid) noexcept override;
  void on_destroy_device(int vid) noexcept override;
  int on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept override;

 private:
  struct Queue {
    std::vector<blk::BlkRequest> slots;
    std::vector<std::uint32_t> free;       // indices of free slots
    std::vector<blk::BlkIo*> pending;      // parsed, not yet taken by the backend
    std::vector<virtio::UsedElem> used;  // completions of this poll
    int completion_slot = -1;
  };

  bool poll_queue(std::uint16_t q) noexcept;
  void finish(Queue& qu, std::uint16_t q, blk::BlkRequest& req, std::uint8_t status) noexcept;
  void flush_used(Queue& qu, std::uint16_t q) noexcept;
  void drain(std::uint16_t nq) noexcept;
  std::uint64_t now_ns() const noexcept;

  const std::unique_ptr<blk::BlockBackend> backend_;
  blk::BlkDeviceOptions opts_;
  blk::BlkLimits limits_;
  std::array<std::uint8_t, blk::kConfigSpaceBytes> config_{};
  std::uint64_t offered_features_ = 0;

  mutable std::mutex mu_;  // orders callbacks against readers and stop()
  std::atomic<bool> ready_{false};
  int vid_ = -1;
  std::uint16_t nq_ = 0;           // queues set up at new_device
  std::uint64_t negotiated_ = 0;   // guarded by mu_
  std::uint64_t connections_ = 0;  // guarded by mu_
  std::uint64_t disconnects_ = 0;  // guarded by mu_
  bool started_ = false;
  VhostRings rings_;
  std::array<std::atomic<bool>, control::kMaxQueuePairs> enabled_{};
  std::array<Queue, control::kMaxQueuePairs> queues_;
  std::array<blk::BlkQueueStats, control::kMaxQueuePairs> stats_{};
  std::array<std::string, kMaxRings> log_ids_;
  virtio::DescChain chain_;  // scratch for pop_into (polling lcore)
};

}  // namespace viopool::vhost
