#include "pool-manager/pool/pool_service.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "pool-manager/transport/mac_address.h"
#include "vhost-backend/base/check.h"
#include "vhost-backend/base/log.h"
#include "vhost-backend/control/json_fields.h"

VIOPOOL_LOG_MODULE("pool")

namespace viopool::pool {

using nlohmann::json;

namespace {

Error bad(Errc code, std::string text, std::string& why) {
  why = std::move(text);
  return Error{code, 0, "pool: request refused"};
}

// Host ids: 1 to 64 of [A-Za-z0-9_.:-].
bool valid_host(const std::string& h) {
  if (h.empty() || h.size() > 64) {
    return false;
  }
  return std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' ||
           c == '-' || c == ':';
  });
}

bool power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
}

}  // namespace

PoolService::PoolService(PoolServiceOptions o, StateStore& store, DataPlane& plane, NowMs now)
    : o_(std::move(o)), store_(store), plane_(plane), now_(std::move(now)) {}

Result<std::unique_ptr<PoolService>> PoolService::open(PoolServiceOptions o, StateStore& store,
                                                       DataPlane& plane, NowMs now,
                                                       std::string& why) {
  std::unique_ptr<PoolService> s(new PoolService(std::move(o), store, plane, std::move(now)));
  auto st = store.load(why);
  if (!st) {
    return unexpected(st.error());
  }
  s->state_ = std::move(*st);
  for (const auto& f : s->state_.functions) {
    s->state_.next_function_id = std::max(s->state_.next_function_id, f.id + 1);
    const StorageDevice* d = s->device(f.device);
    if (d == nullptr) {
      s->problems_[f.name] = "device '" + f.device + "' is not in the inventory";
    } else if (std::string w; !s->add_to_plane(f, *d, w)) {
      s->problems_[f.name] = w;
    }
    if (auto p = s->problems_.find(f.name); p != s->problems_.end()) {
      VIOPOOL_LOG_WARN("function {} is not served: {}", f.name, p->second);
    }
  }
  // Grace: no host could renew while the appliance was down, so every lease
  // gets one TTL from now to be renewed (a live host does so within a third
  // of it); the leases of hosts that died meanwhile expire after that. No
  // other host could take a function while the appliance was down either.
  StateChange change;
  const std::int64_t t = s->now_();
  std::vector<LeaseRecord> kept;
  for (auto l : s->state_.leases) {
    s->state_.next_lease_id = std::max(s->state_.next_lease_id, l.id + 1);
    const FunctionRecord* f = s->find_function(l.function);
    if (f == nullptr) {
      change.delete_leases.push_back(l.id);
      continue;
    }
    if (l.expires_ms < t + l.ttl_ms) {
      l.expires_ms = t + l.ttl_ms;
      change.put_leases.push_back(l);
    }
    if (!s->problems_.contains(f->name)) {
      plane.grant(f->id, l.id, l.key);
    }
    kept.push_back(l);
  }
  if (!change.delete_leases.empty() || !change.put_leases.empty()) {
    VIOPOOL_LOG_INFO("{} lease(s) of gone functions dropped; {} lease(s) given one TTL to renew",
                     change.delete_leases.size(), change.put_leases.size());
    if (auto r = store.apply(change, why); !r) {
      return unexpected(r.error());
    }
  }
  s->state_.leases = std::move(kept);
  return s;
}

const StorageDevice* PoolService::device(const std::string& name) const {
  for (const auto& d : o_.devices) {
    if (d.name == name) {
      return &d;
    }
  }
  return nullptr;
}

