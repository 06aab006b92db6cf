// Local NetBackends on DPDK: an ethdev port (any PMD: net_tap, net_af_packet,
// net_ring, net_pcap, a real NIC), loopback (echoes the guest's packets back,
// the benchmark backend) and null (a sink).
#pragma once

#include <memory>
#include <string>

#include "vhost-backend/devices/net/net_backend.h"

struct rte_mempool;

namespace viopool::net {

struct EthdevBackendOptions {
  std::string devargs;        // "net_tap0,iface=vp0" or a PCI address
  std::uint16_t rx_desc = 1024;
  std::uint16_t tx_desc = 1024;
  rte_mempool* pool = nullptr;  // rx buffers
};

std::unique_ptr<NetBackend> make_loopback_backend();
std::unique_ptr<NetBackend> make_null_backend();
std::unique_ptr<NetBackend> make_ethdev_backend(EthdevBackendOptions o);

}  // namespace viopool::net
