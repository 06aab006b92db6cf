// PoolService: the appliance's control logic (docs/api.md "Appliance"). It
// owns the inventory (storage devices from the config), carves volumes from
// them, grants leases on functions to hosts, renews them on heartbeat,
// expires them when a host goes silent, and moves them to another host. Every
// change is kept in a StateStore before it is acknowledged and applied to the
// DataPlane (what serves the functions' queues over the fabric), so a restart
// finds the same carvings and leases. DPDK-free and clock-injected, so unit
// tests run it directly. Thread-safe: one mutex serialises the operations.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pool-manager/pool/pool_model.h"
#include "pool-manager/pool/state_store.h"

namespace viopool::pool {

// What serves functions over the fabric (VolumeTarget in the appliance).
class DataPlane {
 public:
  virtual ~DataPlane() = default;
  // Starts serving a volume (no host can reach it until a grant); `why` says
  // what failed.
  virtual Result<void> add_volume(const FunctionRecord& f, const StorageDevice& d,
                                  std::string& why) = 0;
  // Starts serving a crypto slot: an instance of the device's engine.
  virtual Result<void> add_crypto(const FunctionRecord& f, const StorageDevice& d,
                                  std::string& why) = 0;
  // Starts serving a vNIC on the device's NIC port.
  virtual Result<void> add_vnic(const FunctionRecord& f, const StorageDevice& d,
                                std::string& why) = 0;
  // What the device is, as the data plane found it (a NIC port's driver,
  // MAC, link and rte_flow support); may be empty.
  virtual nlohmann::json device_info(const StorageDevice& d) = 0;
  // Stops serving: open links are closed (GOODBYE), in-flight I/O drains.
  virtual void remove_function(std::uint32_t function_id) = 0;
  // Frames of lease `lease_id` on the function verify with `key` from now on.
  virtual void grant(std::uint32_t function_id, std::uint64_t lease_id, const AuthKey& key) = 0;
  // The lease's links close and its frames stop verifying (fencing).
  virtual void revoke(std::uint32_t function_id, std::uint64_t lease_id) = 0;
  // Per-function counters for the API (an object; may be empty).
  virtual nlohmann::json function_stats(std::uint32_t function_id) = 0;
};

struct PoolServiceOptions {
  std::vector<StorageDevice> devices;
  // What hosts are told to reach the fabric at ("ADDRESS:PORT").
  std::string fabric_endpoint;
  std::int64_t default_ttl_ms = 15000;
  std::int64_t min_ttl_ms = 1000;
  std::int64_t max_ttl_ms = 3600000;
  std::uint32_t max_functions = 4096;
  std::uint32_t max_leases_per_function = 64;  // shared holders
  std::uint64_t extent_alignment = 1 << 20;    // block devices
  // Names and function ids taken by volumes the config serves statically.
  std::vector<std::string> reserved_names;
  std::vector<std::uint32_t> reserved_ids;
};

// What a caller asks for when carving a volume.
struct VolumeRequest {
  std::string name;
  std::string device;
  std::uint64_t size_bytes = 0;
  bool thin = false;
  std::uint32_t block_size = 512;
  std::uint16_t queues = 4;
  std::uint64_t iops_limit = 0;
  std::uint64_t bps_limit = 0;
};

// What a caller asks for when carving a crypto slot.
struct CryptoRequest {
  std::string name;
  std::string device;
  std::uint16_t queues = 2;
  std::uint32_t max_sessions = 64;
  std::uint64_t ops_limit = 0;  // ops per second, 0: none
};

// What a caller asks for when carving a vNIC.
struct VnicRequest {
  std::string name;
  std::string device;
  std::string mac;  // empty: one is made (locally administered, from the function id)
  std::uint16_t vlan = 0;
  std::uint32_t mtu = 1500;
  std::uint16_t queues = 1;
  std::uint32_t rate_mbps = 0;
  std::uint32_t peak_mbps = 0;
};

// A lease request: a function by name, or any free one of a class with at
// least `min_size_bytes`.
struct LeaseRequest {
  std::string host;
  std::string function;  // empty: pick by class and size
  FunctionClass cls = FunctionClass::kVolume;
  std::uint64_t min_size_bytes = 0;
  LeaseMode mode = LeaseMode::kExclusive;
  std::int64_t ttl_ms = 0;  // 0: the default
};

class PoolService {
 public:
  using NowMs = std::function<std::int64_t()>;  // wall clock, ms since the epoch

