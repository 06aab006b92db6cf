// The appliance's control API (docs/api.md "viopool-appliance"): JSON
// operations over HTTP on TCP, mapped onto the PoolService; fabric counters
// from the VolumeTarget.
#pragma once

#include <nlohmann/json.hpp>

#include "pool-manager/pool/pool_service.h"
#include "pool-manager/target/volume_target.h"
#include "vhost-backend/control/api_server.h"

namespace viopool::pool {

nlohmann::json to_json(const TargetStats& s);

// The routes of viopool-appliance; `pool` and `target` outlive the server.
control::ApiRoutes appliance_routes(PoolService& pool, VolumeTarget& target);

}  // namespace viopool::pool