FunctionRecord* PoolService::find_function(const std::string& name) {
  for (auto& f : state_.functions) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

LeaseRecord* PoolService::find_lease(std::uint64_t id) {
  for (auto& l : state_.leases) {
    if (l.id == id) {
      return &l;
    }
  }
  return nullptr;
}

Result<void> PoolService::keep(const StateChange& c, std::string& why) {
  return store_.apply(c, why);
}

AuthKey PoolService::new_key() {
  AuthKey k{};
  std::size_t got = 0;
  while (got < k.size()) {
    const auto n = ::getrandom(k.data() + got, k.size() - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      VIOPOOL_CHECK(false && "getrandom failed");
    }
  }
  return k;
}

std::int64_t PoolService::ttl_of(std::int64_t asked, std::string& why) const {
  if (asked == 0) {
    return o_.default_ttl_ms;
  }
  if (asked < o_.min_ttl_ms || asked > o_.max_ttl_ms) {
    why = "ttl_ms must be in [" + std::to_string(o_.min_ttl_ms) + ", " +
          std::to_string(o_.max_ttl_ms) + "]";
    return -1;
  }
  return asked;
}

std::uint64_t PoolService::committed(const std::string& device, bool thick_only) const {
  std::uint64_t sum = 0;
  for (const auto& f : state_.functions) {
    if (f.device == device && (!thick_only || !f.thin)) {
      sum += f.size_bytes;
    }
  }
  return sum;
}

Result<std::uint64_t> PoolService::place_extent(const StorageDevice& d, std::uint64_t size,
                                                std::string& why) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> used;  // [begin, end)
  for (const auto& f : state_.functions) {
    if (f.device == d.name) {
      used.emplace_back(f.offset_bytes, f.offset_bytes + f.size_bytes);
    }
  }
  std::sort(used.begin(), used.end());
  const std::uint64_t a = o_.extent_alignment;
  std::uint64_t at = 0;
  for (const auto& [b, e] : used) {
    if (b >= at && b - at >= size) {
      return at;
    }
    at = std::max(at, (e + a - 1) / a * a);
  }
  if (at <= d.capacity_bytes && d.capacity_bytes - at >= size) {
    return at;
  }
  return unexpected(bad(Errc::kResourceExhausted,
                        "device '" + d.name + "' has no free extent of " + std::to_string(size) +
                            " bytes",
                        why));
}

json PoolService::inventory() {
  std::lock_guard lock(mu_);
  json out = json::array();
  for (const auto& d : o_.devices) {
    if (d.kind == StorageKind::kCrypto) {
      out.push_back({{"name", d.name},
                     {"kind", "crypto"},
                     {"class", "crypto"},
                     {"driver", d.driver},
                     {"capacity", d.max_slots},
                     {"committed", std::count_if(state_.functions.begin(), state_.functions.end(),
                                                 [&](const auto& f) { return f.device == d.name; })},
                     {"functions", std::count_if(state_.functions.begin(), state_.functions.end(),
                                                 [&](const auto& f) { return f.device == d.name; })},
                     {"engine", plane_.device_info(d)}});
      continue;
    }
    if (d.kind == StorageKind::kNic) {
      std::uint64_t rate = 0;
      std::int64_t n = 0;
      for (const auto& f : state_.functions) {
        if (f.device == d.name) {
          rate += f.rate_mbps;
          ++n;
        }
      }
      out.push_back({{"name", d.name},
                     {"kind", "nic"},
                     {"class", "vnic"},
                     {"devargs", d.path},
                     {"capacity", d.max_slots},
                     {"functions", n},
                     {"link_mbps", d.link_mbps},
                     {"committed_mbps", rate},
                     {"mtu", d.mtu},
                     {"port", plane_.device_info(d)}});
      continue;
    }
    json j = {{"name", d.name},
              {"kind", to_string(d.kind)},
              {"class", "volume"},
              {"path", d.path},
              {"capacity", d.capacity_bytes},
              {"committed", committed(d.name, false)},
              {"functions", std::count_if(state_.functions.begin(), state_.functions.end(),
                                          [&](const auto& f) { return f.device == d.name; })}};
    if (d.kind == StorageKind::kDirectory) {
      const std::uint64_t thick = committed(d.name, true);
      std::uint64_t allocated = 0;
      for (const auto& f : state_.functions) {
        if (f.device == d.name) {
          allocated += allocated_bytes(f.path);
        }
      }
      j["overcommit"] = d.overcommit;
      j["thick_committed"] = thick;
      j["allocated"] = allocated;
      j["thin"] = true;
    } else {
      j["thin"] = false;
    }
    out.push_back(std::move(j));
  }
  return {{"devices", out}};
}

