// JSON → ApplianceConfig.
#include "pool-manager/target/target_config.h"

#include <array>
#include <set>

#include "vhost-backend/control/json_fields.h"

namespace viopool::pool {

using nlohmann::json;
using namespace viopool::control;

namespace {

Result<VolumeExport> parse_volume(const json& j, const std::string& where, std::string& why) {
  VIOPOOL_TRY(reject_unknown(j,
                             {"name", "function_id", "key", "path", "read_only", "direct", "queues",
                              "queue_depth", "block_size", "max_io_bytes"},
                             where, why));
  VolumeExport v;
  auto name = get_string(j, "name", where, why, true);
  VIOPOOL_TRY(name);
  if (!valid_name(*name)) {
    why = path_of(where, "name") + ": 1 to 32 characters of A-Z a-z 0-9 _ - .";
    return fail(Errc::kInvalidArgument, "config: bad name");
  }
  v.name = *name;
  auto fid = get_int(j, "function_id", where, why, 0, 1, 0xffffffffLL);
  VIOPOOL_TRY(fid);
  if (*fid == 0) {
    why = path_of(where, "function_id") + ": missing";
    return fail(Errc::kInvalidArgument, "config: missing key");
  }
  v.function_id = static_cast<std::uint32_t>(*fid);
  auto key = get_string(j, "key", where, why, true);
  VIOPOOL_TRY(key);
  auto k = parse_auth_key(*key);
  if (!k) {
    why = path_of(where, "key") + ": 32 hex digits (a 128-bit key)";
    return fail(Errc::kInvalidArgument, "config: bad key");
  }
  v.key = *k;
  auto path = get_string(j, "path", where, why, true);
  VIOPOOL_TRY(path);
  v.backend.path = *path;
  auto ro = get_bool(j, "read_only", where, why, false);
  VIOPOOL_TRY(ro);
  v.backend.read_only = *ro;
  using D = blk::UringBackendOptions::DirectIo;
  auto direct = get_choice(j, "direct", where, why, {"auto", "on", "off"}, 0);
  VIOPOOL_TRY(direct);
  v.backend.direct = std::array{D::kAuto, D::kOn, D::kOff}[*direct];
  auto q = get_int(j, "queues", where, why, 4, 1, 64);
  VIOPOOL_TRY(q);
  v.queues = static_cast<std::uint16_t>(*q);
  auto qd = get_int(j, "queue_depth", where, why, 128, 1, 4096);
  VIOPOOL_TRY(qd);
  v.backend.queue_depth = static_cast<std::uint32_t>(*qd);
  auto bs = get_block_size(j, "block_size", where, why);
  VIOPOOL_TRY(bs);
  v.backend.block_size = *bs;
  auto mx = get_int(j, "max_io_bytes", where, why, 256 * 1024, 4096, 1 << 20);
  VIOPOOL_TRY(mx);
  v.max_io_bytes = static_cast<std::uint32_t>(*mx);
  return v;
}

}  // namespace

Result<ApplianceConfig> parse_appliance_config(const json& j, std::string& why) {
  VIOPOOL_TRY(reject_unknown(j, {"listen", "mtu", "node_id", "window", "volumes"}, "", why));
  ApplianceConfig c;
  auto listen = get_string(j, "listen", "", why, false, c.listen);
  VIOPOOL_TRY(listen);
  c.listen = *listen;
  auto mtu = get_int(j, "mtu", "", why, c.mtu, 512, 65507);
  VIOPOOL_TRY(mtu);
  c.mtu = static_cast<std::uint32_t>(*mtu);
  auto node = get_int(j, "node_id", "", why, 1, 0, 0xffffffffLL);
  VIOPOOL_TRY(node);
  c.target.node_id = static_cast<std::uint32_t>(*node);
  auto window = get_int(j, "window", "", why, c.target.window, 8, 4096);
  VIOPOOL_TRY(window);
  c.target.window = static_cast<std::uint16_t>(*window);
  auto vit = j.find("volumes");
  if (vit == j.end() || !vit->is_array()) {
    why = "volumes: expected an array";
    return fail(Errc::kInvalidArgument, "config: volumes");
  }
  std::set<std::string> names;
  std::set<std::uint32_t> ids;
  for (std::size_t i = 0; i < vit->size(); ++i) {
    const std::string where = "volumes[" + std::to_string(i) + "]";
    auto v = parse_volume((*vit)[i], where, why);
    VIOPOOL_TRY(v);
    if (!names.insert(v->name).second) {
      why = where + ".name: '" + v->name + "' is used twice";
      return fail(Errc::kInvalidArgument, "config: duplicate name");
    }
    if (!ids.insert(v->function_id).second) {
      why = where + ".function_id: " + std::to_string(v->function_id) + " is used twice";
      return fail(Errc::kInvalidArgument, "config: duplicate function id");
    }
    c.target.volumes.push_back(std::move(*v));
  }
  return c;
}

Result<ApplianceConfig> load_appliance_config(const std::string& path, std::string& why) {
  auto j = load_json_file(path, why);
  VIOPOOL_TRY(j);
  auto c = parse_appliance_config(*j, why);
  if (!c) {
    why = path + ": " + why;
  }
  return c;
}

}  // namespace viopool::pool
