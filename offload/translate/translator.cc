#include "offload/translate/translator.h"

#include <algorithm>
#include <map>
#include <set>

namespace viopool::offload {

namespace {

constexpr std::uint16_t kEthIpv4 = 0x0800;
constexpr std::uint16_t kEthIpv6 = 0x86dd;

template <typename T>
Masked<T> exact(T v) {
  return Masked<T>{v, static_cast<T>(~T{0})};
}

// The pattern for the match (without in_port, which picks the port).
void build_pattern(const FlowMatch& m, std::vector<FlowItem>& items,
                   std::vector<std::string>& reasons) {
  FlowItem eth;
  eth.type = ItemType::kEth;
  if (m.eth_dst) {
    eth.eth_dst = *m.eth_dst;
  }
  if (m.eth_src) {
    eth.eth_src = *m.eth_src;
  }
  const bool v4 = m.eth_type == kEthIpv4;
  const bool v6 = m.eth_type == kEthIpv6;
  const bool ip = v4 || v6;
  if (m.vlan == VlanMatch::kUntagged) {
    eth.has_vlan = false;
  }
  if (m.eth_type && !ip && m.vlan != VlanMatch::kTagged) {
    eth.eth_type = exact(*m.eth_type);
  }
  items.push_back(eth);
  if (m.vlan == VlanMatch::kTagged) {
    FlowItem vlan;
    vlan.type = ItemType::kVlan;
    if (m.vlan_vid) {
      vlan.vlan_vid = Masked<std::uint16_t>{*m.vlan_vid, 0x0fff};
    }
    if (m.vlan_pcp) {
      vlan.vlan_pcp = Masked<std::uint8_t>{*m.vlan_pcp, 0x07};
    }
    if (m.eth_type && !ip) {
      vlan.inner_type = exact(*m.eth_type);
    }
    items.push_back(vlan);
  }
  const bool has_l3_fields = m.ipv4_src || m.ipv4_dst || m.ipv6_src || m.ipv6_dst ||
                             m.ipv6_label || m.ip_proto || m.ip_dscp;
  if (!ip) {
    if (has_l3_fields || m.tp_src || m.tp_dst || m.tcp_flags || m.icmp_type || m.icmp_code) {
      reasons.push_back("IP fields without dl_type=0x0800 or 0x86dd");
    }
    return;
  }
  FlowItem l3;
  l3.type = v4 ? ItemType::kIpv4 : ItemType::kIpv6;
  if (v4) {
    if (m.ipv6_src || m.ipv6_dst || m.ipv6_label) {
      reasons.push_back("IPv6 fields on IPv4 traffic");
    }
    if (m.ipv4_src) {
      l3.ipv4_src = *m.ipv4_src;
    }
    if (m.ipv4_dst) {
      l3.ipv4_dst = *m.ipv4_dst;
    }
  } else {
    if (m.ipv4_src || m.ipv4_dst) {
      reasons.push_back("IPv4 addresses on IPv6 traffic");
    }
    if (m.ipv6_src) {
      l3.ipv6_src = *m.ipv6_src;
    }
    if (m.ipv6_dst) {
      l3.ipv6_dst = *m.ipv6_dst;
    }
    if (m.ipv6_label) {
      l3.ipv6_flow = Masked<std::uint32_t>{*m.ipv6_label, 0xfffff};
    }
  }
  if (m.ip_dscp) {
    l3.tos = Masked<std::uint8_t>{static_cast<std::uint8_t>(*m.ip_dscp << 2), 0xfc};
  }
  const std::uint8_t proto = m.ip_proto.value_or(0);
  const bool tcp = m.ip_proto && proto == 6;
  const bool udp = m.ip_proto && proto == 17;
  const bool icmp = m.ip_proto && ((v4 && proto == 1) || (v6 && proto == 58));
  if (m.ip_proto && !tcp && !udp && !icmp) {
    l3.proto = exact(proto);
  }
  items.push_back(l3);
  if ((m.tp_src || m.tp_dst) && !tcp && !udp) {
    reasons.push_back("tp_src/tp_dst without nw_proto=6 or 17");
  }
  if (m.tcp_flags && !tcp) {
    reasons.push_back("tcp_flags without nw_proto=6");
  }
  if ((m.icmp_type || m.icmp_code) && !icmp) {
    reasons.push_back("icmp_type/icmp_code without ICMP");
  }
  if (tcp || udp) {
    FlowItem l4;
    l4.type = tcp ? ItemType::kTcp : ItemType::kUdp;
    if (m.tp_src) {
      l4.port_src = *m.tp_src;
    }
    if (m.tp_dst) {
      l4.port_dst = *m.tp_dst;
    }
    if (tcp && m.tcp_flags) {
      if ((m.tcp_flags->mask & 0xf00) != 0) {
        reasons.push_back("tcp_flags NS bit (rte_flow's TCP item has 8 flag bits)");
      }
      l4.tcp_flags = Masked<std::uint8_t>{static_cast<std::uint8_t>(m.tcp_flags->value & 0xff),
                                          static_cast<std::uint8_t>(m.tcp_flags->mask & 0xff)};
    }
    items.push_back(l4);
  } else if (icmp) {
    FlowItem l4;
    l4.type = v4 ? ItemType::kIcmp : ItemType::kIcmp6;
    if (m.icmp_type) {
      l4.icmp_type = exact(*m.icmp_type);
    }
    if (m.icmp_code) {
      l4.icmp_code = exact(*m.icmp_code);
    }
    items.push_back(l4);
  }
}

}  // namespace

Translation translate(const FlowSpec& f, const PortMap& ports) {
  Translation t;
  for (const auto& u : f.unsupported) {
    t.reasons.push_back(u);
  }
  const FlowMatch& m = f.match;
  // Where the rule goes.
  std::vector<std::uint16_t> where;
  if (m.in_port) {
    const PortBinding* b = ports.find(*m.in_port);
    if (b == nullptr) {
      t.reasons.push_back("in_port=" + *m.in_port + " is not a DPDK port here");
    } else if (b->is_vnic()) {
      t.reasons.push_back("in_port=" + *m.in_port +
                          " is a vNIC: its traffic does not enter through the NIC");
    } else {
      where.push_back(b->dpdk_port);
    }
  } else {
    where = ports.uplinks();
    if (where.empty()) {
      t.reasons.push_back("no uplink is mapped to a DPDK port");
    }
  }
  std::vector<FlowItem> pattern;
  build_pattern(m, pattern, t.reasons);

  // Actions, in OpenFlow order: what modifies the packet counts only if an
  // output follows; one output at most.
  const bool ipv4 = m.eth_type == kEthIpv4;
  const bool ip = ipv4 || m.eth_type == kEthIpv6;
  const bool l4 = ip && m.ip_proto && (*m.ip_proto == 6 || *m.ip_proto == 17);
  std::vector<RteAction> mods;
  std::vector<RteAction> pre;  // meter
  const FlowAction* output = nullptr;
  bool normal = false;
  bool drop = false;
  VlanMatch vlan = m.vlan;
  for (const auto& a : f.actions) {
    if (output != nullptr || normal) {
      if (a.kind == ActionKind::kOutput || a.kind == ActionKind::kNormal ||
          a.kind == ActionKind::kEnqueue) {
        t.reasons.push_back("output to more than one port");
      }
      continue;  // a change after the output changes nothing sent
    }
    RteAction r;
    switch (a.kind) {
      case ActionKind::kOutput:
        output = &a;
        break;
      case ActionKind::kNormal:
        normal = true;
        break;
      case ActionKind::kDrop:
        drop = true;
        break;
      case ActionKind::kEnqueue:
        t.reasons.push_back("enqueue (an egress queue)");
        break;
      case ActionKind::kSetQueue:
        t.reasons.push_back("set_queue (an egress queue)");
        break;
      case ActionKind::kMeter:
        r.type = RteActionType::kMeter;
        r.value = a.value;
        pre.push_back(r);
        break;
      case ActionKind::kSetVlanVid:
        if (vlan == VlanMatch::kAny) {
          t.reasons.push_back(
              "mod_vlan_vid on traffic that may or may not be tagged (match dl_vlan or vlan_tci)");
          break;
        }
        if (vlan == VlanMatch::kUntagged) {
          mods.push_back(RteAction{RteActionType::kOfPushVlan, 0x8100, {}, {}});
          mods.push_back(RteAction{RteActionType::kOfSetVlanPcp, 0, {}, {}});
          vlan = VlanMatch::kTagged;
        }
        mods.push_back(RteAction{RteActionType::kOfSetVlanVid, a.value, {}, {}});
        break;
      case ActionKind::kSetVlanPcp:
        if (vlan != VlanMatch::kTagged) {
          t.reasons.push_back("mod_vlan_pcp on traffic not known to be tagged");
          break;
        }
        mods.push_back(RteAction{RteActionType::kOfSetVlanPcp, a.value, {}, {}});
        break;
      case ActionKind::kPushVlan:
        mods.push_back(RteAction{RteActionType::kOfPushVlan, a.value, {}, {}});
        vlan = VlanMatch::kTagged;
        break;
      case ActionKind::kPopVlan:
        if (vlan == VlanMatch::kUntagged) {
          break;  // nothing to pop
        }
        if (vlan == VlanMatch::kAny) {
          t.reasons.push_back("strip_vlan on traffic that may or may not be tagged");
          break;
        }
        mods.push_back(RteAction{RteActionType::kOfPopVlan, 0, {}, {}});
        vlan = VlanMatch::kUntagged;
        break;
      case ActionKind::kSetEthSrc:
      case ActionKind::kSetEthDst:
        r.type = a.kind == ActionKind::kSetEthSrc ? RteActionType::kSetMacSrc
                                                  : RteActionType::kSetMacDst;
        r.mac = a.mac;
        mods.push_back(r);
        break;
      case ActionKind::kSetIpv4Src:
      case ActionKind::kSetIpv4Dst:
        if (!ipv4) {
          t.reasons.push_back("mod_nw_src/mod_nw_dst without dl_type=0x0800");
          break;
        }
        r.type = a.kind == ActionKind::kSetIpv4Src ? RteActionType::kSetIpv4Src
                                                   : RteActionType::kSetIpv4Dst;
        r.value = a.value;
        mods.push_back(r);
        break;
      case ActionKind::kSetTpSrc:
      case ActionKind::kSetTpDst:
        if (!l4) {
          t.reasons.push_back("mod_tp_src/mod_tp_dst without nw_proto=6 or 17");
          break;
        }
        r.type = a.kind == ActionKind::kSetTpSrc ? RteActionType::kSetTpSrc
                                                 : RteActionType::kSetTpDst;
        r.value = a.value;
        mods.push_back(r);
        break;
      case ActionKind::kDecTtl:
        if (!ip) {
          t.reasons.push_back("dec_ttl without IP");
          break;
        }
        mods.push_back(RteAction{RteActionType::kDecTtl, 0, {}, {}});
        break;
    }
  }
  (void)drop;
  // The fate, per port.
  for (std::uint16_t port : where) {
    const auto base = [&] {
      RteFlowRule r;
      r.port = port;
      r.ovs_priority = f.priority;
      r.pattern = pattern;
      r.actions = pre;
      return r;
    };
    if (output != nullptr) {
      const PortBinding* b = ports.find(output->port);
      RteFlowRule r = base();
      if (b == nullptr) {
        t.reasons.push_back("output:" + output->port + " is not a DPDK port or vNIC here");
        continue;
      }
      r.actions.insert(r.actions.end(), mods.begin(), mods.end());
      if (b->is_vnic()) {
        if (b->dpdk_port != port) {
          t.reasons.push_back("output:" + output->port + " is a vNIC of another uplink");
          continue;
        }
        if (b->mark) {
          r.actions.push_back(RteAction{RteActionType::kMark, *b->mark, {}, {}});
        }
        r.actions.push_back(RteAction{RteActionType::kQueue, *b->queue, {}, {}});
      } else if (b->dpdk_port == port) {
        t.reasons.push_back("output:" + output->port + " is the port the traffic came in on");
        continue;
      } else {
        r.actions.push_back(RteAction{RteActionType::kPortId, b->dpdk_port, {}, {}});
      }
      r.actions.push_back(RteAction{RteActionType::kCount, 0, {}, {}});
      t.rules.push_back(std::move(r));
    } else if (normal) {
      // Unicast to each vNIC this port serves; whatever else (broadcast,
      // unknown destinations, flooding) stays on OVS's path.
      const auto& dst = m.eth_dst;
      std::size_t made = 0;
      for (const auto& b : ports.ports) {
        // A vNIC on a tagged access port gets only its VLAN's frames from
        // OVS: left to OVS.
        if (!b.is_vnic() || b.dpdk_port != port || !b.mac || b.access_vlan) {
          continue;
        }
        if (dst) {
          bool agrees = true;
          for (int i = 0; i < 6; ++i) {
            agrees &= ((*b.mac)[i] & dst->mask[i]) == dst->value[i];
          }
          if (!agrees) {
            continue;
          }
        }
        RteFlowRule r = base();
        r.pattern.front().eth_dst = Masked<Mac>{*b.mac, Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
        if (m.vlan == VlanMatch::kAny) {
          r.pattern.front().has_vlan = false;  // tagged frames go to their VLAN's ports: OVS
        }
        r.actions.insert(r.actions.end(), mods.begin(), mods.end());
        if (b.mark) {
          r.actions.push_back(RteAction{RteActionType::kMark, *b.mark, {}, {}});
        }
        r.actions.push_back(RteAction{RteActionType::kQueue, *b.queue, {}, {}});
        r.actions.push_back(RteAction{RteActionType::kCount, 0, {}, {}});
        t.rules.push_back(std::move(r));
        ++made;
      }
      if (made == 0) {
        t.reasons.push_back("NORMAL: no vNIC with a known MAC on this port");
      }
    } else {
      RteFlowRule r = base();  // no output: OpenFlow drops
      r.actions.push_back(RteAction{RteActionType::kDrop, 0, {}, {}});
      r.actions.push_back(RteAction{RteActionType::kCount, 0, {}, {}});
      t.rules.push_back(std::move(r));
    }
  }
  if (!t.reasons.empty()) {
    t.rules.clear();
    std::sort(t.reasons.begin(), t.reasons.end());
    t.reasons.erase(std::unique(t.reasons.begin(), t.reasons.end()), t.reasons.end());
  }
  return t;
}

std::vector<RteFlowRule> plan_priorities(std::vector<RteFlowRule> rules, std::uint32_t levels) {
  std::set<std::uint16_t, std::greater<>> distinct;
  for (const auto& r : rules) {
    distinct.insert(r.ovs_priority);
  }
  std::map<std::uint16_t, std::uint32_t> rank;
  for (auto p : distinct) {
    const auto n = static_cast<std::uint32_t>(rank.size());
    rank[p] = n;
  }
  const bool spill = distinct.size() > levels;
  const std::uint32_t per = spill ? levels - 1 : levels;
  std::uint32_t groups = 1;
  for (auto& r : rules) {
    const std::uint32_t k = rank[r.ovs_priority];
    r.group = k / per;
    r.priority = k % per;
    groups = std::max(groups, r.group + 1);
  }
  if (spill) {
    std::set<std::uint16_t> ports;
    for (const auto& r : rules) {
      ports.insert(r.port);
    }
    for (auto port : ports) {
      for (std::uint32_t g = 0; g + 1 < groups; ++g) {
        RteFlowRule j;
        j.port = port;
        j.group = g;
        j.priority = levels - 1;
        FlowItem eth;
        eth.type = ItemType::kEth;
        j.pattern.push_back(eth);
        j.actions.push_back(RteAction{RteActionType::kJump, g + 1, {}, {}});
        rules.push_back(std::move(j));
      }
    }
  }
  return rules;
}

}  // namespace viopool::offload
