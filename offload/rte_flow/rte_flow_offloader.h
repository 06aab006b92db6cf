// RteFlowOffloader: the FlowOffloader of DPDK ports, the only offload code
// that includes rte_flow.h. put() = rte_flow_validate + rte_flow_create (a
// refusal carries the PMD's message and errno), del() = rte_flow_destroy,
// query() = the COUNT action's counters, flush() = rte_flow_flush.
// Every call is logged as the testpmd line that does the same.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "offload/agent/flow_offloader.h"

struct rte_flow;

namespace viopool::offload {

class RteFlowOffloader final : public FlowOffloader {
 public:
  // `levels` per port: 0 probes with rte_flow_validate (the largest of 8, 4, 2
  // the PMD validates; 2 if none).
  explicit RteFlowOffloader(std::uint32_t levels = 0) : levels_cfg_(levels) {}
  ~RteFlowOffloader() override;

  Result<std::uint64_t> put(const RteFlowRule& r, std::string& nic_error) override;
  Result<void> del(std::uint64_t handle, std::string& why) override;
  Result<FlowCounters> query(std::uint64_t handle, std::string& why) override;
  void flush(std::uint16_t port) override;
  std::uint32_t priority_levels(std::uint16_t port) const override;

 private:
  struct Rule {
    std::uint16_t port = 0;
    rte_flow* flow = nullptr;
  };
  std::uint32_t levels_cfg_;
  mutable std::mutex mu_;
  mutable std::map<std::uint16_t, std::uint32_t> levels_;
  std::map<std::uint64_t, Rule> rules_;
  std::uint64_t next_ = 1;
};

}  // namespace viopool::offload
