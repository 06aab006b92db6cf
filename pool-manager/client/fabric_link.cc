#include "pool-manager/client/fabric_link.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <random>

namespace viopool::pool {

Instance random_instance() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  Instance n{};
  for (auto& b : n) {
    b = static_cast<std::uint8_t>(rng());
  }
  return n;
}

Result<Link> open_link(const LinkParams& p, const PeerAddress& peer, FrameAuthenticator& auth,
                       const Instance& instance, std::uint64_t link_no) {
  Link l;
  auto u = UdpTransport::open({is_ipv6(peer) ? "[::]:0" : "0.0.0.0:0", p.mtu});
  if (!u) {
    return unexpected(u.error());
  }
  l.udp = std::move(*u);
  ChannelOptions co;
  co.function_id = p.function_id;
  co.queue_id = p.queue_id;
  co.window = 256;
  co.max_message = p.max_message;
  co.max_retries = 12;  // ~2.5 s of silence with backoff: then reconnect
  co.receive = p.receive;
  l.ch = std::make_unique<ReliableChannel>(*l.udp, peer, &auth, co);
  std::copy(instance.begin(), instance.end(), l.nonce.begin());
  for (int i = 0; i < 8; ++i) {
    l.nonce[8 + i] = static_cast<std::uint8_t>(link_no >> (56 - 8 * i));
  }
  Hello h;
  h.lease_id = p.lease_id;
  h.node_id = p.host_id;
  h.mtu = static_cast<std::uint16_t>(std::min<std::uint32_t>(p.mtu, 65535));
  h.window = co.window;
  h.nonce = l.nonce;
  std::byte buf[kHelloBytes];
  (void)encode_hello(h, buf);
  VIOPOOL_TRY(l.ch->send(Opcode::kHello, 0, buf));
  return l;
}

LinkWaiter::~LinkWaiter() {
  if (epfd_ >= 0) {
    ::close(epfd_);
  }
  if (timerfd_ >= 0) {
    ::close(timerfd_);
  }
}

Result<void> LinkWaiter::open() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  timerfd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd_ < 0 || timerfd_ < 0) {
    return fail(Errc::kIo, "pool: epoll or timerfd", errno);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, timerfd_, &ev);
  return {};
}

void LinkWaiter::watch(const Link& l) {
  if (epfd_ < 0) {
    return;
  }
  const int fd = l.udp ? l.udp->wait_fd() : -1;
  if (fd == watched_) {
    return;
  }
  if (watched_ >= 0) {
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, watched_, nullptr);
  }
  watched_ = -1;
  if (fd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) {
      watched_ = fd;
    }
  }
}

bool LinkWaiter::arm(std::chrono::steady_clock::time_point wake) {
  std::uint64_t expirations = 0;
  while (::read(timerfd_, &expirations, sizeof expirations) > 0) {
  }
  const auto now = std::chrono::steady_clock::now();
  if (wake <= now) {
    return false;
  }
  if (wake == std::chrono::steady_clock::time_point::max()) {
    return true;
  }
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(wake - now).count();
  itimerspec its{};
  its.it_value.tv_sec = static_cast<time_t>(us / 1000000);
  its.it_value.tv_nsec = static_cast<long>(us % 1000000) * 1000;
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
    its.it_value.tv_nsec = 1000;
  }
  ::timerfd_settime(timerfd_, 0, &its, nullptr);
  return true;
}

void wait_link(Link& l, std::chrono::steady_clock::time_point deadline) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  pollfd p{l.udp->wait_fd(), POLLIN, 0};
  const auto wake = std::min(deadline, l.ch->next_timer());
  const auto us = std::max<std::int64_t>(
      0, duration_cast<microseconds>(wake - std::chrono::steady_clock::now()).count());
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  ::ppoll(&p, 1, &ts, nullptr);
}

Result<FunctionConfig> read_function_config(const LinkParams& p, const PeerAddress& peer,
                                            FrameAuthenticator& auth,
                                            std::chrono::milliseconds timeout, std::uint32_t size,
                                            std::string& why) {
  auto link = open_link(p, peer, auth, random_instance(), 1);
  if (!link) {
    why = to_string(link.error());
    return unexpected(link.error());
  }
  std::vector<ChannelMessage> msgs;
  ChannelMessage config;
  FunctionConfig out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // HELLO first; CONFIG_READ once the channel exists (a CONFIG_READ that
  // overtook a lost HELLO would be refused).
  bool got = drive_blocking(*link, deadline, msgs, [&](ChannelMessage& m) {
    if (m.opcode == Opcode::kHelloAck) {
      if (auto h = decode_hello(m.payload)) {
        out.their = *h;
      }
      return true;
    }
    if (m.opcode == Opcode::kNak) {
      config = std::move(m);
      return true;
    }
    return false;
  });
  if (got && config.opcode != Opcode::kNak) {
    std::byte range[kConfigRangeBytes];
    (void)encode_config_range(ConfigRange{0, size}, range);
    (void)link->ch->send(Opcode::kConfigRead, 1, range);
    got = drive_blocking(*link, deadline, msgs, [&](ChannelMessage& m) {
      if (m.opcode == Opcode::kNak || m.opcode == Opcode::kConfigData) {
        config = std::move(m);
        return true;
      }
      return false;
    });
  }
  if (!got) {
    why = "no answer from the appliance (unreachable, or it does not hold function " +
          std::to_string(p.function_id) + " with this key)";
    return fail(Errc::kTimeout, "pool: no answer");
  }
  link->ch->send_unsequenced(Opcode::kGoodbye, {});
  if (config.opcode == Opcode::kNak) {
    why = "the appliance refused the connection";
    return fail(Errc::kUnsupported, "pool: refused");
  }
  auto r = decode_config_range(config.payload);
  if (!r || r->size != size || config.payload.size() != kConfigRangeBytes + size) {
    why = "malformed config space from the appliance";
    return fail(Errc::kProtocol, "pool: bad config space");
  }
  out.space.assign(config.payload.begin() + kConfigRangeBytes, config.payload.end());
  return out;
}

Result<FunctionConfig> open_function(const std::string& appliance, const std::string& name,
                                     const LinkParams& p, const AuthKey& key,
                                     std::chrono::milliseconds timeout, std::uint32_t size,
                                     std::string& why) {
  const std::string who = "pool://" + appliance + "/" + name + ": ";
  auto peer = parse_udp_address(appliance);
  if (!peer) {
    why = who + "appliance address is not ip:port";
    return unexpected(peer.error());
  }
  if (p.function_id == 0 || p.mtu < 512 || p.mtu > 65507) {
    why = who + "function_id must be > 0 and mtu in [512, 65507]";
    return fail(Errc::kInvalidArgument, "pool: bad options");
  }
  auto auth = FrameAuthenticator::create(key);
  if (!auth) {
    why = who + to_string(auth.error());
    return unexpected(auth.error());
  }
  auto cfg = read_function_config(p, *peer, **auth, timeout, size, why);
  if (!cfg) {
    why = who + why;
    return unexpected(cfg.error());
  }
  cfg->peer = *peer;
  cfg->auth = std::move(*auth);
  if (cfg->space.size() >= kVolumeNameOffset + kVolumeNameBytes) {
    const char* n = reinterpret_cast<const char*>(cfg->space.data() + kVolumeNameOffset);
    cfg->name.assign(n, strnlen(n, kVolumeNameBytes));
  }
  return cfg;
}

}  // namespace viopool::pool
