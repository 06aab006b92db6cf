// OffloadAgent: keeps the NIC's rte_flow rules equal to what the followed
// OVS table allows (docs/offload.md). On every table it translates each
// rule, plans priorities per port, and reconciles with what is installed:
// rules no longer wanted go first, then new ones are created from the
// highest OpenFlow priority down. A rule is never offloaded below one that
// overlaps it and stays on OVS's path (not offloadable, or refused by the
// NIC): the NIC would otherwise take traffic OVS gives to the higher rule.
// A MARK the NIC refuses is dropped in favour of the vNIC's queue alone.
// Thread-safe: one mutex; apply() runs on the follower's thread.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "offload/agent/flow_offloader.h"
#include "offload/model/flow_spec.h"
#include "offload/translate/port_map.h"

namespace viopool::offload {

// True unless the two matches provably select disjoint packets.
bool may_overlap(const FlowSpec& a, const FlowSpec& b);

class OffloadAgent {
 public:
  OffloadAgent(PortMap ports, FlowOffloader& nic);

  // Flushes the ports (no leftovers from an earlier run).
  void start();
  // Replaces the port map (vNICs came or went); the next apply() uses it.
  void set_ports(PortMap ports);
  // The DPDK ports of the uplinks.
  std::vector<std::uint16_t> uplinks();
  void apply(const std::vector<FlowSpec>& table);
  // Every OVS rule: {"rule", "state" (offloaded, not_offloadable, refused,
  // shadowed), "reasons", "rte_flow" [{"flow", "packets", "bytes"}], "note"}.
  nlohmann::json show(bool counters);
  // Counts by state and totals of NIC operations.
  nlohmann::json stats();

 private:
  struct Installed {
    std::uint64_t handle = 0;
    std::string owner;  // the OVS rule's key; "" for a planner's jump
    RteFlowRule rule;   // as installed (a MARK fallback differs from the plan)
    std::string note;   // the fallback it took, reported for as long as it stays
  };
  struct RuleView {
    std::string key;
    std::string text;  // key and actions, ovs-ofctl style
    std::string state;
    std::vector<std::string> reasons;
    std::vector<std::string> flows;  // dumps of what is installed for it
    std::string note;
  };

  PortMap ports_;
  FlowOffloader& nic_;
  std::mutex mu_;
  std::map<std::string, Installed> installed_;  // by planned dump
  std::map<std::string, std::pair<std::string, std::chrono::steady_clock::time_point>> refused_;
  std::vector<RuleView> view_;
  // What a port was found to lack (a rule passed only without it): later
  // rules skip it from the first try.
  std::map<std::uint16_t, std::pair<bool, bool>> lacks_;  // port -> (MARK, COUNT)
  std::uint64_t creates_ = 0;
  std::uint64_t destroys_ = 0;
  std::uint64_t refusals_ = 0;
  std::uint64_t applies_ = 0;
};

}  // namespace viopool::offload
