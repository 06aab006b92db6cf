// JSON -> PoolService requests, results and errors -> JSON replies.
#include "pool-manager/appliance/appliance_api.h"

#include "vhost-backend/control/json_fields.h"

namespace viopool::pool {

using control::ApiReply;
using control::error_reply;
using nlohmann::json;
using namespace viopool::control;

json to_json(const TargetStats& s) {
  return {{"frames", s.frames},
          {"malformed", s.malformed},
          {"unknown_function", s.unknown_function},
          {"auth_failures", s.auth_failures},
          {"naks", s.naks},
          {"hellos", s.hellos},
          {"channels", s.channels},
          {"channels_closed", s.channels_closed},
          {"requests", s.requests},
          {"completions", s.completions},
          {"errors", s.errors},
          {"expired", s.expired},
          {"bytes_read", s.bytes_read},
          {"bytes_written", s.bytes_written},
          {"retransmits", s.retransmits},
          {"duplicates", s.duplicates},
          {"nic_rx", s.nic_rx},
          {"nic_tx", s.nic_tx},
          {"nic_unknown", s.nic_unknown},
          {"nic_offloaded", s.nic_offloaded}};
}

namespace {

ApiReply refused(const Error& e, const std::string& why) {
  return error_reply(e.code, why.empty() ? std::string(e.what) : why);
}

ApiReply volume_create(PoolService& pool, const json& b) {
  std::string why;
  if (!reject_unknown(b,
                      {"name", "device", "size", "thin", "block_size", "queues", "iops_limit",
                       "bps_limit"},
                      "", why)) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  VolumeRequest r;
  auto name = get_string(b, "name", "", why, true);
  auto device = get_string(b, "device", "", why, name.has_value());
  if (!name || !device) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  r.name = *name;
  r.device = *device;
  if (auto it = b.find("size"); it == b.end() || (it->is_number() && it->get<double>() <= 0)) {
    return error_reply(Errc::kInvalidArgument,
                       "size: required, a positive byte count or a string with K/M/G/T");
  }
  auto size = get_size(b, "size", "", why, 0);
  auto thin = get_bool(b, "thin", "", why, false);
  auto bs = get_int(b, "block_size", "", why, 512, 512, 65536);
  auto q = get_int(b, "queues", "", why, 4, 1, 64);
  auto iops = get_int(b, "iops_limit", "", why, 0, 0, std::int64_t{1} << 40);
  auto bps = get_int(b, "bps_limit", "", why, 0, 0, std::int64_t{1} << 50);
  for (const Result<std::int64_t>* v : {&bs, &q, &iops, &bps}) {
    if (!*v) {
      return error_reply(v->error().code, why);
    }
  }
  if (!size || !thin) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  r.size_bytes = *size;
  r.thin = *thin;
  r.block_size = static_cast<std::uint32_t>(*bs);
  r.queues = static_cast<std::uint16_t>(*q);
  r.iops_limit = static_cast<std::uint64_t>(*iops);
  r.bps_limit = static_cast<std::uint64_t>(*bps);
  auto f = pool.create_volume(r, why);
  if (!f) {
    return refused(f.error(), why);
  }
  auto shown = pool.function(f->name, why);
  return ApiReply{201, shown ? *shown : to_json(*f)};
}

ApiReply crypto_create(PoolService& pool, const json& b) {
  std::string why;
  if (!reject_unknown(b, {"name", "device", "queues", "max_sessions", "ops_limit"}, "", why)) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  CryptoRequest r;
  auto name = get_string(b, "name", "", why, true);
  auto device = get_string(b, "device", "", why, name.has_value());
  if (!name || !device) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  auto q = get_int(b, "queues", "", why, 2, 1, 16);
  auto ms = get_int(b, "max_sessions", "", why, 64, 1, 65536);
  auto ops = get_int(b, "ops_limit", "", why, 0, 0, std::int64_t{1} << 40);
  for (const Result<std::int64_t>* v : {&q, &ms, &ops}) {
    if (!*v) {
      return error_reply(v->error().code, why);
    }
  }
  r.name = *name;
  r.device = *device;
  r.queues = static_cast<std::uint16_t>(*q);
  r.max_sessions = static_cast<std::uint32_t>(*ms);
  r.ops_limit = static_cast<std::uint64_t>(*ops);
  auto f = pool.create_crypto(r, why);
  if (!f) {
    return refused(f.error(), why);
  }
  auto shown = pool.function(f->name, why);
  return ApiReply{201, shown ? *shown : to_json(*f)};
}

ApiReply vnic_create(PoolService& pool, const json& b) {
  std::string why;
  if (!reject_unknown(b, {"name", "device", "mac", "vlan", "mtu", "queues", "rate_mbps",
                          "peak_mbps"},
                      "", why)) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  VnicRequest r;
  auto name = get_string(b, "name", "", why, true);
  auto device = get_string(b, "device", "", why, name.has_value());
  auto mac = get_string(b, "mac", "", why, false);
  if (!name || !device || !mac) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  auto vlan = get_int(b, "vlan", "", why, 0, 0, 4094);
  auto mtu = get_int(b, "mtu", "", why, 1500, 68, 9198);
  auto q = get_int(b, "queues", "", why, 1, 1, 16);
  auto rate = get_int(b, "rate_mbps", "", why, 0, 0, 400000);
  auto peak = get_int(b, "peak_mbps", "", why, 0, 0, 400000);
  for (const Result<std::int64_t>* v : {&vlan, &mtu, &q, &rate, &peak}) {
    if (!*v) {
      return error_reply(v->error().code, why);
    }
  }
  r.name = *name;
  r.device = *device;
  r.mac = *mac;
  r.vlan = static_cast<std::uint16_t>(*vlan);
  r.mtu = static_cast<std::uint32_t>(*mtu);
  r.queues = static_cast<std::uint16_t>(*q);
  r.rate_mbps = static_cast<std::uint32_t>(*rate);
  r.peak_mbps = static_cast<std::uint32_t>(*peak);
  auto f = pool.create_vnic(r, why);
  if (!f) {
    return refused(f.error(), why);
  }
  auto shown = pool.function(f->name, why);
  return ApiReply{201, shown ? *shown : to_json(*f)};
}

ApiReply lease_acquire(PoolService& pool, const json& b) {
  std::string why;
  if (!reject_unknown(b, {"host", "function", "class", "size", "mode", "ttl_ms"}, "", why)) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  LeaseRequest r;
  auto host = get_string(b, "host", "", why, true);
  if (!host) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  r.host = *host;
  auto fn = get_string(b, "function", "", why, false);
  auto cls = get_choice(b, "class", "", why, {"volume", "crypto", "vnic"}, 0);
  auto mode = get_choice(b, "mode", "", why, {"exclusive", "shared"}, 0);
  auto size = get_size(b, "size", "", why, 0);
  auto ttl = get_int(b, "ttl_ms", "", why, 0, 0, std::int64_t{1} << 40);
  if (!fn || !cls || !mode || !size || !ttl) {
    return error_reply(Errc::kInvalidArgument, why);
  }
  if (fn->empty() && !b.contains("class")) {
    return error_reply(Errc::kInvalidArgument,
                       "name a function, or a class (and a size) to pick one");
  }
  if (!fn->empty() && (b.contains("class") || b.contains("size"))) {
    return error_reply(Errc::kInvalidArgument, "function excludes class and size");
  }
  r.function = *fn;
  r.cls = *cls == 0   ? FunctionClass::kVolume
          : *cls == 1 ? FunctionClass::kCrypto
                      : FunctionClass::kVnic;
  r.mode = *mode == 0 ? LeaseMode::kExclusive : LeaseMode::kShared;
  r.min_size_bytes = *size;
  r.ttl_ms = *ttl;
  auto l = pool.acquire(r, why);
  if (!l) {
    return refused(l.error(), why);
  }
  return ApiReply{201, *l};
}

Result<std::uint64_t> lease_id_of(const json& b, bool required, std::string& why) {
  auto id = get_int(b, "lease_id", "", why, 0, required ? 1 : 0, std::int64_t{1} << 62);
  if (!id) {
    return unexpected(id.error());
  }
  if (required && *id == 0) {
    why = "lease_id: required";
    return fail(Errc::kInvalidArgument, "api: lease_id");
  }
  return static_cast<std::uint64_t>(*id);
}

ApiReply dispatch(PoolService& pool, VolumeTarget& target, const std::string& op,
                  const json& b) {
  std::string why;
  const auto only = [&](std::initializer_list<const char*> keys) {
    return static_cast<bool>(reject_unknown(b, keys, "", why));
  };
  if (op == "inventory_list") {
    return only({}) ? ApiReply{200, pool.inventory()} : error_reply(Errc::kInvalidArgument, why);
  }
  if (op == "volume_create") {
    return volume_create(pool, b);
  }
  if (op == "crypto_create") {
    return crypto_create(pool, b);
  }
  if (op == "vnic_create") {
    return vnic_create(pool, b);
  }
  if (op == "function_list") {
    return only({}) ? ApiReply{200, pool.functions()} : error_reply(Errc::kInvalidArgument, why);
  }
  if (op == "function_show" || op == "function_delete") {
    auto name = only({"name"}) ? get_string(b, "name", "", why, true)
                               : Result<std::string>(fail(Errc::kInvalidArgument, "api"));
    if (!name) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    if (op == "function_show") {
      auto f = pool.function(*name, why);
      return f ? ApiReply{200, *f} : refused(f.error(), why);
    }
    auto r = pool.delete_function(*name, why);
    return r ? ApiReply{200, json{{"deleted", *name}}} : refused(r.error(), why);
  }
  if (op == "lease_acquire") {
    return lease_acquire(pool, b);
  }
  if (op == "lease_renew") {
    if (!only({"lease_id", "host"})) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    auto id = lease_id_of(b, false, why);
    auto host = get_string(b, "host", "", why, false);
    if (!id || !host) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    if (*id == 0 && host->empty()) {
      return error_reply(Errc::kInvalidArgument, "lease_id or host: one is required");
    }
    auto r = pool.renew(*id, *host, why);
    return r ? ApiReply{200, *r} : refused(r.error(), why);
  }
  if (op == "lease_release") {
    auto id = only({"lease_id", "host"}) ? lease_id_of(b, true, why)
                                         : Result<std::uint64_t>(fail(Errc::kInvalidArgument, "api"));
    auto host = get_string(b, "host", "", why, false);
    if (!id || !host) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    auto r = pool.release(*id, *host, why);
    return r ? ApiReply{200, json{{"released", *id}}} : refused(r.error(), why);
  }
  if (op == "lease_reassign") {
    if (!only({"lease_id", "host"})) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    auto id = lease_id_of(b, true, why);
    auto host = get_string(b, "host", "", why, id.has_value());
    if (!id || !host) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    auto r = pool.reassign(*id, *host, why);
    return r ? ApiReply{200, *r} : refused(r.error(), why);
  }
  if (op == "lease_list") {
    auto host = only({"host"}) ? get_string(b, "host", "", why, false)
                               : Result<std::string>(fail(Errc::kInvalidArgument, "api"));
    if (!host) {
      return error_reply(Errc::kInvalidArgument, why);
    }
    return ApiReply{200, pool.leases(*host)};
  }
  if (op == "appliance_stats") {
    return only({}) ? ApiReply{200, json{{"fabric", to_json(target.stats())}}}
                    : error_reply(Errc::kInvalidArgument, why);
  }
  return error_reply(Errc::kNotFound, "unknown operation '" + op + "'");
}

std::string metrics(PoolService& pool, VolumeTarget& target) {
  std::string out;
  const auto add = [&](const char* name, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + std::to_string(v) + "\n";
  };
  add("viopool_appliance_functions", "Functions carved.", pool.functions()["functions"].size());
  add("viopool_appliance_leases", "Leases held.", pool.leases("")["leases"].size());
  const auto s = target.stats();
  add("viopool_fabric_channels", "Fabric channels open.", s.channels);
  add("viopool_fabric_frames_total", "Fabric frames received.", s.frames);
  add("viopool_fabric_auth_failures_total", "Frames dropped: no grant or a bad tag.",
      s.auth_failures);
  add("viopool_fabric_requests_total", "Block requests received.", s.requests);
  add("viopool_fabric_errors_total", "Completions with an error.", s.errors);
  add("viopool_nic_rx_total", "Frames received on NIC ports.", s.nic_rx);
  add("viopool_nic_tx_total", "Frames sent on NIC ports.", s.nic_tx);
  add("viopool_nic_unknown_total", "Unicast frames for no vNIC, dropped.", s.nic_unknown);
  return out;
}

}  // namespace

control::ApiRoutes appliance_routes(PoolService& pool, VolumeTarget& target) {
  control::ApiRoutes r;
  r.call = [&pool, &target](const std::string& op, const json& body) {
    return dispatch(pool, target, op, body);
  };
  r.read_only = {"inventory_list", "function_list", "function_show", "lease_list",
                 "appliance_stats"};
  r.metrics = [&pool, &target] { return metrics(pool, target); };
  return r;
}

}  // namespace viopool::pool
