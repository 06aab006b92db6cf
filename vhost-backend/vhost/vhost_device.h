// VhostDevice: what every viopool device served over vhost-user is to the
// daemon — a Poller on one PollLoop, a VhostClient of rte_vhost, and an object
// the control API starts, stops, describes and reads counters from.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>

#include "vhost-backend/control/config.h"
#include "vhost-backend/runtime/poll_loop.h"
#include "vhost-backend/vhost/vhost_registry.h"

namespace viopool::vhost {

class VhostDevice : public runtime::Poller, public VhostClient {
 public:
  VhostDevice(control::DeviceConfig cfg, runtime::PollLoop& loop)
      : cfg_(std::move(cfg)), loop_(loop) {}
  ~VhostDevice() override = default;

  // Control thread: backend, vhost-user socket, polling. `why` explains a failure.
  virtual Result<void> start(std::string& why) = 0;
  // Control thread: detaches the frontend, stops polling and the backend. Idempotent.
  virtual void stop() noexcept = 0;

  // Control thread. The config plus state, features, connections (device_list).
  virtual nlohmann::json describe() const = 0;
  // Control thread. {"queues": [{...counters...}], "total": {...}} (device_stats).
  virtual nlohmann::json stats() const = 0;

  const control::DeviceConfig& config() const noexcept { return cfg_; }
  runtime::PollLoop& loop() const noexcept { return loop_; }

 protected:
  // Messages every device answers the same way: GET_QUEUE_NUM reports the
  // configured queues (not rte_vhost's maximum), SET_FEATURES refuses bits
  // that were not offered (the frontend is disconnected, others unaffected).
  MessageResult handle_common_message(int vid, VhostUserMessage& m, std::uint64_t offered,
                                      std::uint16_t queues) noexcept;
  // GET_CONFIG answered from `config` (bytes past its end read as zero);
  // SET_CONFIG accepted and ignored (nothing we expose is writable). The
  // frontend's offset and size are checked against the payload. kNotHandled
  // for any other message.
  MessageResult handle_config_message(int vid, VhostUserMessage& m,
                                      std::span<const std::uint8_t> config) noexcept;

  const control::DeviceConfig cfg_;
  runtime::PollLoop& loop_;
};

}  // namespace viopool::vhost
