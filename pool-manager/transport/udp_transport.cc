// UdpTransport: sendmmsg/recvmmsg bursts.
#include "pool-manager/transport/udp_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace viopool::pool {
namespace {

constexpr std::size_t kMaxBurst = 64;

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
  return t;
}

UdpTransport::~UdpTransport() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::uint32_t UdpTransport::send_burst(std::span<const OutFrame> frames) noexcept {
  std::uint32_t done = 0;
  while (done < frames.size()) {
    const std::size_t n = std::min(kMaxBurst, frames.size() - done);
    mmsghdr msgs[kMaxBurst];
    iovec iov[kMaxBurst];
    for (std::size_t i = 0; i < n; ++i) {
      const auto& f = frames[done + i];
      iov[i] = iovec{const_cast<std::byte*>(f.data.data()), f.data.size()};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_name = const_cast<std::uint8_t*>(f.peer.bytes.data());
      msgs[i].msg_hdr.msg_namelen = f.peer.len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int k = ::sendmmsg(fd_, msgs, static_cast<unsigned>(n), MSG_DONTWAIT);
    if (k < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
        break;  // the socket is full: try later
      }
      // A datagram the network refuses (unreachable, too big): drop it, go on.
      ++stats_.send_errors;
      ++done;
      continue;
    }
    done += static_cast<std::uint32_t>(k);
    stats_.sent += static_cast<std::uint64_t>(k);
    if (static_cast<std::size_t>(k) < n) {
      break;
    }
  }
  return done;
}

std::uint32_t UdpTransport::recv_burst(std::span<InFrame> frames) noexcept {
  const std::size_t n = std::min(kMaxBurst, frames.size());
  if (n == 0) {
    return 0;
  }
  mmsghdr msgs[kMaxBurst];
  iovec iov[kMaxBurst];
  sockaddr_storage from[kMaxBurst];
  for (std::size_t i = 0; i < n; ++i) {
    iov[i] = iovec{frames[i].buf.data(), frames[i].buf.size()};
    msgs[i] = mmsghdr{};
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const int k = ::recvmmsg(fd_, msgs, static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  if (k <= 0) {
    return 0;
  }
  std::uint32_t out = 0;
  for (int i = 0; i < k; ++i) {
    if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
      ++stats_.truncated;
      continue;
    }
    frames[out].len = msgs[i].msg_len;
    frames[out].peer = from_sockaddr(from[i], msgs[i].msg_hdr.msg_namelen);
    if (out != static_cast<std::uint32_t>(i)) {
      std::memcpy(frames[out].buf.data(), frames[i].buf.data(), msgs[i].msg_len);
    }
    ++out;
  }
  stats_.received += out;
  return out;
}

}  // namespace viopool::pool