Result<const StorageDevice*> PoolService::check_new(const std::string& name,
                                                   const std::string& device_name,
                                                   std::string& why) {
  if (!control::valid_name(name)) {
    return unexpected(
        bad(Errc::kInvalidArgument, "name: 1 to 32 characters of [A-Za-z0-9_.-]", why));
  }
  if (find_function(name) != nullptr ||
      std::find(o_.reserved_names.begin(), o_.reserved_names.end(), name) !=
          o_.reserved_names.end()) {
    return unexpected(
        bad(Errc::kAlreadyExists, "a function named '" + name + "' already exists", why));
  }
  const StorageDevice* d = device(device_name);
  if (d == nullptr) {
    return unexpected(
        bad(Errc::kNotFound, "no device '" + device_name + "' in the inventory", why));
  }
  return d;
}

std::uint32_t PoolService::next_id() const {
  std::uint32_t id = state_.next_function_id;
  while (std::find(o_.reserved_ids.begin(), o_.reserved_ids.end(), id) != o_.reserved_ids.end()) {
    ++id;
  }
  return id;
}

Result<FunctionRecord> PoolService::create_volume(const VolumeRequest& r, std::string& why) {
  std::lock_guard lock(mu_);
  auto dev = check_new(r.name, r.device, why);
  if (!dev) {
    return unexpected(dev.error());
  }
  const StorageDevice* d = *dev;
  if (d->kind == StorageKind::kCrypto || d->kind == StorageKind::kNic) {
    return unexpected(bad(Errc::kInvalidArgument,
                          "device '" + d->name + "' is a " +
                              (d->kind == StorageKind::kNic ? "NIC port: carve vNICs"
                                                            : "crypto engine: carve crypto slots"),
                          why));
  }
  if (r.block_size < 512 || r.block_size > 65536 || !power_of_two(r.block_size)) {
    return unexpected(
        bad(Errc::kInvalidArgument, "block_size must be a power of two in [512, 65536]", why));
  }
  if (r.size_bytes == 0 || r.size_bytes % r.block_size != 0) {
    return unexpected(bad(Errc::kInvalidArgument,
                          "size must be a positive multiple of the block size", why));
  }
  if (r.queues == 0 || r.queues > 64) {
    return unexpected(bad(Errc::kOutOfRange, "queues must be in [1, 64]", why));
  }
  if (state_.functions.size() >= o_.max_functions) {
    return unexpected(bad(Errc::kResourceExhausted, "the appliance holds its maximum of " +
                                                        std::to_string(o_.max_functions) +
                                                        " functions",
                          why));
  }
  FunctionRecord f;
  f.name = r.name;
  f.id = next_id();
  f.cls = FunctionClass::kVolume;
  f.device = d->name;
  f.created_ms = now_();
  f.size_bytes = r.size_bytes;
  f.thin = r.thin;
  f.block_size = r.block_size;
  f.queues = r.queues;
  f.iops_limit = r.iops_limit;
  f.bps_limit = r.bps_limit;
  bool created_file = false;
  if (d->kind == StorageKind::kDirectory) {
    const std::uint64_t thick = committed(d->name, true) + (r.thin ? 0 : r.size_bytes);
    const std::uint64_t all = committed(d->name, false) + r.size_bytes;
    if (thick > d->capacity_bytes ||
        static_cast<double>(all) > static_cast<double>(d->capacity_bytes) * d->overcommit) {
      return unexpected(bad(Errc::kResourceExhausted,
                            "device '" + d->name + "' cannot take " +
                                std::to_string(r.size_bytes) + " more bytes (capacity " +
                                std::to_string(d->capacity_bytes) + ", committed " +
                                std::to_string(committed(d->name, false)) + ")",
                            why));
    }
    f.path = d->path + "/" + f.name + ".img";
    const int fd = ::open(f.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      const int e = errno;
      return unexpected(bad(e == EEXIST ? Errc::kAlreadyExists : Errc::kIo,
                            "cannot create " + f.path + ": " + std::strerror(e), why));
    }
    created_file = true;
    int rc = ::ftruncate(fd, static_cast<off_t>(f.size_bytes)) == 0 ? 0 : errno;
    if (rc == 0 && !f.thin) {
      rc = ::posix_fallocate(fd, 0, static_cast<off_t>(f.size_bytes));
    }
    ::close(fd);
    if (rc != 0) {
      ::unlink(f.path.c_str());
      return unexpected(bad(rc == ENOSPC ? Errc::kResourceExhausted : Errc::kIo,
                            "cannot size " + f.path + ": " + std::strerror(rc), why));
    }
  } else {
    if (r.thin) {
      return unexpected(bad(Errc::kInvalidArgument,
                            "device '" + d->name + "' is a block device: volumes on it are thick",
                            why));
    }
    auto at = place_extent(*d, r.size_bytes, why);
    if (!at) {
      return unexpected(at.error());
    }
    f.offset_bytes = *at;
    f.path = d->path;
  }
  const auto undo_file = [&] {
    if (created_file) {
      ::unlink(f.path.c_str());
    }
  };
  if (auto a = plane_.add_volume(f, *d, why); !a) {
    undo_file();
    return unexpected(a.error());
  }
  StateChange c;
  c.put_functions.push_back(f);
  c.next_function_id = f.id + 1;
  if (auto k = keep(c, why); !k) {
    plane_.remove_function(f.id);
    undo_file();
    return unexpected(k.error());
  }
  state_.functions.push_back(f);
  state_.next_function_id = f.id + 1;
  VIOPOOL_LOG_INFO("carved volume {} (function {}) of {} bytes on {}{}", f.name, f.id,
                   f.size_bytes, d->name, f.thin ? ", thin" : "");
  return f;
}

