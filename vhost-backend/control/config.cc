// JSON → config structs with strict validation (unknown keys, ranges, names).
#include "vhost-backend/control/config.h"

#include <nlohmann/json.hpp>

#include <array>
#include <set>
#include <span>
#include <sstream>

#include "pool-manager/protocol/frame_auth.h"
#include "vhost-backend/control/json_fields.h"

namespace viopool::control {
namespace {

using nlohmann::json;

// A pooled backend's "appliance": the API's ADDRESS:PORT.
Result<std::string> get_appliance(const json& bj, const std::string& bwhere, std::string& why) {
  auto app = get_string(bj, "appliance", bwhere, why, true);
  VIOPOOL_TRY(app);
  const auto colon = app->rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == app->size() ||
      app->find_first_not_of("0123456789", colon + 1) != std::string::npos) {
    why = path_of(bwhere, "appliance") + ": expected ADDRESS:PORT of the appliance's API";
    return fail(Errc::kInvalidArgument, "config: bad appliance");
  }
  return app;
}

// The device's "backend" object, checked against the keys its kind allows.
Result<const json*> backend_of(const json& j, const std::string& bwhere, std::string& why,
                               std::initializer_list<const char*> allowed) {
  auto bit = j.find("backend");
  if (bit == j.end()) {
    why = bwhere + ": missing";
    return fail(Errc::kInvalidArgument, "config: missing backend");
  }
  VIOPOOL_TRY(reject_unknown(*bit, allowed, bwhere, why));
  return &*bit;
}

Result<void> parse_blk_part(const json& j, const std::string& where, std::string& why,
                            DeviceConfig& d) {
  auto q = get_int(j, "queues", where, why, 1, 1, kMaxQueuePairs);
  VIOPOOL_TRY(q);
  d.queues = static_cast<std::uint16_t>(*q);
  auto ro = get_bool(j, "read_only", where, why, false);
  VIOPOOL_TRY(ro);
  d.read_only = *ro;
  auto serial = get_string(j, "serial", where, why, false, d.name);
  VIOPOOL_TRY(serial);
  if (serial->size() > 20) {
    why = path_of(where, "serial") + ": at most 20 bytes (virtio-blk GET_ID)";
    return fail(Errc::kInvalidArgument, "config: serial too long");
  }
  d.serial = *serial;
  auto packed = get_bool(j, "packed_ring", where, why, true);
  VIOPOOL_TRY(packed);
  d.packed_ring = *packed;

  const std::string bwhere = path_of(where, "backend");
  auto backend = backend_of(j, bwhere, why,
                            {"kind", "path", "size", "block_size", "direct", "queue_depth", "uri",
                             "function_id", "key", "mtu", "timeout_ms", "appliance", "volume",
                             "lease_size", "lease_mode", "lease_ttl_ms"});
  VIOPOOL_TRY(backend);
  const json& bj = **backend;
  auto kind = get_string(bj, "kind", bwhere, why, true);
  VIOPOOL_TRY(kind);
  if (*kind == "uring") {
    d.blk.kind = BlkBackendKind::kUring;
  } else if (*kind == "malloc") {
    d.blk.kind = BlkBackendKind::kMalloc;
  } else if (*kind == "null") {
    d.blk.kind = BlkBackendKind::kNull;
  } else if (*kind == "pool") {
    d.blk.kind = BlkBackendKind::kPool;
  } else {
    why = path_of(bwhere, "kind") + ": unknown backend '" + *kind +
          "' (supported for blk: uring, malloc, null, pool)";
    return fail(Errc::kUnsupported, "config: unknown backend kind");
  }
  auto qd = get_int(bj, "queue_depth", bwhere, why, 128, 1, 4096);
  VIOPOOL_TRY(qd);
  d.blk.queue_depth = static_cast<std::uint32_t>(*qd);
  const bool pool = d.blk.kind == BlkBackendKind::kPool;
  for (const char* k : {"uri", "function_id", "key", "mtu", "timeout_ms", "appliance", "volume",
                        "lease_size", "lease_mode", "lease_ttl_ms"}) {
    if (!pool && bj.contains(k)) {
      why = path_of(bwhere, k) + ": only the pool backend takes it";
      return fail(Errc::kInvalidArgument, "config: pool key without pool");
    }
  }
  if (pool) {
    for (const char* k : {"path", "size", "block_size", "direct"}) {
      if (bj.contains(k)) {
        why = path_of(bwhere, k) + ": the pool backend takes it from the appliance's volume";
        return fail(Errc::kInvalidArgument, "config: local key with pool");
      }
    }
    auto mtu = get_int(bj, "mtu", bwhere, why, 1472, 512, 65507);
    VIOPOOL_TRY(mtu);
    d.blk.mtu = static_cast<std::uint32_t>(*mtu);
    auto timeout = get_int(bj, "timeout_ms", bwhere, why, 30000, 10, 3600000);
    VIOPOOL_TRY(timeout);
    d.blk.timeout_ms = static_cast<std::uint32_t>(*timeout);
    if (bj.contains("appliance")) {
      for (const char* k : {"uri", "function_id", "key"}) {
        if (bj.contains(k)) {
          why = path_of(bwhere, k) + ": a leased volume gets it from the appliance";
          return fail(Errc::kInvalidArgument, "config: static key with a lease");
        }
      }
      auto app = get_appliance(bj, bwhere, why);
      VIOPOOL_TRY(app);
      d.blk.appliance = *app;
      auto vol = get_string(bj, "volume", bwhere, why, false);
      VIOPOOL_TRY(vol);
      auto size = get_size(bj, "lease_size", bwhere, why, 0);
      VIOPOOL_TRY(size);
      if (vol->empty() == (*size == 0)) {
        why = bwhere + ": name a volume, or a lease_size to lease any free volume that large";
        return fail(Errc::kInvalidArgument, "config: volume or lease_size");
      }
      if (!vol->empty() && !valid_name(*vol)) {
        why = path_of(bwhere, "volume") + ": 1 to 32 characters of A-Z a-z 0-9 _ - .";
        return fail(Errc::kInvalidArgument, "config: bad volume name");
      }
      d.blk.volume = *vol;
      d.blk.lease_size = *size;
      auto mode = get_choice(bj, "lease_mode", bwhere, why, {"exclusive", "shared"}, 0);
      VIOPOOL_TRY(mode);
      d.blk.lease_shared = *mode == 1;
      auto ttl = get_int(bj, "lease_ttl_ms", bwhere, why, 0, 0, 3600000);
      VIOPOOL_TRY(ttl);
      d.blk.lease_ttl_ms = *ttl;
      return {};
    }
    for (const char* k : {"volume", "lease_size", "lease_mode", "lease_ttl_ms"}) {
      if (bj.contains(k)) {
        why = path_of(bwhere, k) + ": only a leased volume (with \"appliance\") takes it";
        return fail(Errc::kInvalidArgument, "config: lease key without appliance");
      }
    }
    auto uri = get_string(bj, "uri", bwhere, why, true);
    VIOPOOL_TRY(uri);
    if (uri->rfind("pool://", 0) != 0 || uri->find('/', 7) == std::string::npos) {
      why = path_of(bwhere, "uri") + ": expected pool://ADDRESS:PORT/VOLUME";
      return fail(Errc::kInvalidArgument, "config: bad pool uri");
    }
    d.blk.uri = *uri;
    auto fid = get_int(bj, "function_id", bwhere, why, 0, 1, 0xffffffffLL);
    VIOPOOL_TRY(fid);
    if (*fid == 0) {
      why = path_of(bwhere, "function_id") + ": missing";
      return fail(Errc::kInvalidArgument, "config: missing key");
    }
    d.blk.function_id = static_cast<std::uint32_t>(*fid);
    auto key = get_string(bj, "key", bwhere, why, true);
    VIOPOOL_TRY(key);
    if (!pool::parse_auth_key(*key)) {
      why = path_of(bwhere, "key") + ": 32 hex digits (a 128-bit key)";
      return fail(Errc::kInvalidArgument, "config: bad key");
    }
    d.blk.key = *key;
    return {};
  }
  const bool uring = d.blk.kind == BlkBackendKind::kUring;
  auto path = get_string(bj, "path", bwhere, why, uring);
  VIOPOOL_TRY(path);
  if (!uring && !path->empty()) {
    why = path_of(bwhere, "path") + ": only the uring backend takes a path";
    return fail(Errc::kInvalidArgument, "config: path without uring");
  }
  d.blk.path = *path;
  auto bs = get_block_size(bj, "block_size", bwhere, why);
  VIOPOOL_TRY(bs);
  d.blk.block_size = *bs;
  auto size = get_size(bj, "size", bwhere, why, 0);
  VIOPOOL_TRY(size);
  if (uring && *size != 0) {
    why = path_of(bwhere, "size") + ": the uring backend takes its size from the file";
    return fail(Errc::kInvalidArgument, "config: size with uring");
  }
  const std::uint64_t unit = d.blk.block_size ? d.blk.block_size : 512;
  if (!uring && (*size == 0 || *size % unit != 0)) {
    why = path_of(bwhere, "size") + ": required, a non-zero multiple of the block size";
    return fail(Errc::kInvalidArgument, "config: bad size");
  }
  d.blk.size_bytes = *size;
  auto direct = get_choice(bj, "direct", bwhere, why, {"auto", "on", "off"}, 0);
  VIOPOOL_TRY(direct);
  d.blk.direct = std::array{DirectIoMode::kAuto, DirectIoMode::kOn, DirectIoMode::kOff}[*direct];
  return {};
}

Result<void> parse_crypto_part(const json& j, const std::string& where, std::string& why,
                               DeviceConfig& d) {
  auto q = get_int(j, "queues", where, why, 1, 1, kMaxQueuePairs);
  VIOPOOL_TRY(q);
  d.queues = static_cast<std::uint16_t>(*q);
  auto packed = get_bool(j, "packed_ring", where, why, true);
  VIOPOOL_TRY(packed);
  d.packed_ring = *packed;
  const std::string bwhere = path_of(where, "backend");
  auto backend = backend_of(j, bwhere, why,
                            {"kind", "devargs", "max_sessions", "queue_depth", "appliance", "slot",
                             "mtu", "timeout_ms", "lease_ttl_ms", "cpu_crypto"});
  VIOPOOL_TRY(backend);
  const json& bj = **backend;
  auto kind = get_string(bj, "kind", bwhere, why, false, "cryptodev");
  VIOPOOL_TRY(kind);
  if (*kind != "cryptodev" && *kind != "pool") {
    why = path_of(bwhere, "kind") + ": unknown backend '" + *kind +
          "' (supported for crypto: cryptodev, pool)";
    return fail(Errc::kUnsupported, "config: unknown backend kind");
  }
  d.crypto.pool = *kind == "pool";
  static constexpr const char* kPoolKeys[] = {"appliance", "slot", "mtu", "timeout_ms",
                                              "lease_ttl_ms"};
  static constexpr const char* kLocalKeys[] = {"devargs"};
  const std::span<const char* const> other =
      d.crypto.pool ? std::span<const char* const>(kLocalKeys) : std::span<const char* const>(kPoolKeys);
  for (const char* k : other) {
    if (bj.contains(k)) {
      why = path_of(bwhere, k) + (d.crypto.pool ? ": a pooled slot's engine is the appliance's"
                                                : ": only the pool backend takes it");
      return fail(Errc::kInvalidArgument, "config: key of the other crypto backend");
    }
  }
  if (d.crypto.pool) {
    auto app = get_appliance(bj, bwhere, why);
    VIOPOOL_TRY(app);
    d.crypto.appliance = *app;
    auto slot = get_string(bj, "slot", bwhere, why, true);
    VIOPOOL_TRY(slot);
    if (!valid_name(*slot)) {
      why = path_of(bwhere, "slot") + ": 1 to 32 characters of A-Z a-z 0-9 _ - .";
      return fail(Errc::kInvalidArgument, "config: bad slot name");
    }
    d.crypto.slot = *slot;
    auto mtu = get_int(bj, "mtu", bwhere, why, 1472, 512, 65507);
    VIOPOOL_TRY(mtu);
    d.crypto.mtu = static_cast<std::uint32_t>(*mtu);
    auto t = get_int(bj, "timeout_ms", bwhere, why, 5000, 10, 3600000);
    VIOPOOL_TRY(t);
    d.crypto.timeout_ms = static_cast<std::uint32_t>(*t);
    auto ttl = get_int(bj, "lease_ttl_ms", bwhere, why, 0, 0, 3600000);
    VIOPOOL_TRY(ttl);
    d.crypto.lease_ttl_ms = *ttl;
  } else {
    auto devargs = get_string(bj, "devargs", bwhere, why, true);
    VIOPOOL_TRY(devargs);
    if (devargs->empty()) {
      why = path_of(bwhere, "devargs") + ": required, e.g. \"crypto_aesni_mb0\"";
      return fail(Errc::kInvalidArgument, "config: empty devargs");
    }
    d.crypto.devargs = *devargs;
    auto cpu = get_bool(bj, "cpu_crypto", bwhere, why, true);
    VIOPOOL_TRY(cpu);
    d.crypto.cpu_crypto = *cpu;
  }
  auto ms = get_int(bj, "max_sessions", bwhere, why, 256, 1, 65536);
  VIOPOOL_TRY(ms);
  d.crypto.max_sessions = static_cast<std::uint32_t>(*ms);
  auto qd = get_int(bj, "queue_depth", bwhere, why, 256, 16, 4096);
  VIOPOOL_TRY(qd);
  d.crypto.queue_depth = static_cast<std::uint32_t>(*qd);
  return {};
}

Result<DeviceConfig> parse_device_at(const json& j, const std::string& where, std::string& why) {
  if (!j.is_object()) {
    why = (where.empty() ? std::string("device") : where) + ": expected an object";
    return fail(Errc::kInvalidArgument, "config: expected object");
  }
  auto type = get_string(j, "type", where, why, false, "net");
  VIOPOOL_TRY(type);
  DeviceConfig d;
  if (*type == "net") {
    d.type = DeviceType::kNet;
    VIOPOOL_TRY(reject_unknown(j,
                               {"name", "type", "socket", "mode", "queue_pairs", "mrg_rxbuf",
                                "packed_ring", "lcore", "backend"},
                               where.empty() ? "device" : where, why));
  } else if (*type == "blk") {
    d.type = DeviceType::kBlk;
    VIOPOOL_TRY(reject_unknown(j,
                               {"name", "type", "socket", "mode", "queues", "read_only", "serial",
                                "packed_ring", "lcore", "backend"},
                               where.empty() ? "device" : where, why));
  } else if (*type == "crypto") {
    d.type = DeviceType::kCrypto;
    VIOPOOL_TRY(reject_unknown(j, {"name", "type", "socket", "mode", "queues", "packed_ring", "lcore",
                                   "backend"},
                               where.empty() ? "device" : where, why));
  } else {
    why = path_of(where, "type") + ": unknown device type '" + *type +
          "' (supported: net, blk, crypto)";
    return fail(Errc::kUnsupported, "config: unknown device type");
  }
  auto name = get_string(j, "name", where, why, true);
  VIOPOOL_TRY(name);
  if (!valid_name(*name)) {
    why = path_of(where, "name") + ": '" + *name +
          "' must be 1-32 characters of [A-Za-z0-9_.-]";
    return fail(Errc::kInvalidArgument, "config: bad device name");
  }
  d.name = *name;

  auto sock = get_string(j, "socket", where, why, true);
  VIOPOOL_TRY(sock);
  // sun_path is 108 bytes including the terminator.
  if (sock->empty() || sock->size() > 107) {
    why = path_of(where, "socket") + ": path must be 1-107 bytes";
    return fail(Errc::kInvalidArgument, "config: bad socket path");
  }
  d.socket = *sock;

  auto mode = get_string(j, "mode", where, why, false, "server");
  VIOPOOL_TRY(mode);
  if (*mode == "server") {
    d.mode = SocketMode::kServer;
  } else if (*mode == "client") {
    d.mode = SocketMode::kClient;
  } else {
    why = path_of(where, "mode") + ": '" + *mode + "' is neither 'server' nor 'client'";
    return fail(Errc::kInvalidArgument, "config: bad socket mode");
  }

  auto lcore = get_int(j, "lcore", where, why, -1, -1, 1023);
  VIOPOOL_TRY(lcore);
  d.lcore = static_cast<int>(*lcore);
  if (d.type == DeviceType::kBlk) {
    VIOPOOL_TRY(parse_blk_part(j, where, why, d));
    return d;
  }
  if (d.type == DeviceType::kCrypto) {
    VIOPOOL_TRY(parse_crypto_part(j, where, why, d));
    return d;
  }

  auto qp = get_int(j, "queue_pairs", where, why, 1, 1, kMaxQueuePairs);
  VIOPOOL_TRY(qp);
  d.queue_pairs = static_cast<std::uint16_t>(*qp);
  auto mrg = get_bool(j, "mrg_rxbuf", where, why, true);
  VIOPOOL_TRY(mrg);
  d.mrg_rxbuf = *mrg;
  auto packed = get_bool(j, "packed_ring", where, why, true);
  VIOPOOL_TRY(packed);
  d.packed_ring = *packed;

  const std::string bwhere = path_of(where, "backend");
  auto backend = backend_of(j, bwhere, why,
                            {"kind", "devargs", "rx_desc", "tx_desc", "appliance", "vnic", "mtu",
                             "lease_ttl_ms"});
  VIOPOOL_TRY(backend);
  const json& bj = **backend;
  auto kind = get_string(bj, "kind", bwhere, why, true);
  VIOPOOL_TRY(kind);
  if (*kind == "loopback") {
    d.net.kind = NetBackendKind::kLoopback;
  } else if (*kind == "null") {
    d.net.kind = NetBackendKind::kNull;
  } else if (*kind == "ethdev") {
    d.net.kind = NetBackendKind::kEthdev;
  } else if (*kind == "pool") {
    d.net.kind = NetBackendKind::kPool;
  } else {
    why = path_of(bwhere, "kind") + ": unknown backend '" + *kind +
          "' (supported: loopback, null, ethdev, pool)";
    return fail(Errc::kUnsupported, "config: unknown backend kind");
  }
  for (const char* k : {"appliance", "vnic", "mtu", "lease_ttl_ms"}) {
    if (d.net.kind != NetBackendKind::kPool && bj.contains(k)) {
      why = path_of(bwhere, k) + ": only the pool backend takes it";
      return fail(Errc::kInvalidArgument, "config: pool key without pool");
    }
  }
  if (d.net.kind == NetBackendKind::kPool) {
    auto app = get_appliance(bj, bwhere, why);
    VIOPOOL_TRY(app);
    d.net.appliance = *app;
    auto vnic = get_string(bj, "vnic", bwhere, why, false);
    VIOPOOL_TRY(vnic);
    if (!vnic->empty() && !valid_name(*vnic)) {
      why = path_of(bwhere, "vnic") + ": 1 to 32 characters of A-Z a-z 0-9 _ - .";
      return fail(Errc::kInvalidArgument, "config: bad vnic name");
    }
    d.net.vnic = *vnic;
    auto mtu = get_int(bj, "mtu", bwhere, why, 0, 0, 65507);
    VIOPOOL_TRY(mtu);
    d.net.mtu = static_cast<std::uint32_t>(*mtu);
    auto ttl = get_int(bj, "lease_ttl_ms", bwhere, why, 0, 0, 3600000);
    VIOPOOL_TRY(ttl);
    d.net.lease_ttl_ms = *ttl;
  }
  auto devargs = get_string(bj, "devargs", bwhere, why, d.net.kind == NetBackendKind::kEthdev);
  VIOPOOL_TRY(devargs);
  if (d.net.kind != NetBackendKind::kEthdev && !devargs->empty()) {
    why = path_of(bwhere, "devargs") + ": only the ethdev backend takes devargs";
    return fail(Errc::kInvalidArgument, "config: devargs without ethdev");
  }
  d.net.devargs = *devargs;
  // Ring sizes: powers of two a NIC accepts; 64..4096 covers real and virtual PMDs.
  auto rxd = get_int(bj, "rx_desc", bwhere, why, 1024, 64, 4096);
  VIOPOOL_TRY(rxd);
  auto txd = get_int(bj, "tx_desc", bwhere, why, 1024, 64, 4096);
  VIOPOOL_TRY(txd);
  d.net.rx_desc = static_cast<std::uint16_t>(*rxd);
  d.net.tx_desc = static_cast<std::uint16_t>(*txd);
  return d;
}

}  // namespace

