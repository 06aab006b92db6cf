// NetBackend: where a virtio-net device's packets go and come from. Local
// implementations (net_backends.h): any DPDK ethdev, loopback, null; pooled
// ones (the fabric) implement the same interface. Packets are DPDK mbufs,
// declared opaquely so this header needs no DPDK.
#pragma once

#include <cstdint>

#include "vhost-backend/base/result.h"

struct rte_mbuf;

namespace viopool::net {

class NetBackend {
 public:
  virtual ~NetBackend() = default;

  // Short name of the mechanism ("ethdev", "loopback", "null").
  virtual const char* kind() const noexcept = 0;

  // Control thread, before the first burst: sets up `queue_pairs` queue pairs.
  // May block briefly (probing a port). Errors are reported, never fatal.
  virtual Result<void> start(std::uint16_t queue_pairs) = 0;
  // Control thread, after the polling lcore stopped calling bursts.
  virtual void stop() noexcept = 0;

  // Data path, called only by the lcore polling the device; never block.
  // rx_burst: up to n packets for the guest's queue pair q; caller owns them.
  virtual std::uint16_t rx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept = 0;
  // tx_burst: offers n packets from the guest; returns how many the backend
  // took (it owns those); the caller frees the rest and counts them as drops.
  virtual std::uint16_t tx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept = 0;

  // True if packets can arrive with no guest action (a NIC): an idle poller
  // must then wake up on a timer to look. Loopback and null return false.
  virtual bool has_external_input() const noexcept = 0;
  // Data path: how many guest packets tx_burst(q) would take now. A backend
  // under flow control (a pooled vNIC whose appliance has not granted more)
  // returns 0, and the guest's packets wait in its ring (backpressure)
  // instead of being taken and dropped; wait_fd() then wakes the poller
  // when room comes back.
  virtual std::uint16_t tx_room(std::uint16_t /*q*/) noexcept { return UINT16_MAX; }
  // An fd readable when packets for queue pair q arrive (a socket), for an
  // idle poller to sleep on besides its timer; -1 if none.
  virtual int wait_fd(std::uint16_t /*q*/) const noexcept { return -1; }
  // True if the device behind it is reached over a network (a pooled vNIC):
  // acks, credits and packets take tens of microseconds, so an idle poller
  // sleeps on wait_fd() soon rather than spin for them.
  virtual bool remote() const noexcept { return false; }
};

}  // namespace viopool::net
