#include "offload/translate/flow_dump.h"

#include <cstdio>

namespace viopool::offload {

namespace {

template <typename T>
bool is_zero(const T& v) {
  if constexpr (std::is_integral_v<T>) {
    return v == 0;
  } else {
    for (auto b : v) {
      if (b != 0) {
        return false;
      }
    }
    return true;
  }
}

template <typename T>
bool is_full(const T& v, T full) {
  return v == full;
}

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// " name is V" for an exact match, " name spec V name mask M" otherwise,
// nothing for a zero mask.
template <typename T, typename F>
void field(std::string& out, const char* name, const Masked<T>& f, const T& full, F fmt) {
  if (is_zero(f.mask)) {
    return;
  }
  if (is_full(f.mask, full)) {
    out += std::string(" ") + name + " is " + fmt(f.value);
  } else {
    out += std::string(" ") + name + " spec " + fmt(f.value) + " " + name + " mask " + fmt(f.mask);
  }
}

const Mac kMacFull{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
Ipv6Addr ipv6_full() {
  Ipv6Addr a;
  a.fill(0xff);
  return a;
}

std::string item(const FlowItem& i) {
  std::string s;
  const auto mac = [](const Mac& m) { return to_string(m); };
  const auto dec = [](auto v) { return std::to_string(v); };
  const auto hx = [](auto v) { return hex(v); };
  const auto v4 = [](std::uint32_t a) { return ipv4_to_string(a); };
  const auto v6 = [](const Ipv6Addr& a) { return to_string(a); };
  switch (i.type) {
    case ItemType::kEth:
      s = "eth";
      field(s, "dst", i.eth_dst, kMacFull, mac);
      field(s, "src", i.eth_src, kMacFull, mac);
      field(s, "type", i.eth_type, std::uint16_t{0xffff}, hx);
      if (i.has_vlan) {
        s += std::string(" has_vlan is ") + (*i.has_vlan ? "1" : "0");
      }
      break;
    case ItemType::kVlan:
      s = "vlan";
      field(s, "vid", i.vlan_vid, std::uint16_t{0x0fff}, dec);
      field(s, "pcp", i.vlan_pcp, std::uint8_t{0x07}, dec);
      field(s, "inner_type", i.inner_type, std::uint16_t{0xffff}, hx);
      break;
    case ItemType::kIpv4:
      s = "ipv4";
      field(s, "src", i.ipv4_src, std::uint32_t{0xffffffff}, v4);
      field(s, "dst", i.ipv4_dst, std::uint32_t{0xffffffff}, v4);
      field(s, "tos", i.tos, std::uint8_t{0xff}, hx);
      field(s, "proto", i.proto, std::uint8_t{0xff}, dec);
      break;
    case ItemType::kIpv6:
      s = "ipv6";
      field(s, "src", i.ipv6_src, ipv6_full(), v6);
      field(s, "dst", i.ipv6_dst, ipv6_full(), v6);
      field(s, "tc", i.tos, std::uint8_t{0xff}, hx);
      field(s, "flow", i.ipv6_flow, std::uint32_t{0xfffff}, hx);
      field(s, "proto", i.proto, std::uint8_t{0xff}, dec);
      break;
    case ItemType::kTcp:
    case ItemType::kUdp:
      s = i.type == ItemType::kTcp ? "tcp" : "udp";
      field(s, "src", i.port_src, std::uint16_t{0xffff}, [&](std::uint16_t v) {
        return is_full(i.port_src.mask, std::uint16_t{0xffff}) ? dec(v) : hx(v);
      });
      field(s, "dst", i.port_dst, std::uint16_t{0xffff}, [&](std::uint16_t v) {
        return is_full(i.port_dst.mask, std::uint16_t{0xffff}) ? dec(v) : hx(v);
      });
      field(s, "flags", i.tcp_flags, std::uint8_t{0xff}, hx);
      break;
    case ItemType::kIcmp:
    case ItemType::kIcmp6:
      s = i.type == ItemType::kIcmp ? "icmp" : "icmp6";
      field(s, "type", i.icmp_type, std::uint8_t{0xff}, dec);
      field(s, "code", i.icmp_code, std::uint8_t{0xff}, dec);
      break;
  }
  return s;
}

std::string action(const RteAction& a) {
  switch (a.type) {
    case RteActionType::kQueue: return "queue index " + std::to_string(a.value);
    case RteActionType::kRss: {
      std::string s = "rss queues";
      for (auto q : a.queues) {
        s += " " + std::to_string(q);
      }
      return s + " end";
    }
    case RteActionType::kDrop: return "drop";
    case RteActionType::kMark: return "mark id " + std::to_string(a.value);
    case RteActionType::kCount: return "count";
    case RteActionType::kMeter: return "meter mtr_id " + std::to_string(a.value);
    case RteActionType::kOfPushVlan: return "of_push_vlan ethertype " + hex(a.value);
    case RteActionType::kOfPopVlan: return "of_pop_vlan";
    case RteActionType::kOfSetVlanVid: return "of_set_vlan_vid vlan_vid " + std::to_string(a.value);
    case RteActionType::kOfSetVlanPcp: return "of_set_vlan_pcp vlan_pcp " + std::to_string(a.value);
    case RteActionType::kSetMacSrc: return "set_mac_src mac_addr " + to_string(a.mac);
    case RteActionType::kSetMacDst: return "set_mac_dst mac_addr " + to_string(a.mac);
    case RteActionType::kSetIpv4Src: return "set_ipv4_src ipv4_addr " + ipv4_to_string(a.value);
    case RteActionType::kSetIpv4Dst: return "set_ipv4_dst ipv4_addr " + ipv4_to_string(a.value);
    case RteActionType::kSetTpSrc: return "set_tp_src port " + std::to_string(a.value);
    case RteActionType::kSetTpDst: return "set_tp_dst port " + std::to_string(a.value);
    case RteActionType::kDecTtl: return "dec_ttl";
    case RteActionType::kPortId: return "port_id id " + std::to_string(a.value);
    case RteActionType::kJump: return "jump group " + std::to_string(a.value);
  }
  return "?";
}

}  // namespace

std::string flow_dump(const RteFlowRule& r) {
  std::string s = "flow create " + std::to_string(r.port) + " group " + std::to_string(r.group) +
                  " priority " + std::to_string(r.priority) + (r.ingress ? " ingress" : "") +
                  (r.transfer ? " transfer" : "") + " pattern";
  for (const auto& i : r.pattern) {
    s += " " + item(i) + " /";
  }
  s += " end actions";
  for (const auto& a : r.actions) {
    s += " " + action(a) + " /";
  }
  return s + " end";
}

}  // namespace viopool::offload