const char* to_string(DeviceType t) noexcept {
  switch (t) {
    case DeviceType::kNet: return "net";
    case DeviceType::kBlk: return "blk";
    case DeviceType::kCrypto: return "crypto";
  }
  return "?";
}
const char* to_string(BlkBackendKind k) noexcept {
  switch (k) {
    case BlkBackendKind::kUring: return "uring";
    case BlkBackendKind::kPool: return "pool";
    case BlkBackendKind::kMalloc: return "malloc";
    case BlkBackendKind::kNull: return "null";
  }
  return "?";
}
const char* to_string(DirectIoMode m) noexcept {
  switch (m) {
    case DirectIoMode::kAuto: return "auto";
    case DirectIoMode::kOn: return "on";
    case DirectIoMode::kOff: return "off";
  }
  return "?";
}
const char* to_string(SocketMode m) noexcept {
  return m == SocketMode::kServer ? "server" : "client";
}
const char* to_string(NetBackendKind k) noexcept {
  switch (k) {
    case NetBackendKind::kLoopback: return "loopback";
    case NetBackendKind::kNull: return "null";
    case NetBackendKind::kEthdev: return "ethdev";
    case NetBackendKind::kPool: return "pool";
  }
  return "?";
}

Result<DeviceConfig> parse_device_config(const json& j, std::string& why) {
  return parse_device_at(j, "", why);
}