Result<FunctionRecord> PoolService::create_crypto(const CryptoRequest& r, std::string& why) {
  std::lock_guard lock(mu_);
  auto dev = check_new(r.name, r.device, why);
  if (!dev) {
    return unexpected(dev.error());
  }
  const StorageDevice* d = *dev;
  if (d->kind != StorageKind::kCrypto) {
    return unexpected(
        bad(Errc::kInvalidArgument, "device '" + d->name + "' is not a crypto engine", why));
  }
  if (r.queues == 0 || r.queues > 16) {
    return unexpected(bad(Errc::kOutOfRange, "queues must be in [1, 16]", why));
  }
  if (r.max_sessions == 0 || r.max_sessions > 65536) {
    return unexpected(bad(Errc::kOutOfRange, "max_sessions must be in [1, 65536]", why));
  }
  const auto used = static_cast<std::uint32_t>(std::count_if(
      state_.functions.begin(), state_.functions.end(),
      [&](const FunctionRecord& f) { return f.device == d->name; }));
  if (used >= d->max_slots || state_.functions.size() >= o_.max_functions) {
    return unexpected(bad(Errc::kResourceExhausted,
                          "device '" + d->name + "' has all its " + std::to_string(d->max_slots) +
                              " slots carved",
                          why));
  }
  FunctionRecord f;
  f.name = r.name;
  f.id = next_id();
  f.cls = FunctionClass::kCrypto;
  f.device = d->name;
  f.created_ms = now_();
  f.queues = r.queues;
  f.max_sessions = r.max_sessions;
  f.iops_limit = r.ops_limit;
  f.block_size = 512;
  if (auto a = plane_.add_crypto(f, *d, why); !a) {
    return unexpected(a.error());
  }
  return install(std::move(f), why);
}

Result<void> PoolService::add_to_plane(const FunctionRecord& f, const StorageDevice& d,
                                       std::string& why) {
  switch (f.cls) {
    case FunctionClass::kCrypto:
      return plane_.add_crypto(f, d, why);
    case FunctionClass::kVnic:
      return plane_.add_vnic(f, d, why);
    case FunctionClass::kVolume:
      break;
  }
  return plane_.add_volume(f, d, why);
}

