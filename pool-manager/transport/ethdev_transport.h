// EthdevTransport: fabric frames (docs/fabric.md) carried directly in Ethernet
// frames with EtherType 0x88B5 over one queue pair of a DPDK ethdev port (a
// real NIC, or net_af_packet on a kernel interface). The raw-Ethernet sibling
// of UdpTransport; peers are addressed by MAC. Built only with DPDK
// (viopool_pool-manager_transport_ethdev); this header includes no DPDK.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "pool-manager/transport/mac_address.h"
#include "pool-manager/transport/transport.h"
#include "vhost-backend/base/result.h"

struct rte_mempool;

namespace viopool::pool {

struct EthdevTransportOptions {
  // Either devargs, probed (hot-plugged) by open() and owned by the transport:
  // "net_af_packet0,iface=veth0", a PCI address, ... The device name (up to
  // the first ',') must not be a port yet.
  std::string devargs;
  // Or a port that its owner has probed, configured and started; the
  // transport uses queues rx_queue / tx_queue of it and never reconfigures,
  // stops or closes it. Exactly one of devargs and port_id.
  std::optional<std::uint16_t> port_id;
  // Largest fabric frame, i.e. the Ethernet payload: the port's MTU in the
  // usual sense, which excludes the 14-byte Ethernet header (and the FCS). A
  // standard 1500 port carries fabric frames of 1500 bytes in 1514-byte
  // Ethernet frames. At least a fabric header (56 bytes).
  std::uint32_t mtu = 1500;
  // Queue ids on a shared port (port_id). An owned port gets one queue pair:
  // both must be 0 with devargs.
  std::uint16_t rx_queue = 0;
  std::uint16_t tx_queue = 0;
  // Descriptor ring sizes of an owned port (adjusted to the device's limits).
  std::uint16_t rx_desc = 512;
  std::uint16_t tx_desc = 512;
  // mbufs in the transport's own pool; 0 sizes it from the rings.
  std::uint32_t mbufs = 0;
};

// Frames the transport dropped on receive, beyond TransportStats::truncated.
struct EthdevTransportStats {
  std::uint64_t other_ethertype = 0;  // not 0x88B5 (VLAN-tagged frames included)
  std::uint64_t not_for_us = 0;       // 0x88B5 to another MAC (broadcast, multicast too)
  std::uint64_t runts = 0;            // shorter than an Ethernet plus a fabric header
  std::uint64_t malformed = 0;        // the fabric `length` field claims more than arrived
  std::uint64_t tx_no_mbuf = 0;       // send_burst stopped: the mempool was empty
};

class EthdevTransport final : public Transport {
 public:
  // Needs an initialised EAL. Probes devargs (or checks port_id), creates
  // the mbuf pool (a unique name per instance), and for an owned port
  // configures one queue pair, sets the port MTU to `mtu` (net_af_packet sets
  // the kernel interface's MTU) and starts it. Errors: kInvalidArgument (bad
  // options, MTU beyond the port's), kAlreadyExists (devargs names an
  // existing port), kNotFound (probe failed, no such port), kIo (DPDK calls),
  // kResourceExhausted (mempool). Control path; may block briefly.
  static Result<std::unique_ptr<EthdevTransport>> open(const EthdevTransportOptions& o);
  // Stops, closes and unplugs an owned port; frees the mempool unless a shared
  // port still holds some of its mbufs (then it is left allocated, not freed
  // under the NIC).
  ~EthdevTransport() override;
  EthdevTransport(const EthdevTransport&) = delete;
  EthdevTransport& operator=(const EthdevTransport&) = delete;

  const char* kind() const noexcept override { return "ethdev"; }
  std::uint32_t mtu() const noexcept override { return mtu_; }
  // Each frame goes out as Ethernet dst = frame.peer (a MAC, len 6), src =
  // local(), type 0x88B5. Frames that cannot go out at all (longer than
  // mtu(), shorter than a fabric header, peer not a MAC) are counted in
  // send_errors and consumed, as UdpTransport does with datagrams the network
  // refuses. Returns how many frames from the front of `frames` were taken by
  // the NIC or refused; the rest (ring or mempool full): try later. Never
  // blocks; one thread per transport.
  std::uint32_t send_burst(std::span<const OutFrame> frames) noexcept override;
  // Delivers 0x88B5 frames addressed to local(), trimmed to the fabric frame
  // they carry (56 + the header's `length` field, so Ethernet padding never
  // reaches the codec), with peer = the source MAC. Drops and counts
  // everything else (eth_stats(); frames longer than the caller's buffer in
  // truncated). Never blocks.
  std::uint32_t recv_burst(std::span<InFrame> frames) noexcept override;
  // -1: no Rx interrupts (net_af_packet has none; DPDK's rte_eth_dev_rx_intr_enable
  // gives -ENOTSUP on it). Callers poll, sleeping briefly when idle.
  int wait_fd() const noexcept override { return -1; }
  const TransportStats& stats() const noexcept override { return stats_; }
  const EthdevTransportStats& eth_stats() const noexcept { return eth_stats_; }
  // Our port's MAC (len 6): the address peers send to.
  const PeerAddress& local() const noexcept { return local_; }
  std::uint16_t port_id() const noexcept { return port_; }

 private:
  EthdevTransport() = default;
  Result<void> start_owned_port(const EthdevTransportOptions& o);
  void release() noexcept;

  std::string devargs_;  // non-empty when we probed (and own) the device
  std::uint16_t port_ = 0;
  std::uint16_t rxq_ = 0;
  std::uint16_t txq_ = 0;
  bool configured_ = false;  // owned port: close on release
  bool started_ = false;     // owned port: stop on release
  std::uint32_t mtu_ = 0;
  rte_mempool* pool_ = nullptr;
  PeerAddress local_;
  TransportStats stats_;
  EthdevTransportStats eth_stats_;
};

}  // namespace viopool::pool
