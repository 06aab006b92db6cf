#include "offload/service/offload_service.h"

namespace viopool::offload {

OffloadService::OffloadService(FollowerOptions follow, PortMap ports,
                               std::uint32_t priority_levels)
    : nic_(priority_levels),
      agent_(std::move(ports), nic_),
      follower_(std::move(follow), [this](const std::vector<FlowSpec>& t) { agent_.apply(t); }) {}

OffloadService::~OffloadService() { stop(); }

Result<void> OffloadService::start(std::string& why) {
  agent_.start();
  VIOPOOL_TRY(follower_.start(why));
  started_ = true;
  return {};
}

void OffloadService::stop() {
  if (!started_) {
    return;
  }
  started_ = false;
  follower_.stop();
  for (auto p : agent_.uplinks()) {
    nic_.flush(p);
  }
}

void OffloadService::set_ports(PortMap ports) {
  agent_.set_ports(std::move(ports));
  follower_.resync();
}

std::optional<control::ApiReply> OffloadService::call(const std::string& op,
                                                      const nlohmann::json& b) {
  if (op == "offload_show") {
    bool counters = true;
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (it.key() != "counters") {
        return control::error_reply(Errc::kInvalidArgument, "unknown key '" + it.key() + "'");
      }
      if (it->is_boolean()) {
        counters = it->get<bool>();
      } else if (it->is_string() && (*it == "true" || *it == "false")) {
        counters = *it == "true";
      } else {
        return control::error_reply(Errc::kInvalidArgument, "counters: true or false");
      }
    }
    return control::ApiReply{200, agent_.show(counters)};
  }
  if (op == "offload_stats") {
    nlohmann::json s = agent_.stats();
    const auto fs = follower_.stats();
    s["follower"] = {{"dumps", fs.dumps},
                     {"events", fs.events},
                     {"monitor_starts", fs.monitor_starts},
                     {"errors", fs.errors},
                     {"last_error", follower_.last_error()}};
    return control::ApiReply{200, s};
  }
  if (op == "offload_resync") {
    follower_.resync();
    return control::ApiReply{200, nlohmann::json{{"resync", "requested"}}};
  }
  return std::nullopt;
}

std::string OffloadService::metrics() {
  const nlohmann::json s = agent_.stats();
  std::string out =
      "# HELP viopool_offload_rules OpenFlow rules of the bridge by offload state.\n"
      "# TYPE viopool_offload_rules gauge\n";
  for (const char* st : {"offloaded", "not_offloadable", "refused", "shadowed", "pending"}) {
    out += std::string("viopool_offload_rules{state=\"") + st + "\"} " +
           std::to_string(s.value(st, 0ull)) + "\n";
  }
  out += "# HELP viopool_offload_nic_rules rte_flow rules installed.\n"
         "# TYPE viopool_offload_nic_rules gauge\nviopool_offload_nic_rules " +
         std::to_string(s.value("nic_rules", 0ull)) + "\n";
  return out;
}

}  // namespace viopool::offload