Result<FunctionRecord> PoolService::install(FunctionRecord f, std::string& why) {
  StateChange c;
  c.put_functions.push_back(f);
  c.next_function_id = f.id + 1;
  if (auto k = keep(c, why); !k) {
    plane_.remove_function(f.id);
    return unexpected(k.error());
  }
  state_.functions.push_back(f);
  state_.next_function_id = f.id + 1;
  VIOPOOL_LOG_INFO("carved {} {} (function {}) on {}", to_string(f.cls), f.name, f.id, f.device);
  return f;
}

Result<FunctionRecord> PoolService::create_vnic(const VnicRequest& r, std::string& why) {
  std::lock_guard lock(mu_);
  auto dev = check_new(r.name, r.device, why);
  if (!dev) {
    return unexpected(dev.error());
  }
  const StorageDevice* d = *dev;
  if (d->kind != StorageKind::kNic) {
    return unexpected(
        bad(Errc::kInvalidArgument, "device '" + d->name + "' is not a NIC port", why));
  }
  if (r.queues == 0 || r.queues > 16) {
    return unexpected(bad(Errc::kOutOfRange, "queues must be in [1, 16]", why));
  }
  if (r.vlan > 4094) {
    return unexpected(bad(Errc::kOutOfRange, "vlan must be in [0, 4094] (0: untagged)", why));
  }
  if (r.mtu < 68 || r.mtu > d->mtu) {
    return unexpected(bad(Errc::kOutOfRange,
                          "mtu must be in [68, " + std::to_string(d->mtu) + "] (the port's)", why));
  }
  if (r.peak_mbps != 0 && r.peak_mbps < r.rate_mbps) {
    return unexpected(
        bad(Errc::kInvalidArgument, "peak_mbps must not be below rate_mbps", why));
  }
  const std::uint32_t id = next_id();
  std::string mac = r.mac;
  if (mac.empty()) {
    // Locally administered, unicast: 02:76:70 ("vp"), then the function id.
    char buf[18];
    std::snprintf(buf, sizeof buf, "02:76:70:%02x:%02x:%02x", (id >> 16) & 0xff, (id >> 8) & 0xff,
                  id & 0xff);
    mac = buf;
  }
  auto m = parse_mac(mac);
  if (!m || (m->bytes[0] & 1) != 0 ||
      std::all_of(m->bytes.begin(), m->bytes.begin() + 6, [](auto b) { return b == 0; })) {
    return unexpected(
        bad(Errc::kInvalidArgument, "mac: a unicast address xx:xx:xx:xx:xx:xx, not '" + mac + "'",
            why));
  }
  mac = mac_to_string(*m);
  std::uint64_t rate = r.rate_mbps;
  std::uint32_t used = 0;
  for (const auto& f : state_.functions) {
    if (f.device != d->name) {
      continue;
    }
    ++used;
    rate += f.rate_mbps;
    if (f.mac == mac && f.vlan == r.vlan) {
      return unexpected(bad(Errc::kAlreadyExists,
                            "vNIC '" + f.name + "' has MAC " + mac + " on VLAN " +
                                std::to_string(r.vlan) + " of '" + d->name + "' already",
                            why));
    }
  }
  if (used >= d->max_slots || state_.functions.size() >= o_.max_functions) {
    return unexpected(bad(Errc::kResourceExhausted,
                          "device '" + d->name + "' has all its " + std::to_string(d->max_slots) +
                              " vNICs carved",
                          why));
  }
  if (rate > d->link_mbps) {
    return unexpected(bad(Errc::kResourceExhausted,
                          "committed rates on '" + d->name + "' would reach " +
                              std::to_string(rate) + " Mb/s, above its " +
                              std::to_string(d->link_mbps) + " Mb/s",
                          why));
  }
  FunctionRecord f;
  f.name = r.name;
  f.id = id;
  f.cls = FunctionClass::kVnic;
  f.device = d->name;
  f.created_ms = now_();
  f.queues = r.queues;
  f.block_size = 512;
  f.mac = mac;
  f.vlan = r.vlan;
  f.mtu = r.mtu;
  f.rate_mbps = r.rate_mbps;
  f.peak_mbps = r.peak_mbps;
  if (auto a = plane_.add_vnic(f, *d, why); !a) {
    return unexpected(a.error());
  }
  return install(std::move(f), why);
}

