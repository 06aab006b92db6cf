// VhostRingDevice: what the devices that walk their own rings (blk, crypto)
// share beyond VhostRings — connection bookkeeping, ring enable state, the
// hand-over between rte_vhost's thread and the polling lcore (ready_), and
// the common parts of describe() and stats().
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "vhost-backend/devices/blk/blk_stats.h"
#include "vhost-backend/vhost/vhost_device.h"
#include "vhost-backend/vhost/vhost_rings.h"

namespace viopool::vhost {

// Per-queue request bookkeeping of a ring-walking device: a slot per request
// in flight (bounded by the ring size), the free list, requests parsed but
// not yet taken by the backend, and the completions of the current poll.
template <typename Request, typename Job>
struct SlotQueue {
  std::vector<Request> slots;
  std::vector<std::uint32_t> free;  // indices of free slots
  std::vector<Job*> pending;        // parsed, not yet taken by the backend
  std::vector<virtio::UsedElem> used;

  // rte_vhost thread, new_device: `n` empty slots.
  void reset(std::uint32_t n) {
    slots.assign(n, Request{});
    free.clear();
    for (std::uint32_t i = n; i > 0; --i) {
      free.push_back(i - 1);
    }
    pending.clear();
    pending.reserve(n);
    used.clear();
    used.reserve(n);
  }
  void release(const Request& r) noexcept {
    free.push_back(static_cast<std::uint32_t>(&r - slots.data()));
  }
  // A free slot (the caller checked `free` is not empty).
  Request& take() noexcept {
    const std::uint32_t i = free.back();
    free.pop_back();
    return slots[i];
  }
  // Offers the parsed-but-refused requests to the backend again through
  // `submit(Job* const*, n) -> accepted`. True if it took any.
  template <typename Submit>
  bool resubmit(Submit&& submit) noexcept {
    if (pending.empty()) {
      return false;
    }
    const std::uint32_t k = submit(pending.data(), static_cast<std::uint32_t>(pending.size()));
    pending.erase(pending.begin(), pending.begin() + k);
    return k != 0;
  }
  // Submits a fresh batch; what the backend refuses waits in `pending`.
  template <typename Submit>
  void submit_batch(Job* const* batch, std::uint32_t n, Submit&& submit) noexcept {
    if (n == 0) {
      return;
    }
    const std::uint32_t k = submit(batch, n);
    pending.insert(pending.end(), batch + k, batch + n);
  }
};

class VhostRingDevice : public VhostDevice {
 public:
  // VhostClient (rte_vhost thread).
  int on_new_connection(int vid) noexcept override;
  void on_destroy_connection(int vid) noexcept override;
  int on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept override;

 protected:
  VhostRingDevice(control::DeviceConfig cfg, runtime::PollLoop& loop);

  // Rings served: vrings at or above this are ignored (blk: its queues;
  // crypto: data queues plus the control queue).
  virtual std::uint16_t served_rings() const noexcept = 0;
  // rte_vhost thread, when a frontend's connection ends.
  virtual void connection_closed(int vid) noexcept { (void)vid; }

  // rte_vhost thread, end of new_device: publishes the device to the poller.
  void publish_ready(int vid, std::uint16_t nq, std::uint64_t features) noexcept;
  // rte_vhost thread, start of destroy_device: stops the poller touching it.
  void withdraw() noexcept;
  bool ring_enabled(std::uint16_t q) const noexcept {
    return enabled_[q].load(std::memory_order_acquire);
  }
  void set_ring_enabled(std::uint16_t q, bool on) noexcept {
    enabled_[q].store(on, std::memory_order_release);
  }

  // "stopped", "running" or "waiting".
  const char* state_name() const noexcept;
  // Control thread: the config with state, vid, active_queues, features,
  // connections, disconnects and loop; the caller adds its own keys.
  nlohmann::json describe_common() const;
  // Control thread: adds q's counters (every key but "queue") into `total`,
  // and the latency summary into q.
  static void add_queue_stats(nlohmann::json& q, nlohmann::json& total,
                              const blk::LatencyHistogram& latency);

  static std::uint64_t now_ns() noexcept;

  // Polling thread: `backend` holds work of one of the queues.
  template <typename Backend>
  bool work_out(const Backend& backend) const noexcept {
    for (std::uint16_t q = 0; q < nq_; ++q) {
      if (backend.in_flight(q) > 0) {
        return true;
      }
    }
    return false;
  }

  // Polling thread: publishes the completions gathered in qu.used on ring q
  // and interrupts the driver if it wants it.
  template <typename Request, typename Job>
  void flush_used(SlotQueue<Request, Job>& qu, std::uint16_t q,
                  blk::Counter& notifications) noexcept {
    if (qu.used.empty()) {
      return;
    }
    rings_.ring(q).vq->push_used(std::span<const virtio::UsedElem>(qu.used));
    qu.used.clear();
    if (rings_.notify(vid_, q)) {
      notifications.add(1);
    }
  }

  // rte_vhost thread, destroy_device: backend work still in flight writes into
  // guest memory, which stays mapped until the callback returns. Calls
  // `step()` (one pass over the queues; true while work remains) until it
  // reports none, for at most 10 s; `what` names the backend in the log.
  template <typename Step>
  void drain_until_idle(const char* what, Step&& step) noexcept {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (step()) {
      if (std::chrono::steady_clock::now() > deadline) {
        log_drain_timeout(what);
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  void log_drain_timeout(const char* what) const noexcept;

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
  std::array<std::string, kMaxRings> log_ids_;
  virtio::DescChain chain_;  // scratch for pop_into (polling lcore)

 private:
  std::array<std::atomic<bool>, kMaxRings> enabled_{};
};

}  // namespace viopool::vhost
