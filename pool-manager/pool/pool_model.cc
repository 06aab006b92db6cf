#include "pool-manager/pool/pool_model.h"

#include "vhost-backend/control/json_fields.h"

namespace viopool::pool {

using nlohmann::json;

const char* to_string(StorageKind k) noexcept {
  switch (k) {
    case StorageKind::kDirectory:
      return "directory";
    case StorageKind::kBlock:
      return "block";
    case StorageKind::kCrypto:
      return "crypto";
    case StorageKind::kNic:
      return "nic";
  }
  return "?";
}
const char* to_string(FunctionClass c) noexcept {
  return c == FunctionClass::kVolume ? "volume" : c == FunctionClass::kCrypto ? "crypto" : "vnic";
}
const char* to_string(LeaseMode m) noexcept {
  return m == LeaseMode::kExclusive ? "exclusive" : "shared";
}

std::string key_to_hex(const AuthKey& k) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (auto b : k) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

json to_json(const FunctionRecord& f) {
  return {{"name", f.name},
          {"id", f.id},
          {"class", to_string(f.cls)},
          {"device", f.device},
          {"created_ms", f.created_ms},
          {"size", f.size_bytes},
          {"thin", f.thin},
          {"block_size", f.block_size},
          {"queues", f.queues},
          {"offset", f.offset_bytes},
          {"path", f.path},
          {"iops_limit", f.iops_limit},
          {"bps_limit", f.bps_limit},
          {"max_sessions", f.max_sessions},
          {"mac", f.mac},
          {"vlan", f.vlan},
          {"mtu", f.mtu},
          {"rate_mbps", f.rate_mbps},
          {"peak_mbps", f.peak_mbps}};
}

json to_json(const LeaseRecord& l, KeyVisibility key) {
  json j = {{"id", l.id},
            {"function", l.function},
            {"host", l.host},
            {"mode", to_string(l.mode)},
            {"ttl_ms", l.ttl_ms},
            {"created_ms", l.created_ms},
            {"expires_ms", l.expires_ms}};
  if (key == KeyVisibility::kShown) {
    j["key"] = key_to_hex(l.key);
  }
  return j;
}

namespace {

template <typename T>
bool read(const json& j, const char* k, T& out) {
  auto it = j.find(k);
  if (it == j.end()) {
    return false;
  }
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

}  // namespace

Result<FunctionRecord> function_from_json(const json& j, std::string& why) {
  FunctionRecord f;
  std::string cls;
  if (!j.is_object() || !read(j, "name", f.name) || !read(j, "id", f.id) ||
      !read(j, "class", cls) || !read(j, "device", f.device) ||
      !read(j, "created_ms", f.created_ms) || !read(j, "size", f.size_bytes) ||
      !read(j, "thin", f.thin) || !read(j, "block_size", f.block_size) ||
      !read(j, "queues", f.queues) || !read(j, "offset", f.offset_bytes) ||
      !read(j, "path", f.path) || !read(j, "iops_limit", f.iops_limit) ||
      !read(j, "bps_limit", f.bps_limit) ||
      (cls != "volume" && cls != "crypto" && cls != "vnic")) {
    why = "a stored function record is incomplete: " + j.dump();
    return fail(Errc::kInvalidArgument, "state: bad function record");
  }
  f.cls = cls == "crypto" ? FunctionClass::kCrypto
          : cls == "vnic" ? FunctionClass::kVnic
                          : FunctionClass::kVolume;
  (void)read(j, "max_sessions", f.max_sessions);  // since crypto slots
  // Since vNICs.
  (void)read(j, "mac", f.mac);
  (void)read(j, "vlan", f.vlan);
  (void)read(j, "mtu", f.mtu);
  (void)read(j, "rate_mbps", f.rate_mbps);
  (void)read(j, "peak_mbps", f.peak_mbps);
  if (f.cls == FunctionClass::kVnic && f.mac.empty()) {
    why = "a stored vNIC has no MAC: " + j.dump();
    return fail(Errc::kInvalidArgument, "state: bad function record");
  }
  return f;
}

Result<LeaseRecord> lease_from_json(const json& j, std::string& why) {
  LeaseRecord l;
  std::string mode;
  std::string key;
  if (!j.is_object() || !read(j, "id", l.id) || !read(j, "function", l.function) ||
      !read(j, "host", l.host) || !read(j, "mode", mode) || !read(j, "ttl_ms", l.ttl_ms) ||
      !read(j, "created_ms", l.created_ms) || !read(j, "expires_ms", l.expires_ms) ||
      !read(j, "key", key) || (mode != "exclusive" && mode != "shared")) {
    why = "a stored lease record is incomplete";
    return fail(Errc::kInvalidArgument, "state: bad lease record");
  }
  l.mode = mode == "shared" ? LeaseMode::kShared : LeaseMode::kExclusive;
  auto k = parse_auth_key(key);
  if (!k) {
    why = "a stored lease has a bad key";
    return unexpected(k.error());
  }
  l.key = *k;
  return l;
}

}  // namespace viopool::pool
