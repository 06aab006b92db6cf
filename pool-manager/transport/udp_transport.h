// UdpTransport: fabric frames in UDP datagrams, bursts through sendmmsg and
// recvmmsg on one non-blocking socket (IPv4 or IPv6).
#pragma once

#include <deque>
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
  // Frames after the first of datagrams already received, for the next calls.
  struct Stashed {
    std::vector<std::byte> bytes;
    PeerAddress peer;
  };
  std::deque<Stashed> stash_;
  // Every frame of a datagram into the stash (the tail that does not parse
  // as one more).
  void split_into_stash(std::span<const std::byte> datagram, const PeerAddress& peer);
  // Stashed frames into frames[out...]; the new count.
  std::uint32_t take_stash(std::span<InFrame> frames, std::uint32_t out) noexcept;
};

}  // namespace viopool::pool
