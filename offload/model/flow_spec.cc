#include "offload/model/flow_spec.h"

#include <arpa/inet.h>

#include <cstdio>

namespace viopool::offload {

namespace {

template <typename T>
bool full(const T& mask) {
  if constexpr (std::is_integral_v<T>) {
    return mask == static_cast<T>(~T{0});
  } else {
    for (auto b : mask) {
      if (b != 0xff) {
        return false;
      }
    }
    return true;
  }
}

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// Prefix length of a contiguous mask, or -1.
int prefix_len(std::uint32_t mask) {
  int n = 0;
  while (n < 32 && (mask & (0x80000000u >> n)) != 0) {
    ++n;
  }
  const std::uint32_t contiguous = n == 0 ? 0 : ~0u << (32 - n);
  return contiguous == mask ? n : -1;
}

int prefix_len(const Ipv6Addr& m) {
  int n = 0;
  bool ended = false;
  for (auto b : m) {
    for (int i = 7; i >= 0; --i) {
      const bool bit = (b >> i) & 1;
      if (bit && ended) {
        return -1;
      }
      if (bit) {
        ++n;
      } else {
        ended = true;
      }
    }
  }
  return n;
}

void add(std::string& out, const std::string& field) {
  if (!out.empty()) {
    out += ",";
  }
  out += field;
}

}  // namespace

std::string to_string(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

std::string ipv4_to_string(std::uint32_t a) {
  char b[16];
  std::snprintf(b, sizeof b, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  return b;
}

std::string to_string(const Ipv6Addr& a) {
  char b[INET6_ADDRSTRLEN];
  ::inet_ntop(AF_INET6, a.data(), b, sizeof b);
  return b;
}

std::string to_string(const FlowMatch& m) {
  std::string out;
  if (m.in_port) {
    add(out, "in_port=" + *m.in_port);
  }
  const auto mac = [&](const char* name, const std::optional<Masked<Mac>>& v) {
    if (v) {
      add(out, std::string(name) + "=" + to_string(v->value) +
                   (full(v->mask) ? "" : "/" + to_string(v->mask)));
    }
  };
  mac("dl_src", m.eth_src);
  mac("dl_dst", m.eth_dst);
  if (m.eth_type) {
    add(out, "dl_type=" + hex(*m.eth_type));
  }
  if (m.vlan == VlanMatch::kUntagged) {
    add(out, "vlan_tci=0x0000/0x1fff");
  } else if (m.vlan == VlanMatch::kTagged) {
    if (m.vlan_vid) {
      add(out, "dl_vlan=" + std::to_string(*m.vlan_vid));
    } else {
      add(out, "vlan_tci=0x1000/0x1000");
    }
    if (m.vlan_pcp) {
      add(out, "dl_vlan_pcp=" + std::to_string(*m.vlan_pcp));
    }
  }
  const auto v4 = [&](const char* name, const std::optional<Masked<std::uint32_t>>& v) {
    if (v) {
      const int p = prefix_len(v->mask);
      add(out, std::string(name) + "=" + ipv4_to_string(v->value) +
                   (p == 32 ? "" : p >= 0 ? "/" + std::to_string(p) : "/" + ipv4_to_string(v->mask)));
    }
  };
  v4("nw_src", m.ipv4_src);
  v4("nw_dst", m.ipv4_dst);
  const auto v6 = [&](const char* name, const std::optional<Masked<Ipv6Addr>>& v) {
    if (v) {
      const int p = prefix_len(v->mask);
      add(out, std::string(name) + "=" + to_string(v->value) +
                   (p == 128 ? "" : p >= 0 ? "/" + std::to_string(p) : "/" + to_string(v->mask)));
    }
  };
  v6("ipv6_src", m.ipv6_src);
  v6("ipv6_dst", m.ipv6_dst);
  if (m.ipv6_label) {
    add(out, "ipv6_label=" + hex(*m.ipv6_label));
  }
  if (m.ip_proto) {
    add(out, "nw_proto=" + std::to_string(*m.ip_proto));
  }
  if (m.ip_dscp) {
    add(out, "ip_dscp=" + std::to_string(*m.ip_dscp));
  }
  const auto port = [&](const char* name, const std::optional<Masked<std::uint16_t>>& v) {
    if (v) {
      add(out, std::string(name) + "=" +
                   (full(v->mask) ? std::to_string(v->value) : hex(v->value) + "/" + hex(v->mask)));
    }
  };
  port("tp_src", m.tp_src);
  port("tp_dst", m.tp_dst);
  if (m.tcp_flags) {
    add(out, "tcp_flags=" + hex(m.tcp_flags->value) + "/" + hex(m.tcp_flags->mask));
  }
  if (m.icmp_type) {
    add(out, "icmp_type=" + std::to_string(*m.icmp_type));
  }
  if (m.icmp_code) {
    add(out, "icmp_code=" + std::to_string(*m.icmp_code));
  }
  return out;
}

std::string to_string(const FlowAction& a) {
  switch (a.kind) {
    case ActionKind::kOutput: return "output:" + a.port;
    case ActionKind::kEnqueue: return "enqueue:" + a.port + ":" + std::to_string(a.queue);
    case ActionKind::kSetQueue: return "set_queue:" + std::to_string(a.queue);
    case ActionKind::kDrop: return "drop";
    case ActionKind::kNormal: return "NORMAL";
    case ActionKind::kSetVlanVid: return "mod_vlan_vid:" + std::to_string(a.value);
    case ActionKind::kSetVlanPcp: return "mod_vlan_pcp:" + std::to_string(a.value);
    case ActionKind::kPushVlan: return "push_vlan:" + hex(a.value);
    case ActionKind::kPopVlan: return "strip_vlan";
    case ActionKind::kSetEthSrc: return "mod_dl_src:" + to_string(a.mac);
    case ActionKind::kSetEthDst: return "mod_dl_dst:" + to_string(a.mac);
    case ActionKind::kSetIpv4Src: return "mod_nw_src:" + ipv4_to_string(a.value);
    case ActionKind::kSetIpv4Dst: return "mod_nw_dst:" + ipv4_to_string(a.value);
    case ActionKind::kSetTpSrc: return "mod_tp_src:" + std::to_string(a.value);
    case ActionKind::kSetTpDst: return "mod_tp_dst:" + std::to_string(a.value);
    case ActionKind::kDecTtl: return "dec_ttl";
    case ActionKind::kMeter: return "meter:" + std::to_string(a.value);
  }
  return "?";
}

std::string FlowSpec::key() const {
  std::string k = "table=" + std::to_string(table) + ",priority=" + std::to_string(priority);
  const std::string m = to_string(match);
  if (!m.empty()) {
    k += "," + m;
  }
  for (const auto& o : other_match) {
    k += "," + o;
  }
  return k;
}

}  // namespace viopool::offload
