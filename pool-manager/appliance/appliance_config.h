// The appliance's config file, as JSON (docs/operations.md "The appliance"):
// where the fabric and the control API listen, where the state lives, the
// inventory volumes are carved from, and volumes served statically.
//
//   {"listen": "0.0.0.0:7400", "mtu": 8972, "node_id": 1, "poll_idle_us": 100,
//    "api": "0.0.0.0:7480", "fabric_endpoint": "10.0.0.2:7400",
//    "state": "/var/lib/viopool/appliance.db", "lease_ttl_ms": 15000,
//    "inventory": [{"name": "ssd0", "kind": "directory", "path": "/srv/pool",
//                   "capacity": "100G", "overcommit": 2.0, "direct": "auto"},
//                  {"name": "nvme1", "kind": "block", "path": "/dev/nvme1n1"}],
//    "volumes": [{"name": "vol0", "function_id": 1, "key": "<32 hex digits>",
//                 "path": "/srv/vol0.img", "read_only": false, "direct": "auto",
//                 "queues": 4, "queue_depth": 128, "block_size": 0,
//                 "max_io_bytes": 262144}]}
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "pool-manager/pool/pool_model.h"
#include "pool-manager/target/volume_target.h"

namespace viopool::pool {

struct ApplianceConfig {
  std::string listen = "0.0.0.0:7400";
  // Largest fabric frame per UDP datagram (IP fragments what the path does
  // not carry); volume and crypto links use the smaller MTU their host asks for.
  std::uint32_t mtu = 8972;
  TargetOptions target;  // static volumes (their keys in the file)
  std::string api = "127.0.0.1:7480";  // control API (TCP), "" for none
  std::string fabric_endpoint;         // told to hosts with a lease; default: listen
  std::string state = "/var/lib/viopool/appliance.db";
  std::int64_t lease_ttl_ms = 15000;  // when a lease request names none
  std::vector<StorageDevice> inventory;
};

// Strict: unknown keys, bad keys, duplicate names or ids are errors naming the
// field in `why`. Block devices of the inventory are opened to learn their size.
Result<ApplianceConfig> parse_appliance_config(const nlohmann::json& j, std::string& why);
Result<ApplianceConfig> load_appliance_config(const std::string& path, std::string& why);

}  // namespace viopool::pool
