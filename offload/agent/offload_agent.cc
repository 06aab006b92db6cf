#include "offload/agent/offload_agent.h"

#include <algorithm>
#include <set>

#include "offload/translate/flow_dump.h"
#include "offload/translate/translator.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("offload")

namespace viopool::offload {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kRetryRefused = std::chrono::seconds(30);

template <typename T>
bool disjoint(const std::optional<Masked<T>>& a, const std::optional<Masked<T>>& b) {
  if (!a || !b) {
    return false;
  }
  if constexpr (std::is_integral_v<T>) {
    const T m = a->mask & b->mask;
    return (a->value & m) != (b->value & m);
  } else {
    for (std::size_t i = 0; i < a->value.size(); ++i) {
      const auto m = a->mask[i] & b->mask[i];
      if ((a->value[i] & m) != (b->value[i] & m)) {
        return true;
      }
    }
    return false;
  }
}

template <typename T>
bool differ(const std::optional<T>& a, const std::optional<T>& b) {
  return a && b && *a != *b;
}

std::string actions_text(const FlowSpec& f) {
  std::string s;
  for (const auto& a : f.actions) {
    s += (s.empty() ? "" : ",") + to_string(a);
  }
  return s.empty() ? "drop" : s;
}

}  // namespace

bool may_overlap(const FlowSpec& a, const FlowSpec& b) {
  const FlowMatch& x = a.match;
  const FlowMatch& y = b.match;
  if (differ(x.in_port, y.in_port) || disjoint(x.eth_src, y.eth_src) ||
      disjoint(x.eth_dst, y.eth_dst) || differ(x.eth_type, y.eth_type)) {
    return false;
  }
  if ((x.vlan == VlanMatch::kUntagged && y.vlan == VlanMatch::kTagged) ||
      (x.vlan == VlanMatch::kTagged && y.vlan == VlanMatch::kUntagged) ||
      differ(x.vlan_vid, y.vlan_vid) || differ(x.vlan_pcp, y.vlan_pcp)) {
    return false;
  }
  return !(disjoint(x.ipv4_src, y.ipv4_src) || disjoint(x.ipv4_dst, y.ipv4_dst) ||
           disjoint(x.ipv6_src, y.ipv6_src) || disjoint(x.ipv6_dst, y.ipv6_dst) ||
           differ(x.ipv6_label, y.ipv6_label) || differ(x.ip_proto, y.ip_proto) ||
           differ(x.ip_dscp, y.ip_dscp) || disjoint(x.tp_src, y.tp_src) ||
           disjoint(x.tp_dst, y.tp_dst) || disjoint(x.tcp_flags, y.tcp_flags) ||
           differ(x.icmp_type, y.icmp_type) || differ(x.icmp_code, y.icmp_code));
}

OffloadAgent::OffloadAgent(PortMap ports, FlowOffloader& nic) : ports_(std::move(ports)), nic_(nic) {}

void OffloadAgent::set_ports(PortMap ports) {
  std::lock_guard lock(mu_);
  ports_ = std::move(ports);
}

std::vector<std::uint16_t> OffloadAgent::uplinks() {
  std::lock_guard lock(mu_);
  return ports_.uplinks();
}

void OffloadAgent::start() {
  std::lock_guard lock(mu_);
  for (auto p : ports_.uplinks()) {
    nic_.flush(p);
  }
  installed_.clear();
}

