// RemoteNet: a NetBackend whose port is a vNIC on a pool appliance, reached
// over the fabric (docs/fabric.md "vNICs"). Each queue pair has its own link
// (a UDP socket and a channel opened with HELLO); the guest's frames leave in
// PACKETS frames, many to a datagram, and the appliance's arrive the same
// way. Frames are never retransmitted: Ethernet is lossy, and a late frame
// is worth less than a lost one. A link the appliance refuses (NAK, GOODBYE)
// or that stays silent is replaced; while a queue has no link its frames
// are dropped, as on a NIC whose link is down.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/protocol/frame_auth.h"
#include "vhost-backend/devices/net/net_backend.h"

struct rte_mempool;

namespace viopool::pool {

struct RemoteNetOptions {
  std::string appliance;  // ip:port of the appliance's fabric (UDP)
  std::string vnic;       // the name the function must carry
  std::uint32_t function_id = 0;
  AuthKey key{};
  std::uint64_t lease_id = 0;
  std::uint32_t host_id = 0;
  // Largest datagram we receive; 0: the vNIC's MTU plus headers (IP
  // fragments what the path does not carry).
  std::uint32_t mtu = 0;
  rte_mempool* pool = nullptr;  // mbufs for frames to the guest
  std::chrono::milliseconds connect_timeout{5000};
};

// "pool://ADDRESS:PORT/NAME" → appliance and vNIC name.
Result<void> parse_net_pool_uri(const std::string& uri, RemoteNetOptions& o);

// Connects once, reads the vNIC's config space (MAC, VLAN, MTU, queues) into
// `info` and checks the name. `why` says what failed.
Result<std::unique_ptr<net::NetBackend>> make_remote_net(const RemoteNetOptions& o,
                                                         VnicInfo& info, std::string& why);

}  // namespace viopool::pool
