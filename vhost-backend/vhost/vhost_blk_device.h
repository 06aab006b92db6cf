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
#include "vhost-backend/vhost/vhost_ring_device.h"
#include "vhost-backend/virtio/any_queue.h"

namespace viopool::vhost {

class VhostBlkDevice final : public VhostRingDevice {
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
  bool spin_when_idle() const noexcept override;

  // VhostClient (rte_vhost thread)
  MessageResult on_message(int vid, VhostUserMessage& m) noexcept override;
  int on_new_device(int vid) noexcept override;
  void on_destroy_device(int vid) noexcept override;

 private:
  struct Queue : SlotQueue<blk::BlkRequest, blk::BlkIo> {
    int completion_slot = -1;
  };

  bool poll_queue(std::uint16_t q) noexcept;
  void finish(Queue& qu, std::uint16_t q, blk::BlkRequest& req, std::uint8_t status) noexcept;
  void drain(std::uint16_t nq) noexcept;
  std::uint16_t served_rings() const noexcept override { return cfg_.queues; }

  const std::unique_ptr<blk::BlockBackend> backend_;
  blk::BlkDeviceOptions opts_;
  blk::BlkLimits limits_;
  std::array<std::uint8_t, blk::kConfigSpaceBytes> config_{};
  std::array<Queue, control::kMaxQueuePairs> queues_;
  std::array<blk::BlkQueueStats, control::kMaxQueuePairs> stats_{};
};

}  // namespace viopool::vhost
