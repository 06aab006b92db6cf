#include "offload/rte_flow/rte_flow_offloader.h"

#include <arpa/inet.h>
#include <rte_errno.h>
#include <rte_flow.h>

#include <cstring>
#include <deque>
#include <variant>
#include <vector>

#include "offload/translate/flow_dump.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("rte-flow")

namespace viopool::offload {

namespace {

// The rte_flow structures of one rule, alive for the duration of a call.
struct Built {
  rte_flow_attr attr{};
  std::vector<rte_flow_item> items;
  std::vector<rte_flow_action> actions;
  std::deque<std::variant<rte_flow_item_eth, rte_flow_item_vlan, rte_flow_item_ipv4,
                          rte_flow_item_ipv6, rte_flow_item_tcp, rte_flow_item_udp,
                          rte_flow_item_icmp, rte_flow_item_icmp6>>
      specs;
  std::deque<std::variant<rte_flow_action_queue, rte_flow_action_mark, rte_flow_action_count,
                          rte_flow_action_meter, rte_flow_action_of_push_vlan,
                          rte_flow_action_of_set_vlan_vid, rte_flow_action_of_set_vlan_pcp,
                          rte_flow_action_set_mac, rte_flow_action_set_ipv4,
                          rte_flow_action_set_tp, rte_flow_action_port_id, rte_flow_action_jump,
                          rte_flow_action_rss>>
      confs;
  std::deque<std::vector<std::uint16_t>> queue_lists;
};

template <typename T>
std::pair<const void*, const void*> add_pair(Built& b, const T& spec, const T& mask) {
  b.specs.emplace_back(spec);
  const void* s = &std::get<T>(b.specs.back());
  b.specs.emplace_back(mask);
  const void* m = &std::get<T>(b.specs.back());
  return {s, m};
}

template <typename T>
const void* add_conf(Built& b, const T& c) {
  b.confs.emplace_back(c);
  return &std::get<T>(b.confs.back());
}

void build(const RteFlowRule& r, Built& b) {
  b.attr.group = r.group;
  b.attr.priority = r.priority;
  b.attr.ingress = r.ingress ? 1 : 0;
  b.attr.transfer = r.transfer ? 1 : 0;
  for (const auto& i : r.pattern) {
    rte_flow_item it{};
    switch (i.type) {
      case ItemType::kEth: {
        rte_flow_item_eth s{};
        rte_flow_item_eth m{};
        std::memcpy(s.hdr.dst_addr.addr_bytes, i.eth_dst.value.data(), 6);
        std::memcpy(m.hdr.dst_addr.addr_bytes, i.eth_dst.mask.data(), 6);
        std::memcpy(s.hdr.src_addr.addr_bytes, i.eth_src.value.data(), 6);
        std::memcpy(m.hdr.src_addr.addr_bytes, i.eth_src.mask.data(), 6);
        s.hdr.ether_type = htons(i.eth_type.value);
        m.hdr.ether_type = htons(i.eth_type.mask);
        if (i.has_vlan) {
          s.has_vlan = *i.has_vlan ? 1 : 0;
          m.has_vlan = 1;
        }
        it.type = RTE_FLOW_ITEM_TYPE_ETH;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kVlan: {
        rte_flow_item_vlan s{};
        rte_flow_item_vlan m{};
        s.hdr.vlan_tci = htons(static_cast<std::uint16_t>(i.vlan_pcp.value << 13 | i.vlan_vid.value));
        m.hdr.vlan_tci = htons(static_cast<std::uint16_t>(i.vlan_pcp.mask << 13 | i.vlan_vid.mask));
        s.hdr.eth_proto = htons(i.inner_type.value);
        m.hdr.eth_proto = htons(i.inner_type.mask);
        it.type = RTE_FLOW_ITEM_TYPE_VLAN;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kIpv4: {
        rte_flow_item_ipv4 s{};
        rte_flow_item_ipv4 m{};
        s.hdr.src_addr = htonl(i.ipv4_src.value);
        m.hdr.src_addr = htonl(i.ipv4_src.mask);
        s.hdr.dst_addr = htonl(i.ipv4_dst.value);
        m.hdr.dst_addr = htonl(i.ipv4_dst.mask);
        s.hdr.type_of_service = i.tos.value;
        m.hdr.type_of_service = i.tos.mask;
        s.hdr.next_proto_id = i.proto.value;
        m.hdr.next_proto_id = i.proto.mask;
        it.type = RTE_FLOW_ITEM_TYPE_IPV4;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kIpv6: {
        rte_flow_item_ipv6 s{};
        rte_flow_item_ipv6 m{};
        std::memcpy(s.hdr.src_addr, i.ipv6_src.value.data(), 16);
        std::memcpy(m.hdr.src_addr, i.ipv6_src.mask.data(), 16);
        std::memcpy(s.hdr.dst_addr, i.ipv6_dst.value.data(), 16);
        std::memcpy(m.hdr.dst_addr, i.ipv6_dst.mask.data(), 16);
        s.hdr.vtc_flow = htonl(std::uint32_t{i.tos.value} << 20 | i.ipv6_flow.value);
        m.hdr.vtc_flow = htonl(std::uint32_t{i.tos.mask} << 20 | i.ipv6_flow.mask);
        s.hdr.proto = i.proto.value;
        m.hdr.proto = i.proto.mask;
        it.type = RTE_FLOW_ITEM_TYPE_IPV6;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kTcp: {
        rte_flow_item_tcp s{};
        rte_flow_item_tcp m{};
        s.hdr.src_port = htons(i.port_src.value);
        m.hdr.src_port = htons(i.port_src.mask);
        s.hdr.dst_port = htons(i.port_dst.value);
        m.hdr.dst_port = htons(i.port_dst.mask);
        s.hdr.tcp_flags = i.tcp_flags.value;
        m.hdr.tcp_flags = i.tcp_flags.mask;
        it.type = RTE_FLOW_ITEM_TYPE_TCP;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kUdp: {
        rte_flow_item_udp s{};
        rte_flow_item_udp m{};
        s.hdr.src_port = htons(i.port_src.value);
        m.hdr.src_port = htons(i.port_src.mask);
        s.hdr.dst_port = htons(i.port_dst.value);
        m.hdr.dst_port = htons(i.port_dst.mask);
        it.type = RTE_FLOW_ITEM_TYPE_UDP;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kIcmp: {
        rte_flow_item_icmp s{};
        rte_flow_item_icmp m{};
        s.hdr.icmp_type = i.icmp_type.value;
        m.hdr.icmp_type = i.icmp_type.mask;
        s.hdr.icmp_code = i.icmp_code.value;
        m.hdr.icmp_code = i.icmp_code.mask;
        it.type = RTE_FLOW_ITEM_TYPE_ICMP;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
      case ItemType::kIcmp6: {
        rte_flow_item_icmp6 s{};
        rte_flow_item_icmp6 m{};
        s.type = i.icmp_type.value;
        m.type = i.icmp_type.mask;
        s.code = i.icmp_code.value;
        m.code = i.icmp_code.mask;
        it.type = RTE_FLOW_ITEM_TYPE_ICMP6;
        std::tie(it.spec, it.mask) = add_pair(b, s, m);
        break;
      }
    }
    b.items.push_back(it);
  }
  b.items.push_back(rte_flow_item{RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr});
  for (const auto& a : r.actions) {
    rte_flow_action act{};
    switch (a.type) {
      case RteActionType::kQueue:
        act.type = RTE_FLOW_ACTION_TYPE_QUEUE;
        act.conf = add_conf(b, rte_flow_action_queue{static_cast<std::uint16_t>(a.value)});
        break;
      case RteActionType::kRss: {
        b.queue_lists.push_back(a.queues);
        rte_flow_action_rss rss{};
        rss.func = RTE_ETH_HASH_FUNCTION_DEFAULT;
        rss.queue_num = static_cast<std::uint32_t>(b.queue_lists.back().size());
        rss.queue = b.queue_lists.back().data();
        act.type = RTE_FLOW_ACTION_TYPE_RSS;
        act.conf = add_conf(b, rss);
        break;
      }
      case RteActionType::kDrop:
        act.type = RTE_FLOW_ACTION_TYPE_DROP;
        break;
      case RteActionType::kMark:
        act.type = RTE_FLOW_ACTION_TYPE_MARK;
        act.conf = add_conf(b, rte_flow_action_mark{a.value});
        break;
      case RteActionType::kCount:
        act.type = RTE_FLOW_ACTION_TYPE_COUNT;
        act.conf = add_conf(b, rte_flow_action_count{});
        break;
      case RteActionType::kMeter:
        act.type = RTE_FLOW_ACTION_TYPE_METER;
        act.conf = add_conf(b, rte_flow_action_meter{a.value});
        break;
      case RteActionType::kOfPushVlan:
        act.type = RTE_FLOW_ACTION_TYPE_OF_PUSH_VLAN;
        act.conf = add_conf(b, rte_flow_action_of_push_vlan{htons(static_cast<std::uint16_t>(a.value))});
        break;
      case RteActionType::kOfPopVlan:
        act.type = RTE_FLOW_ACTION_TYPE_OF_POP_VLAN;
        break;
      case RteActionType::kOfSetVlanVid:
        act.type = RTE_FLOW_ACTION_TYPE_OF_SET_VLAN_VID;
        act.conf = add_conf(b, rte_flow_action_of_set_vlan_vid{htons(static_cast<std::uint16_t>(a.value))});
        break;
      case RteActionType::kOfSetVlanPcp:
        act.type = RTE_FLOW_ACTION_TYPE_OF_SET_VLAN_PCP;
        act.conf = add_conf(b, rte_flow_action_of_set_vlan_pcp{static_cast<std::uint8_t>(a.value)});
        break;
      case RteActionType::kSetMacSrc:
      case RteActionType::kSetMacDst: {
        act.type = a.type == RteActionType::kSetMacSrc ? RTE_FLOW_ACTION_TYPE_SET_MAC_SRC
                                                       : RTE_FLOW_ACTION_TYPE_SET_MAC_DST;
        rte_flow_action_set_mac m{};
        std::memcpy(m.mac_addr, a.mac.data(), 6);
        act.conf = add_conf(b, m);
        break;
      }
      case RteActionType::kSetIpv4Src:
      case RteActionType::kSetIpv4Dst:
        act.type = a.type == RteActionType::kSetIpv4Src ? RTE_FLOW_ACTION_TYPE_SET_IPV4_SRC
                                                        : RTE_FLOW_ACTION_TYPE_SET_IPV4_DST;
        act.conf = add_conf(b, rte_flow_action_set_ipv4{htonl(a.value)});
        break;
      case RteActionType::kSetTpSrc:
      case RteActionType::kSetTpDst:
        act.type = a.type == RteActionType::kSetTpSrc ? RTE_FLOW_ACTION_TYPE_SET_TP_SRC
                                                      : RTE_FLOW_ACTION_TYPE_SET_TP_DST;
        act.conf = add_conf(b, rte_flow_action_set_tp{htons(static_cast<std::uint16_t>(a.value))});
        break;
      case RteActionType::kDecTtl:
        act.type = RTE_FLOW_ACTION_TYPE_DEC_TTL;
        break;
      case RteActionType::kPortId: {
        rte_flow_action_port_id p{};
        p.id = a.value;
        act.type = RTE_FLOW_ACTION_TYPE_PORT_ID;
        act.conf = add_conf(b, p);
        break;
      }
      case RteActionType::kJump:
        act.type = RTE_FLOW_ACTION_TYPE_JUMP;
        act.conf = add_conf(b, rte_flow_action_jump{a.value});
        break;
    }
    b.actions.push_back(act);
  }
  b.actions.push_back(rte_flow_action{RTE_FLOW_ACTION_TYPE_END, nullptr});
}

std::string error_text(const rte_flow_error& e, int err) {
  std::string s = e.message != nullptr ? e.message : "";
  const int code = err != 0 ? err : rte_errno;
  if (code != 0) {
    s += (s.empty() ? "" : ": ") + std::string(std::strerror(code));
  }
  return s.empty() ? "refused without a reason" : s;
}

}  // namespace

RteFlowOffloader::~RteFlowOffloader() {
  for (auto& [h, r] : rules_) {
    rte_flow_error e{};
    rte_flow_destroy(r.port, r.flow, &e);
  }
}

Result<std::uint64_t> RteFlowOffloader::put(const RteFlowRule& r, std::string& nic_error) {
  Built b;
  build(r, b);
  const std::string line = flow_dump(r);
  rte_flow_error e{};
  int rc = rte_flow_validate(r.port, &b.attr, b.items.data(), b.actions.data(), &e);
  if (rc != 0) {
    nic_error = "validate: " + error_text(e, -rc);
    VIOPOOL_LOG_INFO("refused {} ({})", line, nic_error);
    return fail(Errc::kUnsupported, "rte_flow: refused");
  }
  e = rte_flow_error{};
  rte_flow* f = rte_flow_create(r.port, &b.attr, b.items.data(), b.actions.data(), &e);
  if (f == nullptr) {
    nic_error = "create: " + error_text(e, 0);
    VIOPOOL_LOG_INFO("refused {} ({})", line, nic_error);
    return fail(Errc::kUnsupported, "rte_flow: refused");
  }
  std::lock_guard lock(mu_);
  const std::uint64_t h = next_++;
  rules_[h] = Rule{r.port, f};
  VIOPOOL_LOG_INFO("{}", line);
  return h;
}

Result<void> RteFlowOffloader::del(std::uint64_t handle, std::string& why) {
  std::lock_guard lock(mu_);
  auto it = rules_.find(handle);
  if (it == rules_.end()) {
    why = "no rule " + std::to_string(handle);
    return fail(Errc::kNotFound, "rte_flow: no such rule");
  }
  rte_flow_error e{};
  const int rc = rte_flow_destroy(it->second.port, it->second.flow, &e);
  if (rc != 0) {
    why = error_text(e, -rc);  // still on the NIC: kept, so that it can be retried
    return fail(Errc::kIo, "rte_flow: destroy failed");
  }
  rules_.erase(it);
  return {};
}

Result<FlowCounters> RteFlowOffloader::query(std::uint64_t handle, std::string& why) {
  std::lock_guard lock(mu_);
  auto it = rules_.find(handle);
  if (it == rules_.end()) {
    why = "no rule " + std::to_string(handle);
    return fail(Errc::kNotFound, "rte_flow: no such rule");
  }
  rte_flow_query_count c{};
  const rte_flow_action count[] = {{RTE_FLOW_ACTION_TYPE_COUNT, nullptr},
                                   {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  rte_flow_error e{};
  const int rc = rte_flow_query(it->second.port, it->second.flow, count, &c, &e);
  if (rc != 0) {
    why = error_text(e, -rc);
    return fail(Errc::kUnsupported, "rte_flow: query failed");
  }
  return FlowCounters{c.hits_set ? c.hits : 0, c.bytes_set ? c.bytes : 0};
}

void RteFlowOffloader::flush(std::uint16_t port) {
  rte_flow_error e{};
  if (rte_flow_flush(port, &e) != 0) {
    VIOPOOL_LOG_DEBUG("port {}: flush: {}", port, error_text(e, 0));
  }
  std::lock_guard lock(mu_);
  std::erase_if(rules_, [&](const auto& kv) { return kv.second.port == port; });
}

std::uint32_t RteFlowOffloader::priority_levels(std::uint16_t port) const {
  if (levels_cfg_ != 0) {
    return levels_cfg_;
  }
  std::lock_guard lock(mu_);
  if (auto it = levels_.find(port); it != levels_.end()) {
    return it->second;
  }
  std::uint32_t levels = 2;
  for (std::uint32_t n : {8u, 4u}) {
    rte_flow_attr attr{};
    attr.ingress = 1;
    attr.priority = n - 1;
    const rte_flow_item items[] = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr},
                                   {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
    const rte_flow_action actions[] = {{RTE_FLOW_ACTION_TYPE_DROP, nullptr},
                                       {RTE_FLOW_ACTION_TYPE_END, nullptr}};
    rte_flow_error e{};
    if (rte_flow_validate(port, &attr, items, actions, &e) == 0) {
      levels = n;
      break;
    }
  }
  levels_[port] = levels;
  return levels;
}

}  // namespace viopool::offload
