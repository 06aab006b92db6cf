// EthdevNicPort: a NIC port of the appliance's inventory as a DPDK ethdev
// (any PMD: net_af_packet on a veth, net_tap, a PCI NIC), probed from
// devargs, owned (configured, started, promiscuous: its vNICs' MACs are not
// the port's) and unplugged at the end. One queue pair, polled by the fabric
// thread.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "pool-manager/target/nic_port.h"
#include "vhost-backend/base/result.h"

struct rte_mbuf;
struct rte_mempool;

namespace viopool::pool {

struct EthdevNicPortOptions {
  std::string name;     // the inventory's name for it
  std::string devargs;  // "net_af_packet0,iface=eth1", a PCI address
  std::uint32_t mtu = 1500;
  std::uint16_t rx_desc = 1024;
  std::uint16_t tx_desc = 1024;
};

class EthdevNicPort final : public NicPort {
 public:
  // Probes and starts the port; `why` says what failed.
  static Result<std::unique_ptr<EthdevNicPort>> open(const EthdevNicPortOptions& o,
                                                     std::string& why);
  ~EthdevNicPort() override;

  const std::string& name() const noexcept override { return o_.name; }
  std::uint32_t rx(std::span<NicFrame> out) noexcept override;
  void release_rx() noexcept override;
  std::uint32_t tx(std::span<const NicFrame> frames) noexcept override;
  // What the inventory lists: driver, port, MAC, link, queues, offloads and
  // whether the port takes rte_flow rules (probed with rte_flow_validate).
  nlohmann::json describe() const { return describe_; }
  std::uint16_t port_id() const noexcept { return port_; }

 private:
  EthdevNicPort() = default;
  Result<void> start(std::string& why);

  EthdevNicPortOptions o_;
  std::uint16_t port_ = 0;
  bool probed_ = false;
  bool started_ = false;
  rte_mempool* pool_ = nullptr;
  std::vector<rte_mbuf*> rx_held_;
  std::vector<std::byte> linear_;  // chained frames, made contiguous
  std::vector<rte_mbuf*> tx_mbufs_;
  nlohmann::json describe_;
};

}  // namespace viopool::pool
