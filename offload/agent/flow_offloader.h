// FlowOffloader: where translated rules go. RteFlowOffloader
// (offload/rte_flow) is the only code that includes rte_flow.h;
// RecordingOffloader keeps rules in memory and refuses what it is told to,
// for tests of the agent's logic.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "offload/translate/rte_flow_rule.h"
#include "vhost-backend/base/result.h"

namespace viopool::offload {

struct FlowCounters {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
};

class FlowOffloader {
 public:
  virtual ~FlowOffloader() = default;
  // Validates, then creates. A refusal carries the NIC's own message in `nic_error`.
  virtual Result<std::uint64_t> put(const RteFlowRule& r, std::string& nic_error) = 0;
  virtual Result<void> del(std::uint64_t handle, std::string& why) = 0;
  virtual Result<FlowCounters> query(std::uint64_t handle, std::string& why) = 0;
  // Destroys every rule of the port, ours or left over from an earlier run.
  virtual void flush(std::uint16_t port) = 0;
  // Distinct rule priorities the port's rte_flow takes (≥ 2).
  virtual std::uint32_t priority_levels(std::uint16_t port) const = 0;
};

class RecordingOffloader final : public FlowOffloader {
 public:
  // Returns the refusal message for a rule, or "" to accept it.
  using Policy = std::function<std::string(const RteFlowRule&)>;
  explicit RecordingOffloader(std::uint32_t levels = 8, Policy refuse = {})
      : levels_(levels), refuse_(std::move(refuse)) {}

  Result<std::uint64_t> put(const RteFlowRule& r, std::string& nic_error) override;
  Result<void> del(std::uint64_t handle, std::string& why) override;
  Result<FlowCounters> query(std::uint64_t handle, std::string& why) override;
  void flush(std::uint16_t port) override;
  std::uint32_t priority_levels(std::uint16_t) const override { return levels_; }

  void set_policy(Policy p) { refuse_ = std::move(p); }
  // The rules installed now, as testpmd lines, sorted.
  std::vector<std::string> installed() const;
  std::uint64_t puts = 0;
  std::uint64_t dels = 0;

 private:
  std::uint32_t levels_;
  Policy refuse_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, RteFlowRule> rules_;
};

}  // namespace viopool::offload
