// JSON → ApplianceConfig.
#include "pool-manager/appliance/appliance_config.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
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

// The size of a file or block device, or an error naming it.
Result<std::uint64_t> size_of(const std::string& path, const std::string& where, std::string& why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  std::uint64_t size = 0;
  int err = 0;
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    err = errno;
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      err = errno;
    }
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<std::uint64_t>(st.st_size);
  } else {
    err = EINVAL;
  }
  if (fd >= 0) {
    ::close(fd);
  }
  if (err != 0) {
    why = path_of(where, "path") + ": " + path + ": " +
          (err == EINVAL ? "not a file or block device" : std::strerror(err));
    return fail(Errc::kInvalidArgument, "config: bad device path");
  }
  return size;
}

Result<StorageDevice> parse_device(const json& j, const std::string& where, std::string& why) {
  VIOPOOL_TRY(reject_unknown(
      j,
      {"name", "kind", "path", "capacity", "overcommit", "direct", "driver", "slots", "devargs",
       "vnics", "link_mbps", "mtu", "ovs"},
      where, why));
  StorageDevice d;
  auto name = get_string(j, "name", where, why, true);
  VIOPOOL_TRY(name);
  if (!valid_name(*name)) {
    why = path_of(where, "name") + ": 1 to 32 characters of A-Z a-z 0-9 _ - .";
    return fail(Errc::kInvalidArgument, "config: bad name");
  }
  d.name = *name;
  auto kind = get_choice(j, "kind", where, why, {"directory", "block", "crypto", "nic"}, 99);
  VIOPOOL_TRY(kind);
  if (*kind == 99) {
    why = path_of(where, "kind") + ": required, \"directory\", \"block\", \"crypto\" or \"nic\"";
    return fail(Errc::kInvalidArgument, "config: missing kind");
  }
  const bool nic_key = j.contains("devargs") || j.contains("vnics") || j.contains("link_mbps") ||
                       j.contains("mtu") || j.contains("ovs");
  if (*kind == 3) {
    d.kind = StorageKind::kNic;
    for (const char* k : {"path", "capacity", "overcommit", "direct", "driver", "slots"}) {
      if (j.contains(k)) {
        why = path_of(where, k) + ": a NIC port takes devargs, vnics, link_mbps and mtu";
        return fail(Errc::kInvalidArgument, "config: storage key on a nic");
      }
    }
    auto devargs = get_string(j, "devargs", where, why, true);
    VIOPOOL_TRY(devargs);
    if (devargs->empty()) {
      why = path_of(where, "devargs") + ": DPDK devargs of the port (net_af_packet0,iface=eth1)";
      return fail(Errc::kInvalidArgument, "config: bad devargs");
    }
    d.path = *devargs;
    auto vnics = get_int(j, "vnics", where, why, 64, 1, 4096);
    VIOPOOL_TRY(vnics);
    d.max_slots = static_cast<std::uint32_t>(*vnics);
    auto link = get_int(j, "link_mbps", where, why, 10000, 1, 400000);
    VIOPOOL_TRY(link);
    d.link_mbps = static_cast<std::uint32_t>(*link);
    auto mtu = get_int(j, "mtu", where, why, 1500, 68, 9198);
    VIOPOOL_TRY(mtu);
    d.mtu = static_cast<std::uint32_t>(*mtu);
    if (auto o = j.find("ovs"); o != j.end()) {
      const std::string ow = path_of(where, "ovs");
      if (!o->is_object()) {
        why = ow + ": expected an object {bridge, db, socket_dir}";
        return fail(Errc::kInvalidArgument, "config: ovs");
      }
      VIOPOOL_TRY(reject_unknown(*o, {"bridge", "db", "socket_dir", "offload", "rundir"}, ow, why));
      auto off = get_bool(*o, "offload", ow, why, false);
      VIOPOOL_TRY(off);
      auto rundir = get_string(*o, "rundir", ow, why, false);
      VIOPOOL_TRY(rundir);
      d.ovs_offload = *off;
      d.ovs_rundir = *rundir;
      auto br = get_string(*o, "bridge", ow, why, true);
      VIOPOOL_TRY(br);
      auto db = get_string(*o, "db", ow, why, false);
      VIOPOOL_TRY(db);
      auto dir = get_string(*o, "socket_dir", ow, why, false, "/run/viopool/ovs");
      VIOPOOL_TRY(dir);
      if (br->empty() || dir->empty() || (*dir)[0] != '/') {
        why = ow + ": bridge is required and socket_dir must be an absolute path";
        return fail(Errc::kInvalidArgument, "config: ovs");
      }
      d.ovs_bridge = *br;
      d.ovs_db = *db;
      d.ovs_socket_dir = *dir;
    }
    return d;
  }
  if (nic_key) {
    why = where + ": devargs, vnics, link_mbps, mtu and ovs are for NIC ports";
    return fail(Errc::kInvalidArgument, "config: nic key on storage");
  }
  if (*kind == 2) {
    d.kind = StorageKind::kCrypto;
    for (const char* k : {"path", "capacity", "overcommit", "direct"}) {
      if (j.contains(k)) {
        why = path_of(where, k) + ": a crypto engine takes driver and slots";
        return fail(Errc::kInvalidArgument, "config: storage key on crypto");
      }
    }
    auto driver = get_string(j, "driver", where, why, true);
    VIOPOOL_TRY(driver);
    if (driver->rfind("crypto_", 0) != 0 || driver->find(',') != std::string::npos) {
      why = path_of(where, "driver") + ": a DPDK cryptodev driver (crypto_openssl, crypto_aesni_mb, ...)";
      return fail(Errc::kInvalidArgument, "config: bad driver");
    }
    d.driver = *driver;
    auto slots = get_int(j, "slots", where, why, 8, 1, 64);
    VIOPOOL_TRY(slots);
    d.max_slots = static_cast<std::uint32_t>(*slots);
    return d;
  }
  if (j.contains("driver") || j.contains("slots")) {
    why = where + ": driver and slots are for crypto engines";
    return fail(Errc::kInvalidArgument, "config: crypto key on storage");
  }
  d.kind = *kind == 0 ? StorageKind::kDirectory : StorageKind::kBlock;
  auto path = get_string(j, "path", where, why, true);
  VIOPOOL_TRY(path);
  d.path = *path;
  auto direct = get_choice(j, "direct", where, why, {"auto", "off"}, 0);
  VIOPOOL_TRY(direct);
  d.direct = *direct == 0;
  auto cap = get_size(j, "capacity", where, why, 0);
  VIOPOOL_TRY(cap);
  if (d.kind == StorageKind::kDirectory) {
    struct stat st {};
    if (::stat(d.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      why = path_of(where, "path") + ": " + d.path + " is not a directory";
      return fail(Errc::kInvalidArgument, "config: bad directory");
    }
    if (*cap == 0) {
      why = path_of(where, "capacity") + ": required for a directory (bytes, or with K/M/G/T)";
      return fail(Errc::kInvalidArgument, "config: missing capacity");
    }
    d.capacity_bytes = *cap;
    if (auto it = j.find("overcommit"); it != j.end()) {
      if (!it->is_number() || it->get<double>() < 1.0 || it->get<double>() > 100.0) {
        why = path_of(where, "overcommit") + ": a number in [1, 100]";
        return fail(Errc::kOutOfRange, "config: bad overcommit");
      }
      d.overcommit = it->get<double>();
    }
  } else {
    if (j.contains("overcommit")) {
      why = path_of(where, "overcommit") + ": only directories hold thin volumes";
      return fail(Errc::kInvalidArgument, "config: overcommit on a block device");
    }
    auto size = size_of(d.path, where, why);
    VIOPOOL_TRY(size);
    d.capacity_bytes = *cap != 0 ? std::min(*cap, *size) : *size;
  }
  return d;
}

}  // namespace

