// OffloadService: an OffloadAgent following one Open vSwitch bridge onto
// rte_flow ports, with the control API operations that report on it
// (docs/api.md "viopool-offload": offload_show, offload_stats,
// offload_resync) and its metrics. viopool-offload runs one for its
// uplinks; viopool-appliance runs one per NIC port switched by OVS, whose
// port map grows and shrinks as vNICs are carved.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "offload/agent/offload_agent.h"
#include "offload/ovs/bridge_follower.h"
#include "offload/rte_flow/rte_flow_offloader.h"
#include "offload/translate/port_map.h"
#include "vhost-backend/control/api_server.h"

namespace viopool::offload {

class OffloadService {
 public:
  OffloadService(FollowerOptions follow, PortMap ports, std::uint32_t priority_levels = 0);
  ~OffloadService();
  OffloadService(const OffloadService&) = delete;
  OffloadService& operator=(const OffloadService&) = delete;

  // Flushes the uplinks' rules, reads the bridge and follows it.
  Result<void> start(std::string& why);
  // Stops following and removes every rule it installed.
  void stop();
  // A new port map (a vNIC came or went): the table is read again at once.
  void set_ports(PortMap ports);
  // offload_show, offload_stats or offload_resync; nullopt for other ops.
  std::optional<control::ApiReply> call(const std::string& op, const nlohmann::json& body);
  std::string metrics();

 private:
  RteFlowOffloader nic_;
  OffloadAgent agent_;
  BridgeFollower follower_;
  bool started_ = false;
};

}  // namespace viopool::offload