Result<void> PoolService::delete_function(const std::string& name, std::string& why) {
  std::lock_guard lock(mu_);
  FunctionRecord* f = find_function(name);
  if (f == nullptr) {
    return unexpected(bad(Errc::kNotFound, "no function named '" + name + "'", why));
  }
  for (const auto& l : state_.leases) {
    if (l.function == name) {
      return unexpected(bad(Errc::kBusy,
                            "function '" + name + "' is leased to host '" + l.host + "' (lease " +
                                std::to_string(l.id) + "); release it first",
                            why));
    }
  }
  StateChange c;
  c.delete_functions.push_back(name);
  VIOPOOL_TRY(keep(c, why));
  plane_.remove_function(f->id);
  const StorageDevice* d = device(f->device);
  if (d != nullptr && d->kind == StorageKind::kDirectory) {
    ::unlink(f->path.c_str());
  }
  problems_.erase(name);
  VIOPOOL_LOG_INFO("deleted function {} (function {})", name, f->id);
  state_.functions.erase(state_.functions.begin() + (f - state_.functions.data()));
  return {};
}

json PoolService::function_json(const FunctionRecord& f) {
  json j = to_json(f);
  json holders = json::array();
  for (const auto& l : state_.leases) {
    if (l.function == f.name) {
      holders.push_back({{"lease", l.id}, {"host", l.host}, {"mode", to_string(l.mode)}});
    }
  }
  j["leases"] = holders;
  if (auto p = problems_.find(f.name); p != problems_.end()) {
    j["state"] = "unavailable";
    j["problem"] = p->second;
  } else {
    j["state"] = holders.empty() ? "free" : "leased";
    j["stats"] = plane_.function_stats(f.id);
  }
  return j;
}

json PoolService::functions() {
  std::lock_guard lock(mu_);
  json out = json::array();
  for (const auto& f : state_.functions) {
    out.push_back(function_json(f));
  }
  return {{"functions", out}};
}

Result<json> PoolService::function(const std::string& name, std::string& why) {
  std::lock_guard lock(mu_);
  const FunctionRecord* f = find_function(name);
  if (f == nullptr) {
    return unexpected(bad(Errc::kNotFound, "no function named '" + name + "'", why));
  }
  return function_json(*f);
}

json PoolService::lease_reply(const LeaseRecord& l) const {
  json j = to_json(l, KeyVisibility::kShown);
  for (const auto& f : state_.functions) {
    if (f.name == l.function) {
      j["function_id"] = f.id;
      j["class"] = to_string(f.cls);
      j["size"] = f.size_bytes;
      if (f.cls == FunctionClass::kVnic) {
        j["mac"] = f.mac;
        j["vlan"] = f.vlan;
        j["mtu"] = f.mtu;
      }
    }
  }
  j["fabric"] = o_.fabric_endpoint;
  j["uri"] = "pool://" + o_.fabric_endpoint + "/" + l.function;
  return j;
}

