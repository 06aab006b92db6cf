// VhostRingDevice: the parts blk and crypto devices share.
#include "vhost-backend/vhost/vhost_ring_device.h"

#include <chrono>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("vhost")

namespace viopool::vhost {

VhostRingDevice::VhostRingDevice(control::DeviceConfig cfg, runtime::PollLoop& loop)
    : VhostDevice(std::move(cfg), loop) {
  for (std::uint16_t q = 0; q < log_ids_.size(); ++q) {
    log_ids_[q] = "dev=" + cfg_.name + " q=" + std::to_string(q);
  }
}

std::uint64_t VhostRingDevice::now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

int VhostRingDevice::on_new_connection(int vid) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  ++connections_;
  VIOPOOL_LOG_INFO("frontend connected dev={} vid={}", cfg_.name, vid);
  return 0;
}

void VhostRingDevice::on_destroy_connection(int vid) noexcept {
  connection_closed(vid);
  std::lock_guard<std::mutex> lock(mu_);
  ++disconnects_;
  VIOPOOL_LOG_INFO("frontend disconnected dev={} vid={}", cfg_.name, vid);
}

int VhostRingDevice::on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept {
  if (vring >= served_rings() || vring >= kMaxRings) {
    if (enable) {
      VIOPOOL_LOG_WARN_RL(
          "frontend enabled a queue beyond the configured ones dev={} vid={} "
          "vring={} served={}; it is not served",
          cfg_.name, vid, vring, served_rings());
    }
    return 0;
  }
  set_ring_enabled(vring, enable != 0);
  return 0;
}

void VhostRingDevice::publish_ready(int vid, std::uint16_t nq, std::uint64_t features) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    vid_ = vid;
    nq_ = nq;
    negotiated_ = features;
  }
  // Release: the queues set up before are visible to the poller once it sees ready_.
  ready_.store(true, std::memory_order_release);
  loop_.quiesce();
}

void VhostRingDevice::withdraw() noexcept {
  ready_.store(false, std::memory_order_release);
  // rte_vhost requires the data path to stop touching the vid before
  // destroy_device returns: wait for the loop's current iteration.
  loop_.quiesce();
}

void VhostRingDevice::log_drain_timeout(const char* what) const noexcept {
  VIOPOOL_LOG_ERROR("{} did not finish in-flight work within 10 s dev={}", what, cfg_.name);
}

const char* VhostRingDevice::state_name() const noexcept {
  return !started_ ? "stopped" : ready_.load(std::memory_order_acquire) ? "running" : "waiting";
}

nlohmann::json VhostRingDevice::describe_common() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json j = control::to_json(cfg_);
  const bool running = ready_.load(std::memory_order_acquire);
  j["state"] = state_name();
  j["vid"] = running ? vid_ : -1;
  j["active_queues"] = running ? nq_ : 0;
  j["features"] = {{"offered", offered_features_}, {"negotiated", negotiated_}};
  j["connections"] = connections_;
  j["disconnects"] = disconnects_;
  j["loop"] = loop_.name();
  return j;
}

void VhostRingDevice::add_queue_stats(nlohmann::json& q, nlohmann::json& total,
                                      const blk::LatencyHistogram& latency) {
  for (auto it = q.begin(); it != q.end(); ++it) {
    if (it.key() != "queue") {
      total[it.key()] = total.value(it.key(), std::uint64_t{0}) + it.value().get<std::uint64_t>();
    }
  }
  q["latency_ns"] = {{"count", latency.count()},
                     {"p50", latency.percentile(50)},
                     {"p99", latency.percentile(99)},
                     {"p999", latency.percentile(99.9)}};
}

}  // namespace viopool::vhost
