// UdpTransport: sendmmsg/recvmmsg bursts; runs of equal datagrams as one
// segmented send (UDP_SEGMENT), received whole (UDP_GRO) and split here.
#include "pool-manager/transport/udp_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace viopool::pool {
namespace {
// docs/fabric.md "Frames": a frame is this header and `length` bytes.
constexpr std::size_t kFrameHeaderBytes = 56;

// Bytes of the first frame in a datagram of frames back to back: its header
// and the `length` (u32 at offset 28) it declares. A head that does not
// parse, or claims more than there is, takes the rest (and fails decoding).
std::size_t first_frame_bytes(std::span<const std::byte> d) noexcept {
  if (d.size() < kFrameHeaderBytes) {
    return d.size();
  }
  const std::uint32_t len = static_cast<std::uint32_t>(d[28]) << 24 |
                            static_cast<std::uint32_t>(d[29]) << 16 |
                            static_cast<std::uint32_t>(d[30]) << 8 |
                            static_cast<std::uint32_t>(d[31]);
  return len <= d.size() - kFrameHeaderBytes ? kFrameHeaderBytes + len : d.size();
}
}  // namespace
namespace {

constexpr std::size_t kMaxBurst = 64;
// One segmented send: the kernel's limit on segments (UDP_MAX_SEGMENTS, 64
// before Linux 6.2) and an IP datagram's 64 KiB less the headers.
constexpr std::size_t kMaxGsoSegments = 64;
constexpr std::size_t kMaxGsoBytes = 65535 - 40 - 8;
// Receive slots with coalescing on: each the largest buffer the kernel hands
// up (an IP datagram's 64 KiB).
constexpr std::size_t kGroSlots = 16;
constexpr std::size_t kMaxGroBytes = 65536;

PeerAddress from_sockaddr(const sockaddr_storage& ss, socklen_t len) noexcept {
  PeerAddress a;
  a.len = static_cast<std::uint8_t>(std::min<std::size_t>(len, a.bytes.size()));
  std::memcpy(a.bytes.data(), &ss, a.len);
  return a;
}

}  // namespace

Result<PeerAddress> parse_udp_address(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(Errc::kInvalidArgument, "udp address: expected [ipv6]:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      return fail(Errc::kInvalidArgument, "udp address: expected host:port");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p > 65535) {
    return fail(Errc::kInvalidArgument, "udp address: bad port");
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(p));
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(p));
    len = sizeof(sockaddr_in6);
  } else {
    return fail(Errc::kInvalidArgument, "udp address: host is not a numeric IPv4/IPv6 address");
  }
  return from_sockaddr(ss, len);
}