Result<ApplianceConfig> parse_appliance_config(const json& j, std::string& why) {
  VIOPOOL_TRY(reject_unknown(j,
                             {"listen", "mtu", "node_id", "window", "poll_idle_us", "volumes",
                              "api", "fabric_endpoint", "state", "lease_ttl_ms", "inventory"},
                             "", why));
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
  auto idle =
      get_int(j, "poll_idle_us", "", why, c.target.poll_idle.count(), 0, 1000000);
  VIOPOOL_TRY(idle);
  c.target.poll_idle = std::chrono::microseconds(*idle);
  auto api = get_string(j, "api", "", why, false, c.api);
  VIOPOOL_TRY(api);
  c.api = *api;
  auto endpoint = get_string(j, "fabric_endpoint", "", why, false, c.listen);
  VIOPOOL_TRY(endpoint);
  c.fabric_endpoint = *endpoint;
  auto state = get_string(j, "state", "", why, false, c.state);
  VIOPOOL_TRY(state);
  c.state = *state;
  auto ttl = get_int(j, "lease_ttl_ms", "", why, c.lease_ttl_ms, 1000, 3600000);
  VIOPOOL_TRY(ttl);
  c.lease_ttl_ms = *ttl;
  std::set<std::string> names;
  if (auto inv = j.find("inventory"); inv != j.end()) {
    if (!inv->is_array()) {
      why = "inventory: expected an array";
      return fail(Errc::kInvalidArgument, "config: inventory");
    }
    for (std::size_t i = 0; i < inv->size(); ++i) {
      const std::string where = "inventory[" + std::to_string(i) + "]";
      auto d = parse_device((*inv)[i], where, why);
      VIOPOOL_TRY(d);
      if (!names.insert(d->name).second) {
        why = where + ".name: '" + d->name + "' is used twice";
        return fail(Errc::kInvalidArgument, "config: duplicate name");
      }
      // A whole frame of the port travels in one PACKETS frame.
      if (d->kind == StorageKind::kNic && d->mtu + 18 + 62 > c.mtu) {
        why = where + ".mtu: " + std::to_string(d->mtu) + " needs a fabric mtu of at least " +
              std::to_string(d->mtu + 18 + 62) + " (mtu is " + std::to_string(c.mtu) + ")";
        return fail(Errc::kInvalidArgument, "config: nic mtu above the fabric's");
      }
      c.inventory.push_back(std::move(*d));
    }
  }
  static const json kNone = json::array();
  auto vit = j.find("volumes");
  if (vit != j.end() && !vit->is_array()) {
    why = "volumes: expected an array";
    return fail(Errc::kInvalidArgument, "config: volumes");
  }
  const json& vols = vit == j.end() ? kNone : *vit;
  names.clear();
  std::set<std::uint32_t> ids;
  for (std::size_t i = 0; i < vols.size(); ++i) {
    const std::string where = "volumes[" + std::to_string(i) + "]";
    auto v = parse_volume(vols[i], where, why);
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