Result<HostConfig> parse_host_config(const json& j, std::string& why) {
  VIOPOOL_TRY(reject_unknown(
      j,
      {"control_socket", "host_id", "log_level", "eal_args", "mbufs", "idle_sleep_us", "busy_poll",
       "devices"},
      "config",
      why));
  HostConfig c;
  auto cs = get_string(j, "control_socket", "", why, false, c.control_socket);
  VIOPOOL_TRY(cs);
  if (cs->empty() || cs->size() > 107) {
    why = "control_socket: path must be 1-107 bytes";
    return fail(Errc::kInvalidArgument, "config: bad control socket");
  }
  c.control_socket = *cs;
  auto hid = get_string(j, "host_id", "", why, false);
  VIOPOOL_TRY(hid);
  c.host_id = *hid;
  auto ll = get_string(j, "log_level", "", why, false, c.log_level);
  VIOPOOL_TRY(ll);
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!kLevels.count(*ll)) {
    why = "log_level: '" + *ll + "' is not one of trace, debug, info, warn, error, off";
    return fail(Errc::kInvalidArgument, "config: bad log level");
  }
  c.log_level = *ll;
  if (auto it = j.find("eal_args"); it != j.end()) {
    if (!it->is_array()) {
      why = "eal_args: expected an array of strings";
      return fail(Errc::kInvalidArgument, "config: bad eal_args");
    }
    for (const auto& a : *it) {
      if (!a.is_string()) {
        why = "eal_args: expected an array of strings";
        return fail(Errc::kInvalidArgument, "config: bad eal_args");
      }
      c.eal_args.push_back(a.get<std::string>());
    }
  }
  // 1023 mbufs is the least that keeps a few 1024-descriptor queues filled.
  auto mb = get_int(j, "mbufs", "", why, c.mbufs, 1023, 1 << 22);
  VIOPOOL_TRY(mb);
  c.mbufs = static_cast<std::uint32_t>(*mb);
  auto is = get_int(j, "idle_sleep_us", "", why, c.idle_sleep_us, 10, 1000000);
  VIOPOOL_TRY(is);
  c.idle_sleep_us = static_cast<std::uint32_t>(*is);
  auto bp = get_bool(j, "busy_poll", "", why, false);
  VIOPOOL_TRY(bp);
  c.busy_poll = *bp;

  std::set<std::string> names;
  std::set<std::string> sockets;
  if (auto it = j.find("devices"); it != j.end()) {
    if (!it->is_array()) {
      why = "devices: expected an array";
      return fail(Errc::kInvalidArgument, "config: bad devices");
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const std::string where = "devices[" + std::to_string(i) + "]";
      auto d = parse_device_at((*it)[i], where, why);
      VIOPOOL_TRY(d);
      if (!names.insert(d->name).second) {
        why = where + ".name: '" + d->name + "' is used twice";
        return fail(Errc::kAlreadyExists, "config: duplicate device name");
      }
      if (!sockets.insert(d->socket).second) {
        why = where + ".socket: '" + d->socket + "' is used twice";
        return fail(Errc::kAlreadyExists, "config: duplicate socket path");
      }
      c.devices.push_back(std::move(*d));
    }
  }
  return c;
}

