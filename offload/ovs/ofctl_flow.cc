// ovs-ofctl flow syntax (ovs-fields(7), ovs-actions(7)) → FlowSpec.
#include "offload/ovs/ofctl_flow.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

namespace viopool::offload {

namespace {

Error bad(std::string text, std::string& why) {
  why = std::move(text);
  return Error{Errc::kInvalidArgument, 0, "offload: bad flow"};
}

std::string lower(std::string_view s) {
  std::string o(s);
  std::transform(o.begin(), o.end(), o.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return o;
}

// Decimal or 0x hexadecimal, within max.
bool parse_uint(std::string_view s, std::uint64_t max, std::uint64_t& out) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty()) {
    return false;
  }
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc{} || p != s.data() + s.size() || v > max) {
    return false;
  }
  out = v;
  return true;
}

template <typename T>
bool parse_masked_uint(std::string_view s, Masked<T>& out) {
  const auto slash = s.find('/');
  std::uint64_t v = 0;
  std::uint64_t m = static_cast<T>(~T{0});
  if (!parse_uint(s.substr(0, slash), static_cast<T>(~T{0}), v)) {
    return false;
  }
  if (slash != std::string_view::npos &&
      !parse_uint(s.substr(slash + 1), static_cast<T>(~T{0}), m)) {
    return false;
  }
  out.value = static_cast<T>(v & m);
  out.mask = static_cast<T>(m);
  return true;
}

bool parse_mac(std::string_view s, Mac& out) {
  if (s.size() != 17) {
    return false;
  }
  for (int i = 0; i < 6; ++i) {
    if (i > 0 && s[i * 3 - 1] != ':') {
      return false;
    }
    std::uint64_t b = 0;
    if (!parse_uint("0x" + std::string(s.substr(i * 3, 2)), 255, b) ||
        !std::isxdigit(static_cast<unsigned char>(s[i * 3])) ||
        !std::isxdigit(static_cast<unsigned char>(s[i * 3 + 1]))) {
      return false;
    }
    out[i] = static_cast<std::uint8_t>(b);
  }
  return true;
}

bool parse_masked_mac(std::string_view s, Masked<Mac>& out) {
  const auto slash = s.find('/');
  out.mask.fill(0xff);
  if (!parse_mac(s.substr(0, slash), out.value)) {
    return false;
  }
  if (slash != std::string_view::npos && !parse_mac(s.substr(slash + 1), out.mask)) {
    return false;
  }
  for (int i = 0; i < 6; ++i) {
    out.value[i] &= out.mask[i];
  }
  return true;
}

bool parse_ipv4(std::string_view s, std::uint32_t& out) {
  in_addr a{};
  if (::inet_pton(AF_INET, std::string(s).c_str(), &a) != 1) {
    return false;
  }
  out = ntohl(a.s_addr);
  return true;
}

bool parse_masked_ipv4(std::string_view s, Masked<std::uint32_t>& out) {
  const auto slash = s.find('/');
  if (!parse_ipv4(s.substr(0, slash), out.value)) {
    return false;
  }
  out.mask = ~0u;
  if (slash != std::string_view::npos) {
    const auto m = s.substr(slash + 1);
    std::uint64_t len = 0;
    if (m.find('.') == std::string_view::npos) {
      if (!parse_uint(m, 32, len)) {
        return false;
      }
      out.mask = len == 0 ? 0 : ~0u << (32 - len);
    } else if (!parse_ipv4(m, out.mask)) {
      return false;
    }
  }
  out.value &= out.mask;
  return true;
}