std::string to_string(const PeerAddress& a) {
  sockaddr_storage ss{};
  std::memcpy(&ss, a.bytes.data(), a.len);
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

bool is_ipv6(const PeerAddress& a) noexcept {
  sockaddr_storage ss{};
  std::memcpy(&ss, a.bytes.data(), a.len);
  return ss.ss_family == AF_INET6;
}

Result<std::unique_ptr<UdpTransport>> UdpTransport::open(const UdpTransportOptions& o) {
  auto addr = parse_udp_address(o.bind);
  VIOPOOL_TRY(addr);
  sockaddr_storage ss{};
  std::memcpy(&ss, addr->bytes.data(), addr->len);
  std::unique_ptr<UdpTransport> t(new UdpTransport());
  t->mtu_ = o.mtu;
  t->fd_ = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (t->fd_ < 0) {
    return fail(Errc::kIo, "udp: socket failed", errno);
  }
  ::setsockopt(t->fd_, SOL_SOCKET, SO_RCVBUF, &o.socket_buffer, sizeof(o.socket_buffer));
  ::setsockopt(t->fd_, SOL_SOCKET, SO_SNDBUF, &o.socket_buffer, sizeof(o.socket_buffer));
  if (::bind(t->fd_, reinterpret_cast<const sockaddr*>(&ss), addr->len) != 0) {
    return fail(Errc::kIo, "udp: bind failed", errno);
  }
  socklen_t len = sizeof(ss);
  if (::getsockname(t->fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return fail(Errc::kIo, "udp: getsockname failed", errno);
  }
  t->local_ = from_sockaddr(ss, len);
  // Coalesced receive: a segmented send arrives as one buffer of its
  // datagrams (so the sender's stack does not split it either). Slots then
  // hold the 64 KiB such a buffer may reach; without it, one datagram each.
  const int one = 1;
  t->gro_ = o.coalesce && ::setsockopt(t->fd_, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  t->rx_slot_bytes_ = t->gro_ ? kMaxGroBytes : std::max<std::size_t>(o.mtu, kFrameHeaderBytes);
  t->rx_slots_.resize(t->gro_ ? kGroSlots : kMaxBurst);
  // Not zeroed: a slot's pages are touched only once a datagram lands in it.
  t->rx_area_ = std::make_unique_for_overwrite<std::byte[]>(t->rx_slots_.size() * t->rx_slot_bytes_);
  return t;
}

UdpTransport::~UdpTransport() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::uint32_t UdpTransport::send_burst(std::span<const OutFrame> frames) noexcept {
  // Frames of each datagram as iovecs: no copy to bundle them.
  constexpr std::size_t kMaxIov = 64;
  std::uint32_t done = 0;
  while (done < frames.size()) {
    // Datagrams first: frames bundled up to their peers' MTU, each
    // datagram's iovecs right after the previous one's.
    iovec iov[kMaxBurst * 4];
    std::size_t dg_first_iov[kMaxBurst];
    std::size_t dg_bytes[kMaxBurst];
    std::uint32_t dg_frames[kMaxBurst];  // also its iovecs: one per frame
    const PeerAddress* dg_peer[kMaxBurst];
    std::size_t n = 0;
    std::size_t used_iov = 0;
    std::size_t i = done;
    while (i < frames.size() && n < kMaxBurst && used_iov < std::size(iov)) {
      const std::size_t first = i;
      std::size_t bytes = frames[i].data.size();
      std::uint32_t limit = frames[i].bundle;
      ++i;
      while (limit > 0 && i < frames.size() && i - first < kMaxIov &&
             used_iov + (i - first) < std::size(iov) && frames[i].bundle > 0 &&
             frames[i].peer == frames[first].peer &&
             bytes + frames[i].data.size() <= std::min(limit, frames[i].bundle)) {
        limit = std::min(limit, frames[i].bundle);
        bytes += frames[i].data.size();
        ++i;
      }
      dg_first_iov[n] = used_iov;
      dg_bytes[n] = bytes;
      dg_frames[n] = static_cast<std::uint32_t>(i - first);
      dg_peer[n] = &frames[first].peer;
      for (std::size_t f = first; f < i; ++f) {
        iov[used_iov++] = iovec{const_cast<std::byte*>(frames[f].data.data()), frames[f].data.size()};
      }
      ++n;
    }
    // Then messages: a run of datagrams to one peer, all as long as the
    // first but the last (which may be shorter), goes as one message the
    // kernel segments (UDP_SEGMENT): one trip through the stack instead of
    // one per datagram. The datagrams on the wire are the same.
    mmsghdr msgs[kMaxBurst];
    alignas(cmsghdr) std::byte ctl[kMaxBurst][CMSG_SPACE(sizeof(std::uint16_t))];
    std::uint32_t frames_in[kMaxBurst];
    std::size_t m = 0;
    for (std::size_t d = 0; d < n;) {
      std::size_t e = d + 1;
      std::size_t total = dg_bytes[d];
      if (gso_) {
        while (e < n && e - d < kMaxGsoSegments && *dg_peer[e] == *dg_peer[d] &&
               dg_bytes[e - 1] == dg_bytes[d] && dg_bytes[e] <= dg_bytes[d] &&
               total + dg_bytes[e] <= kMaxGsoBytes) {
          total += dg_bytes[e];
          ++e;
        }
      }
      msgs[m] = mmsghdr{};
      msgs[m].msg_hdr.msg_name = const_cast<std::uint8_t*>(dg_peer[d]->bytes.data());
      msgs[m].msg_hdr.msg_namelen = dg_peer[d]->len;
      msgs[m].msg_hdr.msg_iov = &iov[dg_first_iov[d]];
      frames_in[m] = 0;
      for (std::size_t k = d; k < e; ++k) {
        frames_in[m] += dg_frames[k];
      }
      msgs[m].msg_hdr.msg_iovlen = frames_in[m];
      if (e - d > 1) {
        msgs[m].msg_hdr.msg_control = ctl[m];
        msgs[m].msg_hdr.msg_controllen = sizeof(ctl[m]);
        cmsghdr* c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto seg = static_cast<std::uint16_t>(dg_bytes[d]);
        std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
      }
      ++m;
      d = e;
    }
    const int k = ::sendmmsg(fd_, msgs, static_cast<unsigned>(m), MSG_DONTWAIT);
    if (k < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
        break;  // the socket is full: try later
      }
      if (msgs[0].msg_hdr.msg_controllen != 0 &&
          (errno == EINVAL || errno == EIO || errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
        // A kernel or route that cannot segment (no checksum offload, IPsec,
        // a path MTU below the datagrams): send each datagram on its own
        // from now on, starting with these. Other errors are the peer's
        // (unreachable, filtered) and drop its datagrams as below.
        gso_ = false;
        ++stats_.gso_refused;
        continue;
      }
      // A datagram the network refuses (unreachable, too big): drop it, go on.
      ++stats_.send_errors;
      done += frames_in[0];
      continue;
    }
    for (int j = 0; j < k; ++j) {
      done += frames_in[j];
      stats_.sent += frames_in[j];
      if (msgs[j].msg_hdr.msg_controllen != 0) {
        ++stats_.segmented;
      }
    }
    if (static_cast<std::size_t>(k) < m) {
      break;
    }
  }
  return done;
}

int UdpTransport::refill() noexcept {
  mmsghdr msgs[kMaxBurst];
  iovec iov[kMaxBurst];
  sockaddr_storage from[kMaxBurst];
  alignas(cmsghdr) std::byte ctl[kMaxBurst][CMSG_SPACE(sizeof(int))];
  const std::size_t slots = rx_slots_.size();
  for (std::size_t m = 0; m < slots; ++m) {
    iov[m] = iovec{rx_area_.get() + m * rx_slot_bytes_, rx_slot_bytes_};
    msgs[m] = mmsghdr{};
    msgs[m].msg_hdr.msg_name = &from[m];
    msgs[m].msg_hdr.msg_namelen = sizeof(from[m]);
    msgs[m].msg_hdr.msg_iov = &iov[m];
    msgs[m].msg_hdr.msg_iovlen = 1;
    if (gro_) {
      msgs[m].msg_hdr.msg_control = ctl[m];
      msgs[m].msg_hdr.msg_controllen = sizeof(ctl[m]);
    }
  }
  const int k = ::recvmmsg(fd_, msgs, static_cast<unsigned>(slots), MSG_DONTWAIT, nullptr);
  rx_filled_ = 0;
  rx_slot_ = 0;
  rx_off_ = 0;
  for (int m = 0; m < k; ++m) {
    if ((msgs[m].msg_hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      // A datagram longer than we receive, or a coalesced run whose segment
      // size got lost (it could not be split safely): its frames are lost.
      ++stats_.truncated;
      continue;
    }
    RxSlot& r = rx_slots_[rx_filled_];
    r.data = rx_area_.get() + static_cast<std::size_t>(m) * rx_slot_bytes_;
    r.len = msgs[m].msg_len;
    r.segment = r.len;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[m].msg_hdr); c != nullptr;
         c = CMSG_NXTHDR(&msgs[m].msg_hdr, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int seg = 0;
        std::memcpy(&seg, CMSG_DATA(c), sizeof(seg));
        if (seg > 0) {
          r.segment = static_cast<std::uint32_t>(seg);
        }
      }
    }
    r.peer = from_sockaddr(from[m], msgs[m].msg_hdr.msg_namelen);
    if (r.segment < r.len) {
      ++stats_.coalesced;
    }
    if (r.len > 0) {
      ++rx_filled_;
    }
  }
  if (rx_filled_ > 0) {
    rx_dgram_end_ = rx_slots_[0].first_end();
  }
  return k;
}

std::uint32_t UdpTransport::recv_burst(std::span<InFrame> frames) noexcept {
  // Datagrams land in our slots (several back to back when the kernel
  // coalesced a segmented send, UDP_GRO), each is split into its frames by
  // their `length` fields, and the frames are copied to the caller's
  // buffers. Callers read until a burst comes back short, then sleep on the
  // socket: a burst is short only when the socket had nothing more, so
  // nothing waits in the slots where no wake-up would find it.
  std::uint32_t out = 0;
  while (out < frames.size()) {
    if (rx_slot_ == rx_filled_) {
      // Until something usable came or the socket is empty: a receive of
      // nothing but truncated datagrams must not end the burst short.
      int k = 0;
      do {
        k = refill();
      } while (rx_filled_ == 0 && k > 0);
      if (rx_filled_ == 0) {
        break;
      }
    }
    const RxSlot& r = rx_slots_[rx_slot_];
    const std::span<const std::byte> d(r.data + rx_off_, rx_dgram_end_ - rx_off_);
    const std::size_t size = first_frame_bytes(d);
    if (size <= frames[out].buf.size()) {
      std::memcpy(frames[out].buf.data(), d.data(), size);
      frames[out].len = static_cast<std::uint32_t>(size);
      frames[out].peer = r.peer;
      ++out;
    } else {
      ++stats_.truncated;
    }
    rx_off_ += static_cast<std::uint32_t>(size);
    if (rx_off_ == rx_dgram_end_) {
      if (rx_off_ == r.len) {
        ++rx_slot_;
        rx_off_ = 0;
        if (rx_slot_ < rx_filled_) {
          rx_dgram_end_ = rx_slots_[rx_slot_].first_end();
        }
      } else {
        rx_dgram_end_ = std::min(rx_off_ + r.segment, r.len);  // the next coalesced datagram
      }
    }
  }
  stats_.received += out;
  return out;
}

}  // namespace viopool::pool
