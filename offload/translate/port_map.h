// How the OVS bridge's ports map onto DPDK: an uplink is a DPDK port whose
// ingress the NIC filters; a vNIC is a receive queue (and optionally a MARK
// id) of an uplink, with the MAC the appliance gave it (for NORMAL).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "offload/model/flow_spec.h"

namespace viopool::offload {

struct PortBinding {
  std::string name;                     // the OVS port name
  std::optional<std::uint32_t> ofport;  // its OpenFlow number, when known
  std::uint16_t dpdk_port = 0;
  std::optional<std::uint16_t> queue;  // set: a vNIC served by this receive queue
  std::optional<std::uint32_t> mark;   // a vNIC's MARK id, if the NIC marks
  std::optional<Mac> mac;              // a vNIC's MAC
  // A vNIC whose OVS port has an access tag: NORMAL to it stays on OVS.
  std::optional<std::uint16_t> access_vlan;
  bool is_vnic() const noexcept { return queue.has_value(); }
};

struct PortMap {
  std::vector<PortBinding> ports;
  // By name, or by ofport number written in decimal.
  const PortBinding* find(const std::string& ovs_port) const;
  std::vector<std::uint16_t> uplinks() const;  // distinct DPDK ports of the uplinks
};

}  // namespace viopool::offload
