// viopool-offload's config file (docs/offload.md "Running the agent"): the
// bridge to follow and how its ports map onto DPDK ports and vNIC queues.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "offload/translate/port_map.h"
#include "vhost-backend/base/result.h"

namespace viopool::offload {

struct UplinkConfig {
  std::string name;  // the OVS port name
  std::optional<std::uint32_t> ofport;
  std::string devargs;  // the DPDK port: "net_tap0,iface=vpo0", a PCI address
  std::uint16_t rx_queues = 1;
};

struct VnicConfig {
  std::string name;
  std::optional<std::uint32_t> ofport;
  std::string uplink;  // an UplinkConfig name
  std::uint16_t queue = 0;
  std::optional<std::uint32_t> mark;
  std::optional<Mac> mac;
  std::optional<std::uint16_t> access_vlan;  // its OVS port's tag, if any
};

struct OffloadConfig {
  std::string bridge;      // what ovs-ofctl is pointed at: a bridge name or unix:PATH
  std::string ovs_rundir;  // OVS_RUNDIR for ovs-ofctl; "" for the default
  std::string control_socket = "/run/viopool/offload.sock";
  std::uint32_t resync_ms = 30000;
  std::uint32_t debounce_ms = 50;
  std::uint32_t priority_levels = 0;  // 0: probe
  // Receive and count (per queue) what reaches the uplinks' queues, then
  // free it: for uplinks no other program reads (tests, demos).
  bool drain_rx = false;
  std::vector<std::string> eal_args;
  std::vector<UplinkConfig> uplinks;
  std::vector<VnicConfig> vnics;
};

// Strict: unknown keys and bad values are errors naming the field.
Result<OffloadConfig> parse_offload_config(const nlohmann::json& j, std::string& why);
Result<OffloadConfig> load_offload_config(const std::string& path, std::string& why);

}  // namespace viopool::offload