Result<json> PoolService::acquire(const LeaseRequest& r, std::string& why) {
  std::lock_guard lock(mu_);
  if (!valid_host(r.host)) {
    return unexpected(
        bad(Errc::kInvalidArgument, "host: 1 to 64 characters of [A-Za-z0-9_.:-]", why));
  }
  const std::int64_t ttl = ttl_of(r.ttl_ms, why);
  if (ttl < 0) {
    return unexpected(Error{Errc::kOutOfRange, 0, "pool: bad ttl"});
  }
  const auto holders = [&](const FunctionRecord& f, bool& exclusive) {
    std::uint32_t n = 0;
    exclusive = false;
    for (const auto& l : state_.leases) {
      if (l.function == f.name) {
        ++n;
        exclusive = exclusive || l.mode == LeaseMode::kExclusive;
      }
    }
    return n;
  };
  FunctionRecord* pick = nullptr;
  StateChange c;
  std::vector<LeaseRecord> replaced;
  if (!r.function.empty()) {
    pick = find_function(r.function);
    if (pick == nullptr) {
      return unexpected(bad(Errc::kNotFound, "no function named '" + r.function + "'", why));
    }
    if (auto p = problems_.find(pick->name); p != problems_.end()) {
      return unexpected(bad(Errc::kBusy, "function '" + pick->name + "' is unavailable: " +
                                             p->second,
                            why));
    }
    // A host that asks again for what it holds (it restarted and lost its
    // lease) gets a new lease in place of its old one.
    for (const auto& l : state_.leases) {
      if (l.function == pick->name && l.host == r.host && l.mode == r.mode) {
        replaced.push_back(l);
      }
    }
    bool exclusive = false;
    const std::uint32_t n = holders(*pick, exclusive) - static_cast<std::uint32_t>(replaced.size());
    if (n > 0 && (r.mode == LeaseMode::kExclusive || exclusive)) {
      std::string who;
      for (const auto& l : state_.leases) {
        if (l.function == pick->name && l.host != r.host) {
          who = l.host;
        }
      }
      return unexpected(bad(Errc::kBusy,
                            "function '" + pick->name + "' is leased " +
                                (exclusive ? "exclusively" : "shared") + " by host '" + who + "'",
                            why));
    }
    if (n >= o_.max_leases_per_function) {
      return unexpected(bad(Errc::kResourceExhausted,
                            "function '" + pick->name + "' has its maximum of " +
                                std::to_string(o_.max_leases_per_function) + " holders",
                            why));
    }
  } else {
    for (auto& f : state_.functions) {
      bool exclusive = false;
      const std::uint32_t n = holders(f, exclusive);
      const bool free = r.mode == LeaseMode::kExclusive
                            ? n == 0
                            : !exclusive && n < o_.max_leases_per_function;
      if (f.cls != r.cls || f.size_bytes < r.min_size_bytes || !free ||
          problems_.contains(f.name)) {
        continue;
      }
      if (pick == nullptr || f.size_bytes < pick->size_bytes) {
        pick = &f;
      }
    }
    if (pick == nullptr) {
      return unexpected(bad(Errc::kResourceExhausted,
                            std::string("no free ") + to_string(r.cls) + " of at least " +
                                std::to_string(r.min_size_bytes) + " bytes",
                            why));
    }
  }
  LeaseRecord l;
  l.id = state_.next_lease_id;
  l.function = pick->name;
  l.host = r.host;
  l.mode = r.mode;
  l.key = new_key();
  l.ttl_ms = ttl;
  l.created_ms = now_();
  l.expires_ms = l.created_ms + ttl;
  c.put_leases.push_back(l);
  c.next_lease_id = l.id + 1;
  for (const auto& old : replaced) {
    c.delete_leases.push_back(old.id);
  }
  VIOPOOL_TRY(keep(c, why));
  for (const auto& old : replaced) {
    plane_.revoke(pick->id, old.id);
    std::erase_if(state_.leases, [&](const LeaseRecord& x) { return x.id == old.id; });
    VIOPOOL_LOG_INFO("lease {} of host {} replaced by a new one", old.id, old.host);
  }
  state_.next_lease_id = l.id + 1;
  state_.leases.push_back(l);
  plane_.grant(pick->id, l.id, l.key);
  VIOPOOL_LOG_INFO("lease {}: {} {} to host {} for {} ms", l.id, to_string(l.mode), l.function,
                   l.host, l.ttl_ms);
  return lease_reply(l);
}

