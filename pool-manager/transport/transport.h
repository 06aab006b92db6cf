// Transport: how fabric frames (docs/fabric.md) travel, behind one burst
// interface as DPDK's ethdev has it — send and receive bursts that return
// counts, never block. Implementations: UdpTransport (sendmmsg/recvmmsg),
// LoopbackTransport (in process, with fault injection for tests) and
// EthdevTransport (raw Ethernet, EtherType 0x88B5, over a DPDK port).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

namespace viopool::pool {

// Where a frame comes from or goes to: a socket address (UDP) or a MAC
// (Ethernet), opaque to the fabric above. Compared bytewise.
struct PeerAddress {
  std::array<std::uint8_t, 28> bytes{};
  std::uint8_t len = 0;
  bool operator==(const PeerAddress& o) const noexcept {
    return len == o.len && std::memcmp(bytes.data(), o.bytes.data(), len) == 0;
  }
};

struct OutFrame {
  std::span<const std::byte> data;
  PeerAddress peer;
  // > 0: the frame may share one datagram with the frames next to it in the
  // burst (same peer, each allowing it) as long as the datagram stays within
  // this many bytes (what the peer receives). 0: a datagram of its own.
  std::uint32_t bundle = 0;
};

struct InFrame {
  std::span<std::byte> buf;  // the caller's buffer (at least mtu() bytes)
  std::uint32_t len = 0;     // bytes received
  PeerAddress peer;
};

struct TransportStats {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t send_errors = 0;  // refused by the network (not "try later")
  std::uint64_t truncated = 0;    // frames longer than the buffer: dropped
  std::uint64_t segmented = 0;    // UDP: sends of several equal datagrams the kernel split
  std::uint64_t gso_refused = 0;  // UDP: the kernel refused segmentation (then never asked)
  std::uint64_t coalesced = 0;    // UDP: receives of several datagrams at once (UDP_GRO)
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* kind() const noexcept = 0;
  // Largest frame this transport carries.
  virtual std::uint32_t mtu() const noexcept = 0;
  // Sends up to frames.size(); returns how many left (the rest: try later).
  // A transport may carry several frames in one datagram (OutFrame::bundle);
  // recv_burst then hands them out one by one.
  virtual std::uint32_t send_burst(std::span<const OutFrame> frames) noexcept = 0;
  // Fills up to frames.size() buffers; returns how many frames arrived. A
  // burst shorter than asked means nothing more was there: the caller may
  // then sleep on wait_fd() without leaving frames behind in the transport.
  virtual std::uint32_t recv_burst(std::span<InFrame> frames) noexcept = 0;
  // An fd that becomes readable when frames arrive (for an idle poller to
  // sleep on), or -1.
  virtual int wait_fd() const noexcept { return -1; }
  virtual const TransportStats& stats() const noexcept = 0;
};

}  // namespace viopool::pool