bool parse_masked_ipv6(std::string_view s, Masked<Ipv6Addr>& out) {
  const auto slash = s.find('/');
  if (::inet_pton(AF_INET6, std::string(s.substr(0, slash)).c_str(), out.value.data()) != 1) {
    return false;
  }
  out.mask.fill(0xff);
  if (slash != std::string_view::npos) {
    const auto m = s.substr(slash + 1);
    std::uint64_t len = 0;
    if (m.find(':') == std::string_view::npos) {
      if (!parse_uint(m, 128, len)) {
        return false;
      }
      for (std::size_t i = 0; i < 16; ++i) {
        const std::uint64_t bits = len > i * 8 ? std::min<std::uint64_t>(8, len - i * 8) : 0;
        out.mask[i] = static_cast<std::uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
      }
    } else if (::inet_pton(AF_INET6, std::string(m).c_str(), out.mask.data()) != 1) {
      return false;
    }
  }
  for (std::size_t i = 0; i < 16; ++i) {
    out.value[i] &= out.mask[i];
  }
  return true;
}

// tcp_flags=+syn-ack or 0x012/0x0ff.
bool parse_tcp_flags(std::string_view s, Masked<std::uint16_t>& out) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    static const std::pair<const char*, std::uint16_t> kNames[] = {
        {"fin", 0x001}, {"syn", 0x002}, {"rst", 0x004}, {"psh", 0x008}, {"ack", 0x010},
        {"urg", 0x020}, {"ece", 0x040}, {"cwr", 0x080}, {"ns", 0x100}};
    out = {};
    std::size_t i = 0;
    while (i < s.size()) {
      const char sign = s[i++];
      if (sign != '+' && sign != '-') {
        return false;
      }
      std::size_t j = i;
      while (j < s.size() && s[j] != '+' && s[j] != '-') {
        ++j;
      }
      const std::string name = lower(s.substr(i, j - i));
      bool found = false;
      for (const auto& [n, bit] : kNames) {
        if (name == n) {
          out.mask |= bit;
          if (sign == '+') {
            out.value |= bit;
          }
          found = true;
        }
      }
      if (!found) {
        return false;
      }
      i = j;
    }
    return out.mask != 0;
  }
  return parse_masked_uint(s, out) && out.mask <= 0xfff;
}