Result<json> PoolService::renew(std::uint64_t lease_id, const std::string& host,
                                std::string& why) {
  std::lock_guard lock(mu_);
  StateChange c;
  const std::int64_t t = now_();
  for (const auto& l : state_.leases) {
    if (lease_id != 0 ? l.id == lease_id && (host.empty() || l.host == host) : l.host == host) {
      LeaseRecord n = l;
      n.expires_ms = t + l.ttl_ms;
      c.put_leases.push_back(n);
    }
  }
  if (c.put_leases.empty()) {
    return unexpected(bad(Errc::kNotFound,
                          lease_id != 0 ? "no lease " + std::to_string(lease_id) +
                                              (host.empty() ? "" : " held by host '" + host + "'")
                                        : "host '" + host + "' holds no lease",
                          why));
  }
  VIOPOOL_TRY(keep(c, why));
  json out = json::array();
  for (const auto& n : c.put_leases) {
    *find_lease(n.id) = n;
    out.push_back(to_json(n, KeyVisibility::kHidden));
  }
  return json{{"leases", out}};
}

Result<void> PoolService::release(std::uint64_t lease_id, const std::string& host,
                                  std::string& why) {
  std::lock_guard lock(mu_);
  LeaseRecord* l = find_lease(lease_id);
  if (l == nullptr || (!host.empty() && l->host != host)) {
    return unexpected(bad(Errc::kNotFound, "no lease " + std::to_string(lease_id), why));
  }
  StateChange c;
  c.delete_leases.push_back(lease_id);
  VIOPOOL_TRY(keep(c, why));
  if (const FunctionRecord* f = find_function(l->function); f != nullptr) {
    plane_.revoke(f->id, lease_id);
  }
  VIOPOOL_LOG_INFO("lease {} of host {} on {} released", lease_id, l->host, l->function);
  std::erase_if(state_.leases, [&](const LeaseRecord& x) { return x.id == lease_id; });
  return {};
}

Result<json> PoolService::reassign(std::uint64_t lease_id, const std::string& host,
                                   std::string& why) {
  std::lock_guard lock(mu_);
  if (!valid_host(host)) {
    return unexpected(
        bad(Errc::kInvalidArgument, "host: 1 to 64 characters of [A-Za-z0-9_.:-]", why));
  }
  LeaseRecord* l = find_lease(lease_id);
  if (l == nullptr) {
    return unexpected(bad(Errc::kNotFound, "no lease " + std::to_string(lease_id), why));
  }
  LeaseRecord n = *l;
  n.host = host;
  n.key = new_key();
  n.expires_ms = now_() + n.ttl_ms;
  StateChange c;
  c.put_leases.push_back(n);
  VIOPOOL_TRY(keep(c, why));
  if (const FunctionRecord* f = find_function(n.function); f != nullptr) {
    plane_.revoke(f->id, n.id);
    plane_.grant(f->id, n.id, n.key);
  }
  VIOPOOL_LOG_INFO("lease {} on {} moved from host {} to host {}", n.id, n.function, l->host,
                   host);
  *l = n;
  return lease_reply(n);
}

json PoolService::leases(const std::string& host_filter) {
  std::lock_guard lock(mu_);
  json out = json::array();
  const std::int64_t t = now_();
  for (const auto& l : state_.leases) {
    if (host_filter.empty() || l.host == host_filter) {
      json j = to_json(l, KeyVisibility::kHidden);
      j["expires_in_ms"] = std::max<std::int64_t>(l.expires_ms - t, 0);
      out.push_back(std::move(j));
    }
  }
  return {{"leases", out}};
}

std::size_t PoolService::expire() {
  std::lock_guard lock(mu_);
  const std::int64_t t = now_();
  StateChange c;
  for (const auto& l : state_.leases) {
    if (l.expires_ms <= t) {
      c.delete_leases.push_back(l.id);
    }
  }
  if (c.delete_leases.empty()) {
    return 0;
  }
  std::string why;
  if (auto r = keep(c, why); !r) {
    VIOPOOL_LOG_ERROR("cannot expire leases: {}", why);
    return 0;
  }
  for (auto id : c.delete_leases) {
    const LeaseRecord* l = find_lease(id);
    if (const FunctionRecord* f = find_function(l->function); f != nullptr) {
      plane_.revoke(f->id, id);
    }
    VIOPOOL_LOG_WARN("lease {} of host {} on {} expired", id, l->host, l->function);
    std::erase_if(state_.leases, [&](const LeaseRecord& x) { return x.id == id; });
  }
  return c.delete_leases.size();
}

}  // namespace viopool::pool
