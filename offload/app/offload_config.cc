#include "offload/app/offload_config.h"

#include <set>

#include "vhost-backend/control/json_fields.h"

namespace viopool::offload {

using nlohmann::json;
using namespace viopool::control;

namespace {

Error bad(std::string text, std::string& why) {
  why = std::move(text);
  return Error{Errc::kInvalidArgument, 0, "offload config: bad value"};
}

Result<std::optional<std::uint32_t>> ofport_of(const json& j, const std::string& where,
                                               std::string& why) {
  if (!j.contains("ofport")) {
    return std::optional<std::uint32_t>{};
  }
  auto v = get_int(j, "ofport", where, why, 0, 1, 0xfeff);
  if (!v) {
    return unexpected(v.error());
  }
  return std::optional<std::uint32_t>(static_cast<std::uint32_t>(*v));
}

}  // namespace

Result<OffloadConfig> parse_offload_config(const json& j, std::string& why) {
  VIOPOOL_TRY(reject_unknown(j,
                             {"bridge", "ovs_rundir", "control_socket", "resync_ms", "debounce_ms",
                              "priority_levels", "eal_args", "uplinks", "vnics", "drain_rx"},
                             "", why));
  OffloadConfig c;
  auto bridge = get_string(j, "bridge", "", why, true);
  VIOPOOL_TRY(bridge);
  c.bridge = *bridge;
  auto rundir = get_string(j, "ovs_rundir", "", why, false);
  VIOPOOL_TRY(rundir);
  c.ovs_rundir = *rundir;
  auto cs = get_string(j, "control_socket", "", why, false, c.control_socket);
  VIOPOOL_TRY(cs);
  c.control_socket = *cs;
  auto resync = get_int(j, "resync_ms", "", why, c.resync_ms, 100, 3600000);
  VIOPOOL_TRY(resync);
  c.resync_ms = static_cast<std::uint32_t>(*resync);
  auto deb = get_int(j, "debounce_ms", "", why, c.debounce_ms, 0, 10000);
  VIOPOOL_TRY(deb);
  c.debounce_ms = static_cast<std::uint32_t>(*deb);
  auto lv = get_int(j, "priority_levels", "", why, 0, 0, 65536);
  VIOPOOL_TRY(lv);
  if (*lv == 1) {
    return unexpected(bad("priority_levels: 0 (probe) or at least 2", why));
  }
  c.priority_levels = static_cast<std::uint32_t>(*lv);
  auto drain = get_bool(j, "drain_rx", "", why, false);
  VIOPOOL_TRY(drain);
  c.drain_rx = *drain;
  if (auto it = j.find("eal_args"); it != j.end()) {
    if (!it->is_array()) {
      return unexpected(bad("eal_args: expected an array of strings", why));
    }
    for (const auto& a : *it) {
      if (!a.is_string()) {
        return unexpected(bad("eal_args: expected an array of strings", why));
      }
      c.eal_args.push_back(a.get<std::string>());
    }
  }
  std::set<std::string> names;
  std::set<std::uint32_t> ofports;
  const auto unique = [&](const std::string& where, const std::string& name,
                          std::optional<std::uint32_t> ofport) -> Result<void> {
    if (!names.insert(name).second) {
      return unexpected(bad(where + ".name: '" + name + "' is used twice", why));
    }
    if (ofport && !ofports.insert(*ofport).second) {
      return unexpected(bad(where + ".ofport: " + std::to_string(*ofport) + " is used twice", why));
    }
    return {};
  };
  auto ups = j.find("uplinks");
  if (ups == j.end() || !ups->is_array() || ups->empty()) {
    return unexpected(bad("uplinks: at least one DPDK port", why));
  }
  for (std::size_t i = 0; i < ups->size(); ++i) {
    const std::string where = "uplinks[" + std::to_string(i) + "]";
    const json& u = (*ups)[i];
    VIOPOOL_TRY(reject_unknown(u, {"name", "ofport", "devargs", "rx_queues"}, where, why));
    UplinkConfig up;
    auto name = get_string(u, "name", where, why, true);
    VIOPOOL_TRY(name);
    up.name = *name;
    auto of = ofport_of(u, where, why);
    VIOPOOL_TRY(of);
    up.ofport = *of;
    auto dev = get_string(u, "devargs", where, why, true);
    VIOPOOL_TRY(dev);
    up.devargs = *dev;
    auto rxq = get_int(u, "rx_queues", where, why, 1, 1, 64);
    VIOPOOL_TRY(rxq);
    up.rx_queues = static_cast<std::uint16_t>(*rxq);
    VIOPOOL_TRY(unique(where, up.name, up.ofport));
    c.uplinks.push_back(up);
  }
  if (auto vs = j.find("vnics"); vs != j.end()) {
    if (!vs->is_array()) {
      return unexpected(bad("vnics: expected an array", why));
    }
    for (std::size_t i = 0; i < vs->size(); ++i) {
      const std::string where = "vnics[" + std::to_string(i) + "]";
      const json& v = (*vs)[i];
      VIOPOOL_TRY(reject_unknown(v, {"name", "ofport", "uplink", "queue", "mark", "mac", "access_vlan"},
                                 where, why));
      VnicConfig n;
      auto name = get_string(v, "name", where, why, true);
      VIOPOOL_TRY(name);
      n.name = *name;
      auto of = ofport_of(v, where, why);
      VIOPOOL_TRY(of);
      n.ofport = *of;
      auto up = get_string(v, "uplink", where, why, true);
      VIOPOOL_TRY(up);
      n.uplink = *up;
      const UplinkConfig* owner = nullptr;
      for (const auto& u : c.uplinks) {
        if (u.name == n.uplink) {
          owner = &u;
        }
      }
      if (owner == nullptr) {
        return unexpected(bad(where + ".uplink: no uplink named '" + n.uplink + "'", why));
      }
      auto q = get_int(v, "queue", where, why, -1, 0, 63);
      VIOPOOL_TRY(q);
      if (*q < 0 || *q >= owner->rx_queues) {
        return unexpected(bad(where + ".queue: required, below the uplink's rx_queues (" +
                                  std::to_string(owner->rx_queues) + ")",
                              why));
      }
      n.queue = static_cast<std::uint16_t>(*q);
      if (v.contains("mark")) {
        auto m = get_int(v, "mark", where, why, 0, 0, 0xffffffffLL);
        VIOPOOL_TRY(m);
        n.mark = static_cast<std::uint32_t>(*m);
      }
      if (v.contains("mac")) {
        auto m = get_string(v, "mac", where, why, true);
        VIOPOOL_TRY(m);
        Mac mac{};
        unsigned b[6];
        if (std::sscanf(m->c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4],
                        &b[5]) != 6 ||
            m->size() != 17) {
          return unexpected(bad(where + ".mac: expected aa:bb:cc:dd:ee:ff", why));
        }
        for (int k = 0; k < 6; ++k) {
          mac[k] = static_cast<std::uint8_t>(b[k]);
        }
        n.mac = mac;
      }
      if (v.contains("access_vlan")) {
        auto t = get_int(v, "access_vlan", where, why, 0, 1, 4094);
        VIOPOOL_TRY(t);
        n.access_vlan = static_cast<std::uint16_t>(*t);
      }
      VIOPOOL_TRY(unique(where, n.name, n.ofport));
      c.vnics.push_back(n);
    }
  }
  return c;
}

Result<OffloadConfig> load_offload_config(const std::string& path, std::string& why) {
  auto j = load_json_file(path, why);
  VIOPOOL_TRY(j);
  auto c = parse_offload_config(*j, why);
  if (!c) {
    why = path + ": " + why;
  }
  return c;
}

}  // namespace viopool::offload