// Splits on `sep` outside parentheses and brackets.
std::vector<std::string_view> split_top(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(' || s[i] == '[') {
      ++depth;
    } else if ((s[i] == ')' || s[i] == ']') && depth > 0) {
      --depth;
    } else if (s[i] == sep && depth == 0) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

// Fields ovs-ofctl prints with a rule but that do not select packets.
const std::set<std::string, std::less<>> kIgnored = {
    "duration",      "n_packets", "n_bytes",   "idle_age",       "hard_age",
    "idle_timeout",  "hard_timeout", "importance", "send_flow_rem", "check_overlap",
    "reset_counts",  "no_packet_counts", "no_byte_counts", "out_port", "out_group"};

Result<void> parse_match_field(FlowSpec& f, std::string_view name_sv, std::string_view value,
                               std::string& why) {
  FlowMatch& m = f.match;
  const std::string name = lower(name_sv);
  const std::string whole = std::string(name_sv) + (value.empty() ? "" : "=" + std::string(value));
  const auto fail_value = [&] {
    return unexpected(bad("'" + whole + "': not a valid value for " + name, why));
  };
  const auto ip_proto = [&](std::uint16_t type, std::uint8_t proto) {
    m.eth_type = type;
    if (proto != 0) {
      m.ip_proto = proto;
    }
  };
  // Shorthands (no value).
  if (value.empty()) {
    if (name == "ip") {
      ip_proto(0x0800, 0);
    } else if (name == "ipv6") {
      ip_proto(0x86dd, 0);
    } else if (name == "tcp") {
      ip_proto(0x0800, 6);
    } else if (name == "udp") {
      ip_proto(0x0800, 17);
    } else if (name == "icmp") {
      ip_proto(0x0800, 1);
    } else if (name == "tcp6") {
      ip_proto(0x86dd, 6);
    } else if (name == "udp6") {
      ip_proto(0x86dd, 17);
    } else if (name == "icmp6") {
      ip_proto(0x86dd, 58);
    } else if (name == "arp") {
      m.eth_type = 0x0806;
    } else if (name == "sctp" || name == "sctp6" || name == "rarp" || name == "mpls" ||
               name == "mplsm") {
      f.other_match.push_back(whole);
      f.unsupported.push_back(name);
    } else {
      return unexpected(bad("'" + whole + "': unknown match shorthand", why));
    }
    return {};
  }
  std::uint64_t v = 0;
  if (name == "in_port") {
    m.in_port = std::string(value);
  } else if (name == "dl_src" || name == "eth_src") {
    Masked<Mac> x;
    if (!parse_masked_mac(value, x)) {
      return fail_value();
    }
    m.eth_src = x;
  } else if (name == "dl_dst" || name == "eth_dst") {
    Masked<Mac> x;
    if (!parse_masked_mac(value, x)) {
      return fail_value();
    }
    m.eth_dst = x;
  } else if (name == "dl_type" || name == "eth_type") {
    if (!parse_uint(value, 0xffff, v)) {
      return fail_value();
    }
    m.eth_type = static_cast<std::uint16_t>(v);
  } else if (name == "dl_vlan") {
    if (!parse_uint(value, 0xffff, v) || (v > 4095 && v != 0xffff)) {
      return fail_value();
    }
    if (v == 0xffff) {
      m.vlan = VlanMatch::kUntagged;
    } else {
      m.vlan = VlanMatch::kTagged;
      m.vlan_vid = static_cast<std::uint16_t>(v);
    }
  } else if (name == "dl_vlan_pcp" || name == "vlan_pcp") {
    if (!parse_uint(value, 7, v)) {
      return fail_value();
    }
    m.vlan = VlanMatch::kTagged;
    m.vlan_pcp = static_cast<std::uint8_t>(v);
  } else if (name == "vlan_tci" || name == "vlan_vid") {
    Masked<std::uint16_t> t;
    if (!parse_masked_uint(value, t)) {
      return fail_value();
    }
    if (name == "vlan_vid") {  // OF1.2+: 0x1000 is "present", the VID below
      t.mask &= 0x1fff;
    }
    if ((t.mask & 0x1000) == 0) {
      if ((t.mask & 0xefff) != 0) {  // VID or PCP bits without "present"
        f.other_match.push_back(whole);
        f.unsupported.push_back(name + " without the CFI/present bit");
      }
      return {};
    }
    if ((t.value & 0x1000) == 0) {
      m.vlan = VlanMatch::kUntagged;
      return {};
    }
    m.vlan = VlanMatch::kTagged;
    const std::uint16_t vid_mask = t.mask & 0x0fff;
    const std::uint16_t pcp_mask = t.mask & 0xe000;
    if (vid_mask == 0x0fff) {
      m.vlan_vid = t.value & 0x0fff;
    } else if (vid_mask != 0) {
      f.other_match.push_back(whole);
      f.unsupported.push_back(name + " with a partial VID mask");
    }
    if (pcp_mask == 0xe000) {
      m.vlan_pcp = static_cast<std::uint8_t>(t.value >> 13);
    } else if (pcp_mask != 0) {
      f.other_match.push_back(whole);
      f.unsupported.push_back(name + " with a partial PCP mask");
    }
  } else if (name == "nw_src" || name == "ip_src") {
    Masked<std::uint32_t> x;
    if (!parse_masked_ipv4(value, x)) {
      return fail_value();
    }
    m.ipv4_src = x;
  } else if (name == "nw_dst" || name == "ip_dst") {
    Masked<std::uint32_t> x;
    if (!parse_masked_ipv4(value, x)) {
      return fail_value();
    }
    m.ipv4_dst = x;
  } else if (name == "ipv6_src") {
    Masked<Ipv6Addr> x;
    if (!parse_masked_ipv6(value, x)) {
      return fail_value();
    }
    m.ipv6_src = x;
  } else if (name == "ipv6_dst") {
    Masked<Ipv6Addr> x;
    if (!parse_masked_ipv6(value, x)) {
      return fail_value();
    }
    m.ipv6_dst = x;
  } else if (name == "ipv6_label") {
    if (!parse_uint(value, 0xfffff, v)) {
      return fail_value();
    }
    m.ipv6_label = static_cast<std::uint32_t>(v);
  } else if (name == "nw_proto" || name == "ip_proto") {
    if (!parse_uint(value, 255, v)) {
      return fail_value();
    }
    m.ip_proto = static_cast<std::uint8_t>(v);
  } else if (name == "nw_tos") {
    if (!parse_uint(value, 255, v)) {
      return fail_value();
    }
    m.ip_dscp = static_cast<std::uint8_t>(v >> 2);
    if ((v & 3) != 0) {
      f.other_match.push_back(whole);
      f.unsupported.push_back("nw_tos with ECN bits");
    }
  } else if (name == "ip_dscp") {
    if (!parse_uint(value, 63, v)) {
      return fail_value();
    }
    m.ip_dscp = static_cast<std::uint8_t>(v);
  } else if (name == "tp_src" || name == "tcp_src" || name == "udp_src" || name == "tp_dst" ||
             name == "tcp_dst" || name == "udp_dst") {
    Masked<std::uint16_t> x;
    if (!parse_masked_uint(value, x)) {
      return fail_value();
    }
    (name.ends_with("src") ? m.tp_src : m.tp_dst) = x;
    if (name[0] == 't' && name[1] == 'c') {
      m.ip_proto = m.ip_proto.value_or(6);
    } else if (name[0] == 'u') {
      m.ip_proto = m.ip_proto.value_or(17);
    }
  } else if (name == "tcp_flags") {
    Masked<std::uint16_t> x;
    if (!parse_tcp_flags(value, x)) {
      return fail_value();
    }
    m.tcp_flags = x;
  } else if (name == "icmp_type" || name == "icmpv6_type") {
    if (!parse_uint(value, 255, v)) {
      return fail_value();
    }
    m.icmp_type = static_cast<std::uint8_t>(v);
  } else if (name == "icmp_code" || name == "icmpv6_code") {
    if (!parse_uint(value, 255, v)) {
      return fail_value();
    }
    m.icmp_code = static_cast<std::uint8_t>(v);
  } else {
    // ct_state, metadata, reg0, tun_id, nw_ttl, nw_frag, arp_op, nd_target ...
    f.other_match.push_back(whole);
    f.unsupported.push_back(name);
  }
  return {};
}

Result<void> parse_action(FlowSpec& f, std::string_view text, std::string& why) {
  const std::string t(trim(text));
  if (t.empty()) {
    return unexpected(bad("an empty action", why));
  }
  const auto colon = t.find(':');
  const auto paren = t.find('(');
  const std::string name =
      lower(std::string_view(t).substr(0, std::min(colon, paren)));
  const std::string arg = colon != std::string::npos && colon < paren ? t.substr(colon + 1) : "";
  FlowAction a;
  std::uint64_t v = 0;
  const auto fail_arg = [&] { return unexpected(bad("'" + t + "': bad argument", why)); };
  const auto push = [&](ActionKind k) {
    a.kind = k;
    f.actions.push_back(a);
    return Result<void>{};
  };
  if (name == "drop") {
    return push(ActionKind::kDrop);
  }
  if (name == "normal") {
    return push(ActionKind::kNormal);
  }
  if (name == "output" && colon != std::string::npos) {
    a.port = arg;
    return push(ActionKind::kOutput);
  }
  if (std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(c) != 0; })) {
    a.port = t;  // a bare port number
    return push(ActionKind::kOutput);
  }
  if (name == "enqueue") {
    // enqueue:PORT:QUEUE or enqueue(PORT,QUEUE)
    std::string rest = colon < paren ? arg : t.substr(paren + 1, t.size() - paren - 2);
    const auto sep = rest.find_first_of(":,");
    if (sep == std::string::npos || !parse_uint(rest.substr(sep + 1), 0xffffffff, v)) {
      return fail_arg();
    }
    a.port = rest.substr(0, sep);
    a.queue = static_cast<std::uint32_t>(v);
    return push(ActionKind::kEnqueue);
  }
  if (name == "set_queue") {
    if (!parse_uint(arg, 0xffffffff, v)) {
      return fail_arg();
    }
    a.queue = static_cast<std::uint32_t>(v);
    return push(ActionKind::kSetQueue);
  }
  if (name == "mod_vlan_vid") {
    if (!parse_uint(arg, 4095, v)) {
      return fail_arg();
    }
    a.value = static_cast<std::uint32_t>(v);
    return push(ActionKind::kSetVlanVid);
  }
  if (name == "mod_vlan_pcp") {
    if (!parse_uint(arg, 7, v)) {
      return fail_arg();
    }
    a.value = static_cast<std::uint32_t>(v);
    return push(ActionKind::kSetVlanPcp);
  }
  if (name == "strip_vlan" || name == "pop_vlan") {
    return push(ActionKind::kPopVlan);
  }
  if (name == "push_vlan") {
    if (!parse_uint(arg, 0xffff, v) || (v != 0x8100 && v != 0x88a8)) {
      return fail_arg();
    }
    a.value = static_cast<std::uint32_t>(v);
    return push(ActionKind::kPushVlan);
  }
  if (name == "dec_ttl" && arg.empty() && paren == std::string::npos) {
    return push(ActionKind::kDecTtl);
  }
  if (name == "meter") {
    if (!parse_uint(arg, 0xffffffff, v)) {
      return fail_arg();
    }
    a.value = static_cast<std::uint32_t>(v);
    return push(ActionKind::kMeter);
  }
  // mod_* and set_field: one field each.
  std::string field;
  std::string val;
  if (name == "mod_dl_src" || name == "mod_dl_dst" || name == "mod_nw_src" ||
      name == "mod_nw_dst" || name == "mod_tp_src" || name == "mod_tp_dst") {
    field = name.substr(4);
    val = arg;
  } else if (name == "set_field") {
    const auto arrow = arg.find("->");
    if (arrow == std::string::npos) {
      return fail_arg();
    }
    val = arg.substr(0, arrow);
    field = lower(arg.substr(arrow + 2));
  }
  if (!field.empty()) {
    if (field == "dl_src" || field == "eth_src" || field == "dl_dst" || field == "eth_dst") {
      if (!parse_mac(val, a.mac)) {
        return fail_arg();
      }
      return push(field.ends_with("src") ? ActionKind::kSetEthSrc : ActionKind::kSetEthDst);
    }
    if (field == "nw_src" || field == "ip_src" || field == "nw_dst" || field == "ip_dst") {
      if (!parse_ipv4(val, a.value)) {
        return fail_arg();
      }
      return push(field.ends_with("src") ? ActionKind::kSetIpv4Src : ActionKind::kSetIpv4Dst);
    }
    if (field == "tp_src" || field == "tcp_src" || field == "udp_src" || field == "tp_dst" ||
        field == "tcp_dst" || field == "udp_dst") {
      if (!parse_uint(val, 0xffff, v)) {
        return fail_arg();
      }
      a.value = static_cast<std::uint32_t>(v);
      return push(field.ends_with("src") ? ActionKind::kSetTpSrc : ActionKind::kSetTpDst);
    }
    if (field == "vlan_vid") {  // OF1.2+: with the 0x1000 "present" bit
      if (!parse_uint(val, 0x1fff, v)) {
        return fail_arg();
      }
      a.value = static_cast<std::uint32_t>(v & 0x0fff);
      return push(ActionKind::kSetVlanVid);
    }
    if (field == "vlan_pcp") {
      if (!parse_uint(val, 7, v)) {
        return fail_arg();
      }
      a.value = static_cast<std::uint32_t>(v);
      return push(ActionKind::kSetVlanPcp);
    }
    f.unsupported.push_back(name == "set_field" ? "set_field:->" + field : name);
    return {};
  }
  // controller, learn, resubmit, goto_table, ct, group, flood, all, local,
  // in_port, note, load, move, set_tunnel, mod_nw_tos, mod_nw_ttl, ...
  f.unsupported.push_back(name);
  return {};
}

}  // namespace