Result<HostConfig> load_host_config(const std::string& path, std::string& why) {
  auto j = load_json_file(path, why);
  VIOPOOL_TRY(j);
  auto c = parse_host_config(*j, why);
  if (!c) {
    why = path + ": " + why;
  }
  return c;
}

json to_json(const DeviceConfig& d) {
  if (d.type == DeviceType::kCrypto) {
    json b = {{"kind", d.crypto.pool ? "pool" : "cryptodev"},
              {"max_sessions", d.crypto.max_sessions},
              {"queue_depth", d.crypto.queue_depth}};
    if (d.crypto.pool) {
      b["appliance"] = d.crypto.appliance;
      b["slot"] = d.crypto.slot;
      b["mtu"] = d.crypto.mtu;
      b["timeout_ms"] = d.crypto.timeout_ms;
      b["lease_ttl_ms"] = d.crypto.lease_ttl_ms;
    } else {
      b["devargs"] = d.crypto.devargs;
      b["cpu_crypto"] = d.crypto.cpu_crypto;
    }
    return json{{"name", d.name},         {"type", "crypto"},
                {"socket", d.socket},     {"mode", to_string(d.mode)},
                {"queues", d.queues},     {"packed_ring", d.packed_ring},
                {"lcore", d.lcore},       {"backend", b}};
  }
  if (d.type == DeviceType::kBlk) {
    json b = {{"kind", to_string(d.blk.kind)}, {"block_size", d.blk.block_size}};
    if (d.blk.kind == BlkBackendKind::kUring) {
      b["path"] = d.blk.path;
      b["direct"] = to_string(d.blk.direct);
    } else if (d.blk.kind == BlkBackendKind::kPool) {
      b.erase("block_size");
      if (!d.blk.appliance.empty()) {
        b["appliance"] = d.blk.appliance;
        if (!d.blk.volume.empty()) {
          b["volume"] = d.blk.volume;
        } else {
          b["lease_size"] = d.blk.lease_size;
        }
        b["lease_mode"] = d.blk.lease_shared ? "shared" : "exclusive";
        b["lease_ttl_ms"] = d.blk.lease_ttl_ms;
      } else {
        b["uri"] = d.blk.uri;
        b["function_id"] = d.blk.function_id;
      }
      b["mtu"] = d.blk.mtu;
      b["timeout_ms"] = d.blk.timeout_ms;
    } else {
      b["size"] = d.blk.size_bytes;
    }
    b["queue_depth"] = d.blk.queue_depth;
    return json{{"name", d.name},   {"type", "blk"},          {"socket", d.socket},
                {"mode", to_string(d.mode)}, {"queues", d.queues}, {"read_only", d.read_only},
                {"serial", d.serial}, {"packed_ring", d.packed_ring}, {"lcore", d.lcore},
                {"backend", b}};
  }
  json b = {{"kind", to_string(d.net.kind)}};
  if (d.net.kind == NetBackendKind::kEthdev) {
    b["devargs"] = d.net.devargs;
    b["rx_desc"] = d.net.rx_desc;
    b["tx_desc"] = d.net.tx_desc;
  } else if (d.net.kind == NetBackendKind::kPool) {
    b["appliance"] = d.net.appliance;
    b["vnic"] = d.net.vnic;
    b["mtu"] = d.net.mtu;
    b["lease_ttl_ms"] = d.net.lease_ttl_ms;
  }
  return json{{"name", d.name},           {"type", to_string(d.type)},
              {"socket", d.socket},       {"mode", to_string(d.mode)},
              {"queue_pairs", d.queue_pairs}, {"mrg_rxbuf", d.mrg_rxbuf},
              {"packed_ring", d.packed_ring}, {"lcore", d.lcore},
              {"backend", b}};
}

}  // namespace viopool::control
