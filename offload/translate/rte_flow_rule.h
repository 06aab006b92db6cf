// RteFlowRule: an rte_flow rule as plain data (attributes, pattern items with
// spec and mask, actions), what the translator produces, flow_dump prints
// in testpmd syntax and the installer hands to rte_flow_create. No DPDK types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "offload/model/flow_spec.h"

namespace viopool::offload {

enum class ItemType : std::uint8_t { kEth, kVlan, kIpv4, kIpv6, kTcp, kUdp, kIcmp, kIcmp6 };

// One pattern item; only the fields of its type are meaningful, and a field
// with a zero mask is not matched.
struct FlowItem {
  ItemType type = ItemType::kEth;
  // kEth
  Masked<Mac> eth_dst;
  Masked<Mac> eth_src;
  Masked<std::uint16_t> eth_type;
  std::optional<bool> has_vlan;
  // kVlan
  Masked<std::uint16_t> vlan_vid;  // 12 bits
  Masked<std::uint8_t> vlan_pcp;   // 3 bits
  Masked<std::uint16_t> inner_type;
  // kIpv4 (host byte order) / kIpv6
  Masked<std::uint32_t> ipv4_src;
  Masked<std::uint32_t> ipv4_dst;
  Masked<std::uint8_t> tos;  // IPv4 TOS / IPv6 traffic class
  Masked<std::uint8_t> proto;
  Masked<Ipv6Addr> ipv6_src;
  Masked<Ipv6Addr> ipv6_dst;
  Masked<std::uint32_t> ipv6_flow;  // 20-bit label
  // kTcp / kUdp
  Masked<std::uint16_t> port_src;
  Masked<std::uint16_t> port_dst;
  Masked<std::uint8_t> tcp_flags;
  // kIcmp / kIcmp6
  Masked<std::uint8_t> icmp_type;
  Masked<std::uint8_t> icmp_code;
  bool operator==(const FlowItem&) const = default;
};

enum class RteActionType : std::uint8_t {
  kQueue,       // value: queue index
  kRss,         // queues
  kDrop,
  kMark,        // value: mark id
  kCount,
  kMeter,       // value: meter id
  kOfPushVlan,  // value: TPID
  kOfPopVlan,
  kOfSetVlanVid,  // value
  kOfSetVlanPcp,  // value
  kSetMacSrc,     // mac
  kSetMacDst,     // mac
  kSetIpv4Src,    // value (host byte order)
  kSetIpv4Dst,
  kSetTpSrc,  // value
  kSetTpDst,
  kDecTtl,
  kPortId,  // value: DPDK port id
  kJump,    // value: group
};

struct RteAction {
  RteActionType type = RteActionType::kDrop;
  std::uint32_t value = 0;
  Mac mac{};
  std::vector<std::uint16_t> queues;
  bool operator==(const RteAction&) const = default;
};

struct RteFlowRule {
  std::uint16_t port = 0;  // the DPDK port the rule is created on
  std::uint32_t group = 0;
  std::uint32_t priority = 0;  // 0 is the highest
  bool ingress = true;
  bool transfer = false;
  std::vector<FlowItem> pattern;
  std::vector<RteAction> actions;
  std::uint16_t ovs_priority = 0;  // the OpenFlow priority it came from
  bool operator==(const RteFlowRule&) const = default;
};

}  // namespace viopool::offload
