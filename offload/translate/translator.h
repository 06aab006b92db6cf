// The pure translator: one OpenFlow rule (FlowSpec) → the rte_flow rules
// that do the same on the NIC, or the reasons it cannot be offloaded, each
// naming the OpenFlow feature that has no rte_flow form. The rules come out
// at OpenFlow priority; plan_priorities() maps a port's rules onto the NIC's
// priority levels and groups.
#pragma once

#include <string>
#include <vector>

#include "offload/model/flow_spec.h"
#include "offload/translate/port_map.h"
#include "offload/translate/rte_flow_rule.h"

namespace viopool::offload {

struct Translation {
  std::vector<RteFlowRule> rules;    // one per DPDK port (and per vNIC MAC for NORMAL)
  std::vector<std::string> reasons;  // empty: offloadable
  bool offloadable() const noexcept { return reasons.empty(); }
};

// Every rule gets a COUNT action (hardware counters). A rule without in_port
// is installed on every uplink; one whose actions output nowhere drops, as
// in OpenFlow. NORMAL becomes one rule per vNIC MAC known on the port
// (unicast to a known vNIC; the rest stays on OVS's path).
Translation translate(const FlowSpec& f, const PortMap& ports);

// Assigns group and priority to the rules of one port so that a rule of
// higher OpenFlow priority always wins: distinct OpenFlow priorities, highest
// first, take the NIC's levels 0, 1, …; when there are more than `levels`,
// they spill into groups 1, 2, … of levels-1 rules each, every group ending
// in a catch-all JUMP to the next (returned among the rules, ovs_priority 0).
// `levels` ≥ 2.
std::vector<RteFlowRule> plan_priorities(std::vector<RteFlowRule> rules, std::uint32_t levels);

}  // namespace viopool::offload
