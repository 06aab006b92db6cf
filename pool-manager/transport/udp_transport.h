// UdpTransport: fabric frames in UDP datagrams, bursts through sendmmsg and
// recvmmsg on one non-blocking socket (IPv4 or IPv6); runs of equal datagrams
// to one peer leave as one segmented send (UDP_SEGMENT) and arrive as one
// buffer (UDP_GRO), split again here (docs/fabric.md "Transports").
#pragma once

#include <algorithm>
#include <memory>
#include <vector>
#include <string>

#include "pool-manager/transport/transport.h"
#include "vhost-backend/base/result.h"

namespace viopool::pool {

// "127.0.0.1:7000", "[::1]:7000". kInvalidArgument if malformed.
Result<PeerAddress> parse_udp_address(const std::string& text);
std::string to_string(const PeerAddress& a);
bool is_ipv6(const PeerAddress& a) noexcept;

struct UdpTransportOptions {
  std::string bind = "0.0.0.0:0";  // local address; port 0 picks one
  std::uint32_t mtu = 1472;        // 1500 minus IPv4 and UDP headers
  int socket_buffer = 4 << 20;     // SO_RCVBUF / SO_SNDBUF
  // Ask the kernel to coalesce a peer's segmented sends (UDP_GRO): 1 MiB of
  // receive slots instead of 64 of one MTU.
  bool coalesce = true;
};

// Frames marked for bundling leave back to back in one datagram (docs/fabric.md
// "Transports"); every datagram received is split into its frames by their
// `length` fields.
class UdpTransport final : public Transport {
 public:
  static Result<std::unique_ptr<UdpTransport>> open(const UdpTransportOptions& o);
  ~UdpTransport() override;

  const char* kind() const noexcept override { return "udp"; }
  std::uint32_t mtu() const noexcept override { return mtu_; }
  std::uint32_t send_burst(std::span<const OutFrame> frames) noexcept override;
  std::uint32_t recv_burst(std::span<InFrame> frames) noexcept override;
  int wait_fd() const noexcept override { return fd_; }
  const TransportStats& stats() const noexcept override { return stats_; }
  // The bound address (with the port the kernel picked).
  const PeerAddress& local() const noexcept { return local_; }

 private:
  UdpTransport() = default;
  int fd_ = -1;
  std::uint32_t mtu_ = 0;
  bool gso_ = true;  // UDP_SEGMENT until the kernel refuses it
  PeerAddress local_;
  TransportStats stats_;
  bool gro_ = false;  // UDP_GRO: coalesced datagrams arrive as one buffer
  // Received datagrams (or coalesced runs of them, `segment` bytes each but
  // the last) not yet handed out; frames are taken from rx_slot_ at rx_off_.
  struct RxSlot {
    const std::byte* data = nullptr;
    std::uint32_t len = 0;
    std::uint32_t segment = 0;
    PeerAddress peer;
    // End of its first datagram.
    std::uint32_t first_end() const noexcept { return std::min(segment, len); }
  };
  std::unique_ptr<std::byte[]> rx_area_;
  std::size_t rx_slot_bytes_ = 0;
  std::vector<RxSlot> rx_slots_;
  std::size_t rx_filled_ = 0;
  std::size_t rx_slot_ = 0;
  std::uint32_t rx_off_ = 0;
  std::uint32_t rx_dgram_end_ = 0;  // end of the datagram rx_off_ is in
  // One recvmmsg into the slots; what it returned (datagrams, or -1). The
  // usable ones are counted in rx_filled_.
  int refill() noexcept;
};

}  // namespace viopool::pool
