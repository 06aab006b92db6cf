// Declarative configuration of viopool-host: the JSON file given with --config
// and the bodies of device_add API calls share these types and parsers. Pure
// C++ (no DPDK), so every rule about what a valid config is is unit-tested.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "vhost-backend/base/result.h"

namespace viopool::control {

enum class DeviceType : std::uint8_t { kNet, kBlk, kCrypto };
enum class SocketMode : std::uint8_t { kServer, kClient };
enum class NetBackendKind : std::uint8_t { kLoopback, kNull, kEthdev, kPool };
enum class BlkBackendKind : std::uint8_t { kUring, kMalloc, kNull, kPool };
enum class DirectIoMode : std::uint8_t { kAuto, kOn, kOff };

const char* to_string(DeviceType t) noexcept;
const char* to_string(SocketMode m) noexcept;
const char* to_string(NetBackendKind k) noexcept;
const char* to_string(BlkBackendKind k) noexcept;
const char* to_string(DirectIoMode m) noexcept;

struct NetBackendConfig {
  NetBackendKind kind = NetBackendKind::kLoopback;
  std::string devargs;        // kEthdev: DPDK devargs, e.g. "net_tap0,iface=vp0"
  std::uint16_t rx_desc = 1024;  // kEthdev: descriptors per queue
  std::uint16_t tx_desc = 1024;
  // kPool: a vNIC leased from a pool appliance's control API at device_add,
  // by name (vnic) or any free one.
  std::string appliance;         // the control API, ADDRESS:PORT
  std::string vnic;              // empty: any free vNIC
  std::uint32_t mtu = 0;         // largest fabric datagram; 0: from the vNIC's MTU
  std::int64_t lease_ttl_ms = 0;  // 0: the appliance's default
};

struct BlkBackendConfig {
  BlkBackendKind kind = BlkBackendKind::kUring;
  std::string path;              // kUring: file or block device
  std::uint64_t size_bytes = 0;  // kMalloc/kNull: capacity (multiple of the block size)
  std::uint32_t block_size = 0;  // 0: detect (uring) or 512
  DirectIoMode direct = DirectIoMode::kAuto;  // kUring: O_DIRECT policy
  std::uint32_t queue_depth = 128;            // per virtqueue, 1..4096
  // kPool: a volume on a pool appliance, reached over the fabric. Either
  // leased from the appliance's control API at device_add (appliance, and
  // volume or lease_size), or named statically (uri, function_id, key).
  std::string appliance;            // the control API, ADDRESS:PORT
  std::string volume;               // lease this volume by name
  std::uint64_t lease_size = 0;     // or any free volume of at least this many bytes
  bool lease_shared = false;        // a shared lease (several hosts, e.g. read-only images)
  std::int64_t lease_ttl_ms = 0;    // 0: the appliance's default
  std::string uri;                // pool://ADDRESS:PORT/VOLUME
  std::uint32_t function_id = 0;  // the volume's function on the appliance
  std::string key;                // the function's fabric key, 32 hex digits (never listed)
  std::uint32_t mtu = 1472;       // fabric frame bytes per datagram
  std::uint32_t timeout_ms = 30000;  // a request not completed by then fails (EIO)
};

struct CryptoBackendConfig {
  // kind "cryptodev": DPDK devargs of the engine, e.g. "crypto_aesni_mb0" or
  // "crypto_openssl1,max_nb_queue_pairs=4". kind "pool": a crypto slot leased
  // from an appliance (appliance, slot).
  bool pool = false;
  std::string devargs;
  std::string appliance;  // pool: the appliance's API, ADDRESS:PORT
  std::string slot;       // pool: the slot's name
  std::uint32_t mtu = 1472;
  std::uint32_t timeout_ms = 5000;  // pool: an op not answered by then completes with ERR
  std::int64_t lease_ttl_ms = 0;
  std::uint32_t max_sessions = 256;  // per device: one VM cannot exhaust the engine
  std::uint32_t queue_depth = 256;   // ops in flight per data queue, 16..4096
  // cryptodev: DPDK's synchronous CPU crypto API for what it can carry, on
  // engines that have it (false: every op through the engine's queue pairs).
  bool cpu_crypto = true;
};

struct DeviceConfig {
  std::string name;           // unique per daemon; [A-Za-z0-9_.-], ≤ 32 chars
  DeviceType type = DeviceType::kNet;
  std::string socket;         // vhost-user unix socket path
  SocketMode mode = SocketMode::kServer;
  std::uint16_t queue_pairs = 1;  // 1..kMaxQueuePairs
  bool mrg_rxbuf = true;      // offer VIRTIO_NET_F_MRG_RXBUF
  bool packed_ring = true;    // offer VIRTIO_F_RING_PACKED
  int lcore = -1;             // worker lcore polling this device; -1: least loaded
  NetBackendConfig net;
  // blk
  std::uint16_t queues = 1;   // request virtqueues, 1..kMaxQueuePairs
  bool read_only = false;     // VIRTIO_BLK_F_RO; the backend is opened read-only
  std::string serial;         // GET_ID answer, ≤ 20 bytes (default: the name)
  BlkBackendConfig blk;
  // crypto (uses `queues` for the data queues and packed_ring)
  CryptoBackendConfig crypto;
};

struct HostConfig {
  std::string control_socket = "/run/viopool/host.sock";
  std::string host_id;  // names this host in pool leases; default: the host name
  std::string log_level = "info";
  std::vector<std::string> eal_args;  // passed to rte_eal_init after our defaults
  std::uint32_t mbufs = 16383;        // mbuf pool size per NUMA socket
  std::uint32_t idle_sleep_us = 1000; // longest sleep of an idle poller with timer-only sources
  bool busy_poll = false;             // worker lcores never sleep (dedicated cores)
  std::vector<DeviceConfig> devices;
};

inline constexpr std::uint16_t kMaxQueuePairs = 16;

// Parse and validate. On failure `why` says what is wrong and where
// ("devices[1].backend.kind: unknown value 'foo'"); unknown keys are errors.
Result<DeviceConfig> parse_device_config(const nlohmann::json& j, std::string& why);
Result<HostConfig> parse_host_config(const nlohmann::json& j, std::string& why);
// Reads and parses a file; errors include the path and the JSON parse position.
Result<HostConfig> load_host_config(const std::string& path, std::string& why);

nlohmann::json to_json(const DeviceConfig& d);

}  // namespace viopool::control
