// FlowSpec: viopool's model of one OpenFlow rule of the bridge it follows
// (docs/offload.md). What the rule matches and does, in OpenFlow's terms,
// parsed once; no DPDK types. Features that have no rte_flow form are kept
// by name in `unsupported`, so that every rule can say why it was not
// offloaded.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace viopool::offload {

using Mac = std::array<std::uint8_t, 6>;
using Ipv6Addr = std::array<std::uint8_t, 16>;

template <typename T>
struct Masked {
  T value{};
  T mask{};  // bits that must match; all ones: exact
  bool operator==(const Masked&) const = default;
};

enum class VlanMatch : std::uint8_t {
  kAny,       // no VLAN match
  kUntagged,  // dl_vlan=0xffff, vlan_tci=0
  kTagged,    // a tag present (vid and pcp optional)
};

struct FlowMatch {
  std::optional<std::string> in_port;  // an OVS port: ofport number or name, as written
  std::optional<Masked<Mac>> eth_src;
  std::optional<Masked<Mac>> eth_dst;
  std::optional<std::uint16_t> eth_type;
  VlanMatch vlan = VlanMatch::kAny;
  std::optional<std::uint16_t> vlan_vid;  // 0-4095, with kTagged
  std::optional<std::uint8_t> vlan_pcp;   // 0-7, with kTagged
  std::optional<Masked<std::uint32_t>> ipv4_src;  // host byte order
  std::optional<Masked<std::uint32_t>> ipv4_dst;
  std::optional<Masked<Ipv6Addr>> ipv6_src;
  std::optional<Masked<Ipv6Addr>> ipv6_dst;
  std::optional<std::uint32_t> ipv6_label;  // 20 bits
  std::optional<std::uint8_t> ip_proto;
  std::optional<std::uint8_t> ip_dscp;  // 0-63
  std::optional<Masked<std::uint16_t>> tp_src;
  std::optional<Masked<std::uint16_t>> tp_dst;
  std::optional<Masked<std::uint16_t>> tcp_flags;  // 12 bits
  std::optional<std::uint8_t> icmp_type;
  std::optional<std::uint8_t> icmp_code;
  bool operator==(const FlowMatch&) const = default;
};

enum class ActionKind : std::uint8_t {
  kOutput,      // port: an OVS port (number or name)
  kEnqueue,     // port, queue
  kSetQueue,    // queue: for the outputs that follow
  kDrop,
  kNormal,      // L2 forwarding
  kSetVlanVid,  // value
  kSetVlanPcp,  // value
  kPushVlan,    // value: the TPID
  kPopVlan,
  kSetEthSrc,  // mac
  kSetEthDst,  // mac
  kSetIpv4Src,  // value
  kSetIpv4Dst,  // value
  kSetTpSrc,    // value
  kSetTpDst,    // value
  kDecTtl,
  kMeter,  // value: the OpenFlow meter id
};

struct FlowAction {
  ActionKind kind = ActionKind::kDrop;
  std::string port;
  std::uint32_t value = 0;
  std::uint32_t queue = 0;
  Mac mac{};
  bool operator==(const FlowAction&) const = default;
};

struct FlowSpec {
  std::uint8_t table = 0;
  std::uint16_t priority = 32768;  // OpenFlow's default
  std::uint64_t cookie = 0;
  FlowMatch match;
  std::vector<FlowAction> actions;  // empty: drop
  // Match fields this model does not hold, as written ("ct_state=+trk"):
  // part of the rule's identity, and each a reason it is not offloadable.
  std::vector<std::string> other_match;
  // Why no rte_flow rule can express the rule, by OpenFlow feature
  // ("ct_state", "learn", "table=1").
  std::vector<std::string> unsupported;
  // The rule's identity in its table (table, priority and match, as OVS
  // identifies rules): equal for the same rule, whatever its actions.
  std::string key() const;
};

std::string to_string(const Mac& m);
std::string ipv4_to_string(std::uint32_t a);
std::string to_string(const Ipv6Addr& a);
// The match in ovs-ofctl syntax, fields in a fixed order ("priority=..." not included).
std::string to_string(const FlowMatch& m);
std::string to_string(const FlowAction& a);

}  // namespace viopool::offload
