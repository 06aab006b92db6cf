// MAC addresses as fabric peers (EthdevTransport) and as vNIC identities:
// parsing and printing. No DPDK.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "pool-manager/transport/transport.h"
#include "vhost-backend/base/result.h"

namespace viopool::pool {

inline constexpr std::uint8_t kMacBytes = 6;
inline constexpr std::uint32_t kEthHeaderBytes = 14;  // dst MAC, src MAC, EtherType; no VLAN

// A MAC as a PeerAddress (len 6), the address of an EthdevTransport peer.
PeerAddress mac_address(std::span<const std::uint8_t, kMacBytes> mac) noexcept;
// "02:00:5e:10:00:01" (hex pairs, colon-separated, either case).
// kInvalidArgument if malformed.
Result<PeerAddress> parse_mac(const std::string& text);
// Lower-case "xx:xx:xx:xx:xx:xx"; "?" if `a` is not a MAC (len != 6). Not
// named to_string: udp_transport.h has that overload for socket addresses.
std::string mac_to_string(const PeerAddress& a);

}  // namespace viopool::pool