void OffloadAgent::apply(const std::vector<FlowSpec>& table) {
  std::lock_guard lock(mu_);
  ++applies_;
  const auto now = Clock::now();
  std::erase_if(refused_, [&](const auto& kv) { return now - kv.second.second > kRetryRefused; });

  // Highest OpenFlow priority first (the order rules win in).
  std::vector<const FlowSpec*> rules;
  for (const auto& f : table) {
    rules.push_back(&f);
  }
  std::stable_sort(rules.begin(), rules.end(),
                   [](const FlowSpec* a, const FlowSpec* b) { return a->priority > b->priority; });
  std::vector<Translation> tr;
  for (const FlowSpec* f : rules) {
    tr.push_back(translate(*f, ports_));
  }
  // Priorities planned per port over every translatable rule, so that a
  // refusal never renumbers the rest.
  struct Planned {
    std::size_t owner;  // index into rules; SIZE_MAX: a jump
    RteFlowRule rule;
    std::string dump;
  };
  std::map<std::uint16_t, std::vector<Planned>> per_port;
  std::map<std::uint16_t, std::map<std::size_t, std::vector<std::size_t>>> by_owner;
  {
    std::map<std::uint16_t, std::vector<RteFlowRule>> in;
    std::map<std::uint16_t, std::vector<std::size_t>> owners;
    for (std::size_t i = 0; i < rules.size(); ++i) {
      for (const auto& r : tr[i].rules) {
        in[r.port].push_back(r);
        owners[r.port].push_back(i);
      }
    }
    for (auto& [port, rs] : in) {
      const auto planned = plan_priorities(rs, nic_.priority_levels(port));
      for (std::size_t k = 0; k < planned.size(); ++k) {
        const std::size_t owner = k < owners[port].size() ? owners[port][k] : SIZE_MAX;
        by_owner[port][owner].push_back(per_port[port].size());
        per_port[port].push_back(Planned{owner, planned[k], flow_dump(planned[k])});
      }
    }
  }
  // Which ports' ingress a rule applies to.
  const auto ports_of = [&](const FlowSpec& f) {
    std::vector<std::uint16_t> out;
    if (!f.match.in_port) {
      return ports_.uplinks();
    }
    const PortBinding* b = ports_.find(*f.match.in_port);
    if (b != nullptr && !b->is_vnic()) {
      out.push_back(b->dpdk_port);
    }
    return out;
  };
  const auto destroy = [&](std::map<std::string, Installed>::iterator it) {
    std::string why;
    if (!nic_.del(it->second.handle, why)) {
      VIOPOOL_LOG_WARN("cannot destroy {}: {}", it->first, why);
      return std::next(it);  // still on the NIC: tried again next time
    }
    ++destroys_;
    VIOPOOL_LOG_INFO("destroyed: {}", flow_dump(it->second.rule));
    return installed_.erase(it);
  };
  // Creates one planned rule: as planned, then without MARK (the queue
  // alone steers to the vNIC), without COUNT (no hardware counters), and
  // without both; what the port was found to lack is left out from the
  // start. "" or the NIC's refusal.
  const auto create = [&](std::uint16_t p, const Planned& pl, std::string& note) -> std::string {
    const auto has = [&](RteActionType t) {
      return std::any_of(pl.rule.actions.begin(), pl.rule.actions.end(),
                         [&](const auto& a) { return a.type == t; });
    };
    const bool mark = has(RteActionType::kMark);
    const bool count = has(RteActionType::kCount);
    auto& lacks = lacks_[p];
    std::string err;
    std::string first_err;
    RteFlowRule used;
    Result<std::uint64_t> h = fail(Errc::kUnsupported, "offload: not tried");
    for (int variant = 0; variant < 4 && !h; ++variant) {
      const bool drop_mark = (variant & 1) != 0;
      const bool drop_count = (variant & 2) != 0;
      if ((drop_mark && !mark) || (drop_count && !count) || (lacks.first && mark && !drop_mark) ||
          (lacks.second && count && !drop_count)) {
        continue;
      }
      used = pl.rule;
      std::erase_if(used.actions, [&](const auto& a) {
        return (drop_mark && a.type == RteActionType::kMark) ||
               (drop_count && a.type == RteActionType::kCount);
      });
      h = nic_.put(used, err);
      if (first_err.empty() && !h) {
        first_err = err;
      }
      if (h && (drop_mark || drop_count)) {
        lacks.first |= drop_mark;
        lacks.second |= drop_count;
        note = std::string(drop_mark ? "MARK" : "") + (drop_mark && drop_count ? " and " : "") +
               (drop_count ? "COUNT" : "") + " refused by the NIC" +
               (first_err.empty() ? "" : " (" + first_err + ")") +
               (drop_mark ? ": steered by queue alone" : "") +
               (drop_count ? ": no hardware counters" : "");
      }
    }
    if (!h) {
      ++refusals_;
      refused_[pl.dump] = {"refused by the NIC: " + err, now};
      VIOPOOL_LOG_WARN("refused: {}: {}", pl.dump, err);
      return refused_[pl.dump].first;
    }
    ++creates_;
    VIOPOOL_LOG_INFO("created: {}", flow_dump(used));
    installed_[pl.dump] =
        Installed{*h, pl.owner == SIZE_MAX ? "" : rules[pl.owner]->key(), used, note};
    return "";
  };

  // What no rule of this table plans any more goes first: its traffic falls
  // back to OVS, which enforces the same policy.
  std::set<std::string> planned_dumps;
  for (const auto& [p, pls] : per_port) {
    for (const auto& pl : pls) {
      planned_dumps.insert(pl.dump);
    }
  }
  for (auto it = installed_.begin(); it != installed_.end();) {
    it = planned_dumps.contains(it->first) ? std::next(it) : destroy(it);
  }

  std::vector<std::string> state(rules.size());
  std::vector<std::vector<std::string>> reasons(rules.size());
  std::vector<std::string> notes(rules.size());
  // Per port, in one sweep from the strongest rule down: what stays on OVS
  // (blockers) keeps every lower rule that may overlap it there too.
  std::map<std::uint16_t, std::vector<FlowSpec>> blockers;
  std::map<std::uint16_t, std::uint32_t> broken_group;  // the NIC refused the jump into it
  for (const auto& [p, pls] : per_port) {
    std::uint32_t first_unreachable = UINT32_MAX;
    for (std::size_t k : by_owner[p][SIZE_MAX]) {  // the groups' chain first
      const Planned& jump = pls[k];
      if (installed_.contains(jump.dump)) {
        continue;
      }
      std::string note;
      if (auto r = refused_.find(jump.dump); r != refused_.end() || !create(p, jump, note).empty()) {
        first_unreachable = std::min(first_unreachable, jump.rule.group + 1);
      }
    }
    broken_group[p] = first_unreachable;
  }
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const FlowSpec& f = *rules[i];
    if (!tr[i].offloadable()) {
      state[i] = "not_offloadable";
      reasons[i] = tr[i].reasons;
      for (auto p : ports_of(f)) {
        blockers[p].push_back(f);
      }
      continue;
    }
    // What the NIC takes of it. Without a VLAN match, a pattern that goes
    // past Ethernet (eth type, or an L3 item) stacks on an untagged header:
    // tagged frames are not the NIC's but stay on OVS (so are NORMAL's,
    // which says has_vlan 0). A bare Ethernet match takes both.
    const bool normal = std::any_of(f.actions.begin(), f.actions.end(), [](const FlowAction& a) {
      return a.kind == ActionKind::kNormal;
    });
    const bool untagged_only =
        f.match.vlan == VlanMatch::kAny && (f.match.eth_type.has_value() || normal);
    FlowSpec domain = f;
    if (untagged_only) {
      domain.match.vlan = VlanMatch::kUntagged;
    }
    for (auto p : ports_of(f)) {
      std::string why;
      const auto& mine = by_owner[p][i];
      for (const FlowSpec& g : blockers[p]) {
        if (g.priority > f.priority && may_overlap(g, domain)) {
          why = "below " + g.key() + ", which overlaps it and stays on OVS's path";
          break;
        }
      }
      std::string st = why.empty() ? "" : "shadowed";
      for (std::size_t k : mine) {
        if (!why.empty()) {
          break;
        }
        const Planned& pl = per_port[p][k];
        if (pl.rule.group >= broken_group[p]) {
          why = "refused by the NIC: the jump into group " + std::to_string(pl.rule.group);
          st = "refused";
        } else if (auto r = refused_.find(pl.dump); r != refused_.end()) {
          why = r->second.first;
          st = "refused";
        } else if (auto in = installed_.find(pl.dump); in != installed_.end()) {
          if (!in->second.note.empty()) {
            notes[i] = in->second.note;  // installed by an earlier pass
          }
        } else {
          std::string note;
          why = create(p, pl, note);
          if (!why.empty()) {
            st = "refused";
          } else if (!note.empty()) {
            notes[i] = note;
          }
        }
      }
      if (why.empty()) {
        if (untagged_only) {
          // Offloaded for untagged frames only: its tagged part stays on OVS.
          FlowSpec tagged = f;
          tagged.match.vlan = VlanMatch::kTagged;
          blockers[p].push_back(std::move(tagged));
        }
        continue;
      }
      // Left on OVS on this port: whatever of it is installed goes.
      for (std::size_t k : mine) {
        if (auto it = installed_.find(per_port[p][k].dump); it != installed_.end()) {
          destroy(it);
        }
      }
      reasons[i].push_back(why);
      blockers[p].push_back(f);
      if (state[i].empty() || st == "refused") {
        state[i] = st;
      }
    }
    if (state[i].empty()) {
      state[i] = "offloaded";
    }
  }
  // The view the API shows.
  view_.clear();
  for (std::size_t i = 0; i < rules.size(); ++i) {
    RuleView v;
    v.key = rules[i]->key();
    v.text = v.key + " actions=" + actions_text(*rules[i]);
    v.state = state[i];
    v.reasons = reasons[i];
    for (const auto& [dump, inst] : installed_) {
      if (inst.owner == v.key) {
        v.flows.push_back(dump);
      }
    }
    v.note = notes[i];
    if (v.state == "offloaded" && v.flows.empty()) {
      v.state = "pending";
    }
    view_.push_back(std::move(v));
  }
}

