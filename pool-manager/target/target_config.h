// The appliance's static config (until leases arrive): where it listens and
// which volumes it serves, as JSON. See docs/operations.md "Pooled volumes".
//
//   {"listen": "0.0.0.0:7400", "mtu": 8972, "node_id": 1,
//    "volumes": [{"name": "vol0", "function_id": 1, "key": "<32 hex digits>",
//                 "path": "/srv/vol0.img", "read_only": false, "direct": "auto",
//                 "queues": 4, "queue_depth": 128, "block_size": 0,
//                 "max_io_bytes": 262144}]}
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "pool-manager/target/volume_target.h"

namespace viopool::pool {

struct ApplianceConfig {
  std::string listen = "0.0.0.0:7400";
  std::uint32_t mtu = 1472;  // fabric frame bytes per UDP datagram
  TargetOptions target;
};

// Strict: unknown keys, bad keys, duplicate names or ids are errors naming the
// field in `why`.
Result<ApplianceConfig> parse_appliance_config(const nlohmann::json& j, std::string& why);
Result<ApplianceConfig> load_appliance_config(const std::string& path, std::string& why);

}  // namespace viopool::pool
