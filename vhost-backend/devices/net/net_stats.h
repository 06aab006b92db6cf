// Per-queue-pair counters of a virtio-net device. Each counter has one writer
// (the lcore polling the device) and is read by the control thread, so plain
// relaxed loads and stores suffice: no read-modify-write on the data path.
#pragma once

#include <atomic>
#include <cstdint>

namespace viopool::net {

class Counter {
 public:
  void add(std::uint64_t n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// "rx" and "tx" are named from the guest's side, as virtio names its queues:
// rx = backend → guest (vring 2q), tx = guest → backend (vring 2q+1).
struct QueuePairStats {
  Counter rx_packets;
  Counter rx_bytes;
  Counter rx_drops;   // backend packets discarded when the guest detached
  Counter tx_packets;
  Counter tx_bytes;
  Counter tx_drops;   // guest packets the backend could not take
  Counter kicks;      // guest notifications received while the poller slept
  Counter wakeups;    // times the poller woke up for this device
};

// Plain snapshot for reporting.
struct QueuePairSnapshot {
  std::uint64_t rx_packets, rx_bytes, rx_drops;
  std::uint64_t tx_packets, tx_bytes, tx_drops;
  std::uint64_t kicks, wakeups;
  std::uint64_t notifications;  // guest interrupts sent (from the vhost library)
};

inline QueuePairSnapshot snapshot(const QueuePairStats& s) noexcept {
  return QueuePairSnapshot{s.rx_packets.get(), s.rx_bytes.get(), s.rx_drops.get(),
                           s.tx_packets.get(), s.tx_bytes.get(), s.tx_drops.get(),
                           s.kicks.get(),      s.wakeups.get(),  0};
}

}  // namespace viopool::net
