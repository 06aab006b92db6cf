// The appliance's Open vSwitch bridge (docs/offload.md "Slow path"): each
// vNIC, and the uplink of a NIC port, becomes a dpdkvhostuserclient port of
// the bridge, connecting to a vhost-user socket the appliance serves
// (a DPDK virtio_user port in server mode). Ports are added and removed with
// ovs-vsctl (bounded, never through a shell).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vhost-backend/base/result.h"

namespace viopool::pool {

struct OvsBridgeOptions {
  std::string bridge;      // an existing bridge of datapath_type netdev
  std::string db;          // ovs-vsctl --db (e.g. unix:/run/openvswitch/db.sock); "" default
  std::string socket_dir;  // where the vhost-user sockets live
};

class OvsBridge {
 public:
  explicit OvsBridge(OvsBridgeOptions o) : o_(std::move(o)) {}
  const OvsBridgeOptions& options() const noexcept { return o_; }
  // The socket of port `name`.
  std::string socket_of(const std::string& name) const { return o_.socket_dir + "/" + name + ".sock"; }
  // Adds (or updates) port `name`; `vlan` > 0 makes it an access port of that VLAN.
  Result<void> add_vhost_port(const std::string& name, std::uint16_t vlan, std::string& why) const;
  void del_port(const std::string& name) const;

 private:
  int vsctl(const std::vector<std::string>& args, std::string& err) const;
  OvsBridgeOptions o_;
};

}  // namespace viopool::pool