Result<FlowSpec> parse_ofctl_flow(std::string_view text, std::string& why) {
  FlowSpec f;
  text = trim(text);
  // "actions=" (or "instructions=" in OF1.1+ dumps? ovs-ofctl prints actions=).
  std::size_t at = std::string_view::npos;
  for (std::size_t i = 0; i + 8 <= text.size(); ++i) {
    if (text.compare(i, 8, "actions=") == 0 &&
        (i == 0 || text[i - 1] == ' ' || text[i - 1] == ',')) {
      at = i;
      break;
    }
  }
  if (at == std::string_view::npos) {
    return unexpected(bad("no actions= in '" + std::string(text) + "'", why));
  }
  std::string head(text.substr(0, at));
  std::replace(head.begin(), head.end(), ' ', ',');
  for (auto item : split_top(head, ',')) {
    item = trim(item);
    if (item.empty()) {
      continue;
    }
    const auto eq = item.find('=');
    const std::string_view name = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    const std::string lname = lower(name);
    std::uint64_t v = 0;
    if (kIgnored.contains(lname)) {
      continue;
    }
    if (lname == "priority") {
      if (!parse_uint(value, 0xffff, v)) {
        return unexpected(bad("priority=" + std::string(value) + ": 0 to 65535", why));
      }
      f.priority = static_cast<std::uint16_t>(v);
    } else if (lname == "table") {
      if (!parse_uint(value, 254, v)) {
        return unexpected(bad("table=" + std::string(value) + ": 0 to 254", why));
      }
      f.table = static_cast<std::uint8_t>(v);
    } else if (lname == "cookie") {
      const auto slash = value.find('/');
      if (!parse_uint(value.substr(0, slash), ~std::uint64_t{0}, v)) {
        return unexpected(bad("cookie=" + std::string(value) + ": not a number", why));
      }
      f.cookie = v;
    } else {
      VIOPOOL_TRY(parse_match_field(f, name, value, why));
    }
  }
  const std::string_view acts = trim(text.substr(at + 8));
  if (acts.empty()) {
    return unexpected(bad("actions= is empty (write actions=drop)", why));
  }
  for (auto a : split_top(acts, ',')) {
    VIOPOOL_TRY(parse_action(f, a, why));
  }
  if (f.table != 0) {
    f.unsupported.push_back("table=" + std::to_string(f.table));
  }
  return f;
}

Result<std::vector<FlowSpec>> parse_ofctl_dump(std::string_view text, std::string& why) {
  std::vector<FlowSpec> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.find("_FLOW reply") != std::string_view::npos) {
      continue;
    }
    auto f = parse_ofctl_flow(line, why);
    if (!f) {
      // OVS printed it, so it is a rule, one we cannot read: kept as a rule
      // that matches everything at its priority (the highest if that is
      // unreadable too) and stays on OVS, so that it shadows every rule
      // below it instead of freezing the table.
      FlowSpec u;
      u.priority = 65535;
      const auto at = line.find("priority=");
      std::uint64_t prio = 0;
      if (at != std::string_view::npos) {
        const auto end = line.find_first_of(", ", at + 9);
        if (parse_uint(line.substr(at + 9, end == std::string_view::npos ? end : end - at - 9),
                       0xffff, prio)) {
          u.priority = static_cast<std::uint16_t>(prio);
        }
      }
      u.other_match.push_back(std::string(line));
      u.unsupported.push_back("unreadable: " + why);
      out.push_back(std::move(u));
      continue;
    }
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace viopool::offload