json OffloadAgent::show(bool counters) {
  std::lock_guard lock(mu_);
  json rules = json::array();
  for (const auto& v : view_) {
    json flows = json::array();
    for (const auto& d : v.flows) {
      const Installed& inst = installed_.at(d);
      json f = {{"flow", flow_dump(inst.rule)}};
      if (counters) {
        std::string why;
        if (auto c = nic_.query(inst.handle, why); c) {
          f["packets"] = c->packets;
          f["bytes"] = c->bytes;
        } else {
          f["counters_error"] = why;
        }
      }
      flows.push_back(std::move(f));
    }
    json r = {{"rule", v.text}, {"state", v.state}, {"reasons", v.reasons}, {"rte_flow", flows}};
    if (!v.note.empty()) {
      r["note"] = v.note;
    }
    rules.push_back(std::move(r));
  }
  return {{"rules", rules}};
}

json OffloadAgent::stats() {
  std::lock_guard lock(mu_);
  std::map<std::string, std::uint64_t> by;
  for (const auto& v : view_) {
    ++by[v.state];
  }
  return {{"rules", view_.size()},
          {"offloaded", by["offloaded"]},
          {"not_offloadable", by["not_offloadable"]},
          {"refused", by["refused"]},
          {"shadowed", by["shadowed"]},
          {"pending", by["pending"]},
          {"nic_rules", installed_.size()},
          {"creates", creates_},
          {"destroys", destroys_},
          {"refusals", refusals_},
          {"applies", applies_}};
}

}  // namespace viopool::offload