  // Loads the stored state, checks it against the inventory, gives every
  // lease one TTL from now to be renewed (its holder could not renew while
  // the appliance was down), and hands them to the data plane. A function
  // whose device is gone or whose backing cannot be opened is kept and
  // listed with its problem, never deleted.
  static Result<std::unique_ptr<PoolService>> open(PoolServiceOptions o, StateStore& store,
                                                   DataPlane& plane, NowMs now,
                                                   std::string& why);

  // Every operation: kInvalidArgument/kOutOfRange (bad input), kNotFound,
  // kAlreadyExists/kBusy (conflicts), kResourceExhausted (capacity) with a
  // message in `why`; a failed operation changes nothing.
  nlohmann::json inventory();
  Result<FunctionRecord> create_volume(const VolumeRequest& r, std::string& why);
  Result<FunctionRecord> create_crypto(const CryptoRequest& r, std::string& why);
  Result<FunctionRecord> create_vnic(const VnicRequest& r, std::string& why);
  Result<void> delete_function(const std::string& name, std::string& why);
  nlohmann::json functions();
  Result<nlohmann::json> function(const std::string& name, std::string& why);
  // The new lease with its key and where to reach the function.
  Result<nlohmann::json> acquire(const LeaseRequest& r, std::string& why);
  // Renews one lease, or (lease_id 0) every lease of `host`; the renewed leases.
  Result<nlohmann::json> renew(std::uint64_t lease_id, const std::string& host, std::string& why);
  // With `host`: only if that host holds the lease (a host whose lease was
  // moved away cannot release its successor's).
  Result<void> release(std::uint64_t lease_id, const std::string& host, std::string& why);
  // Moves a lease to another host with a new key: the old holder is fenced.
  Result<nlohmann::json> reassign(std::uint64_t lease_id, const std::string& host,
                                  std::string& why);
  nlohmann::json leases(const std::string& host_filter);
  // Frees every lease past its expiry; how many.
  std::size_t expire();

 private:
  PoolService(PoolServiceOptions o, StateStore& store, DataPlane& plane, NowMs now);
  const StorageDevice* device(const std::string& name) const;
  FunctionRecord* find_function(const std::string& name);
  LeaseRecord* find_lease(std::uint64_t id);
  nlohmann::json lease_reply(const LeaseRecord& l) const;
  nlohmann::json function_json(const FunctionRecord& f);
  Result<std::uint64_t> place_extent(const StorageDevice& d, std::uint64_t size,
                                     std::string& why) const;
  std::uint64_t committed(const std::string& device, bool thick_only) const;
  Result<void> keep(const StateChange& c, std::string& why);
  // Carving: the name is valid and free, the device known.
  Result<const StorageDevice*> check_new(const std::string& name, const std::string& device_name,
                                         std::string& why);
  std::uint32_t next_id() const;  // the next function id no static volume holds
  AuthKey new_key();
  std::int64_t ttl_of(std::int64_t asked, std::string& why) const;
  Result<void> add_to_plane(const FunctionRecord& f, const StorageDevice& d, std::string& why);
  // Keeps a new function and records it; the plane serves it already.
  Result<FunctionRecord> install(FunctionRecord f, std::string& why);

  PoolServiceOptions o_;
  StateStore& store_;
  DataPlane& plane_;
  NowMs now_;
  std::mutex mu_;
  PoolState state_;
  std::map<std::string, std::string> problems_;  // function name -> why it is not served
};

}  // namespace viopool::pool
