// The appliance's records: storage devices of the inventory, the functions
// carved from them and the leases hosts hold on those functions. Plain data,
// no DPDK, no I/O: the PoolService decides, a StateStore keeps them, the
// DataPlane serves them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pool-manager/protocol/frame_auth.h"
#include "vhost-backend/base/result.h"

namespace viopool::pool {

// What functions are carved from (the appliance config's "inventory").
enum class StorageKind : std::uint8_t {
  kDirectory,  // a directory: one image file per volume, thin (sparse) or thick
  kBlock,      // a block device or a large file: one extent per volume, thick only
  kCrypto,     // a crypto engine (a DPDK cryptodev driver): one engine instance per slot
  kNic,        // a NIC port (DPDK devargs in `path`): vNICs switched by MAC and VLAN
};

struct StorageDevice {
  std::string name;
  StorageKind kind = StorageKind::kDirectory;
  std::string path;
  std::uint64_t capacity_bytes = 0;  // directory: from the config; block: the device's size
  // Directory only: thin volumes may promise up to capacity x overcommit in all.
  double overcommit = 1.0;
  bool direct = true;  // O_DIRECT for the volumes' I/O when aligned
  // Crypto engines: the DPDK driver each slot gets an instance of
  // ("crypto_openssl", "crypto_aesni_mb"), and how many slots at most.
  std::string driver;
  std::uint32_t max_slots = 0;  // crypto slots, or vNICs on a NIC port
  // NIC ports: the committed rates of its vNICs add up to at most this, and
  // no vNIC's MTU exceeds the port's.
  std::uint32_t link_mbps = 10000;
  std::uint32_t mtu = 1500;
  // NIC ports switched by Open vSwitch instead of the appliance's own switch:
  // the bridge, its database for ovs-vsctl, and the vhost-user socket dir.
  std::string ovs_bridge;
  std::string ovs_db;
  std::string ovs_socket_dir;
  // Offload the bridge's rules to the NIC port (rte_flow), with OVS_RUNDIR
  // for ovs-ofctl to find the bridge's management socket.
  bool ovs_offload = false;
  std::string ovs_rundir;
};

enum class FunctionClass : std::uint8_t { kVolume, kCrypto, kVnic };
enum class LeaseMode : std::uint8_t { kExclusive, kShared };

const char* to_string(StorageKind k) noexcept;
const char* to_string(FunctionClass c) noexcept;
const char* to_string(LeaseMode m) noexcept;

// A carved function. The id is what fabric frames name (function id).
struct FunctionRecord {
  std::string name;  // 1-32 of [A-Za-z0-9_.-], unique on the appliance
  std::uint32_t id = 0;
  FunctionClass cls = FunctionClass::kVolume;
  std::string device;  // the StorageDevice it was carved from
  std::int64_t created_ms = 0;
  // Volumes.
  std::uint64_t size_bytes = 0;
  bool thin = false;
  std::uint32_t block_size = 512;
  std::uint16_t queues = 4;
  std::uint64_t offset_bytes = 0;  // block devices: where the extent starts
  std::string path;                // directory: the image file; block: the device
  std::uint64_t iops_limit = 0;    // 0: none (crypto: ops per second)
  std::uint64_t bps_limit = 0;     // bytes per second, 0: none
  // Crypto slots.
  std::uint32_t max_sessions = 0;
  // vNICs.
  std::string mac;            // xx:xx:xx:xx:xx:xx, unicast
  std::uint16_t vlan = 0;     // 0: untagged
  std::uint32_t mtu = 1500;
  std::uint32_t rate_mbps = 0;  // committed, 0: none
  std::uint32_t peak_mbps = 0;  // 0: none
};

struct LeaseRecord {
  std::uint64_t id = 0;
  std::string function;  // FunctionRecord::name
  std::string host;      // the holder's host id
  LeaseMode mode = LeaseMode::kExclusive;
  AuthKey key{};  // authenticates the holder's fabric frames
  std::int64_t ttl_ms = 0;
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;  // wall clock (ms since the epoch)
};

// Everything a StateStore keeps.
struct PoolState {
  std::vector<FunctionRecord> functions;
  std::vector<LeaseRecord> leases;
  std::uint32_t next_function_id = 1;
  std::uint64_t next_lease_id = 1;
};

// Stable JSON forms (the state store's rows, the API's objects). The lease's
// key is written only with KeyVisibility::kShown.
enum class KeyVisibility : std::uint8_t { kHidden, kShown };
nlohmann::json to_json(const FunctionRecord& f);
nlohmann::json to_json(const LeaseRecord& l, KeyVisibility key);
Result<FunctionRecord> function_from_json(const nlohmann::json& j, std::string& why);
Result<LeaseRecord> lease_from_json(const nlohmann::json& j, std::string& why);
std::string key_to_hex(const AuthKey& k);

}  // namespace viopool::pool
