#include "offload/agent/flow_offloader.h"

#include <algorithm>

#include "offload/translate/flow_dump.h"

namespace viopool::offload {

Result<std::uint64_t> RecordingOffloader::put(const RteFlowRule& r, std::string& nic_error) {
  ++puts;
  if (refuse_) {
    nic_error = refuse_(r);
    if (!nic_error.empty()) {
      return fail(Errc::kUnsupported, "offload: refused");
    }
  }
  const std::uint64_t h = next_++;
  rules_.emplace(h, r);
  return h;
}

Result<void> RecordingOffloader::del(std::uint64_t handle, std::string& why) {
  ++dels;
  if (rules_.erase(handle) == 0) {
    why = "no rule " + std::to_string(handle);
    return fail(Errc::kNotFound, "offload: no such rule");
  }
  return {};
}

Result<FlowCounters> RecordingOffloader::query(std::uint64_t handle, std::string& why) {
  if (!rules_.contains(handle)) {
    why = "no rule " + std::to_string(handle);
    return fail(Errc::kNotFound, "offload: no such rule");
  }
  return FlowCounters{handle, handle * 64};
}

void RecordingOffloader::flush(std::uint16_t port) {
  std::erase_if(rules_, [&](const auto& kv) { return kv.second.port == port; });
}

std::vector<std::string> RecordingOffloader::installed() const {
  std::vector<std::string> out;
  for (const auto& [h, r] : rules_) {
    out.push_back(flow_dump(r));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace viopool::offload
