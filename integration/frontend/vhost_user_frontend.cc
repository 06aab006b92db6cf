// vhost-user frontend: message framing over a non-blocking unix stream socket.
// Every wait goes through poll() with the time left to the request's deadline,
// so a backend that stops answering costs at most options.timeout.
#include "integration/frontend/vhost_user_frontend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("frontend")

namespace viopool::frontend {

namespace vhost_user {

const char* request_name(Request r) noexcept {
  switch (r) {
    case Request::kGetFeatures:
      return "GET_FEATURES";
    case Request::kCreateCryptoSession:
      return "CREATE_CRYPTO_SESSION";
    case Request::kCloseCryptoSession:
      return "CLOSE_CRYPTO_SESSION";
    case Request::kSetFeatures:
      return "SET_FEATURES";
    case Request::kSetOwner:
      return "SET_OWNER";
    case Request::kResetOwner:
      return "RESET_OWNER";
    case Request::kSetMemTable:
      return "SET_MEM_TABLE";
    case Request::kSetVringNum:
      return "SET_VRING_NUM";
    case Request::kSetVringAddr:
      return "SET_VRING_ADDR";
    case Request::kSetVringBase:
      return "SET_VRING_BASE";
    case Request::kGetVringBase:
      return "GET_VRING_BASE";
    case Request::kSetVringKick:
      return "SET_VRING_KICK";
    case Request::kSetVringCall:
      return "SET_VRING_CALL";
    case Request::kGetProtocolFeatures:
      return "GET_PROTOCOL_FEATURES";
    case Request::kSetProtocolFeatures:
      return "SET_PROTOCOL_FEATURES";
    case Request::kGetQueueNum:
      return "GET_QUEUE_NUM";
    case Request::kSetVringEnable:
      return "SET_VRING_ENABLE";
    case Request::kGetConfig:
      return "GET_CONFIG";
  }
  return "UNKNOWN";
}

const char* protocol_feature_name(unsigned bit) noexcept {
  switch (bit) {
    case kProtocolMq:
      return "MQ";
    case kProtocolLogShmfd:
      return "LOG_SHMFD";
    case 2:
      return "RARP";
    case kProtocolReplyAck:
      return "REPLY_ACK";
    case 4:
      return "NET_MTU";
    case kProtocolBackendReq:
      return "BACKEND_REQ";
    case 6:
      return "CROSS_ENDIAN";
    case kProtocolCryptoSession:
      return "CRYPTO_SESSION";
    case 8:
      return "PAGEFAULT";
    case kProtocolConfig:
      return "CONFIG";
    case 10:
      return "BACKEND_SEND_FD";
    case 11:
      return "HOST_NOTIFIER";
    case kProtocolInflightShmfd:
      return "INFLIGHT_SHMFD";
    case 13:
      return "RESET_DEVICE";
    case 14:
      return "INBAND_NOTIFICATIONS";
    case kProtocolConfigureMemSlots:
      return "CONFIGURE_MEM_SLOTS";
    case 16:
      return "STATUS";
    default:
      return nullptr;
  }
}

}  // namespace vhost_user

namespace {

using vhost_user::Request;
using Clock = std::chrono::steady_clock;

// Milliseconds left to `deadline` for poll(), rounded up so that we never
// spin with a 0 timeout before the deadline has really passed.
int poll_ms_left(Clock::time_point deadline) {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) {
    return 0;
  }
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

// Waits for `events` on fd until the deadline: kOk, kTimeout or kIo.
Result<void> wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, poll_ms_left(deadline));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(Errc::kIo, "poll on the vhost-user socket failed", errno);
    }
    if (n == 0) {
      return fail(Errc::kTimeout, "backend did not answer in time");
    }
    // POLLHUP/POLLERR: let the following read or write report what happened.
    return {};
  }
}

bool is_reply_ackable(Request r) {
  // Requests with a reply of their own never carry need_reply.
  switch (r) {
    case Request::kGetFeatures:
    case Request::kGetProtocolFeatures:
    case Request::kGetQueueNum:
    case Request::kGetVringBase:
    case Request::kGetConfig:
      return false;
    default:
      return true;
  }
}

}  // namespace

VhostUserFrontend::VhostUserFrontend(int fd, const FrontendOptions& options) noexcept
    : fd_(fd), options_(options) {}

VhostUserFrontend::~VhostUserFrontend() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Result<std::unique_ptr<VhostUserFrontend>> VhostUserFrontend::connect(
    const std::string& socket_path, const FrontendOptions& options) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return fail(Errc::kInvalidArgument, "vhost-user socket path is empty or too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);

  const auto deadline = Clock::now() + options.connect_timeout;
  for (;;) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return fail(Errc::kIo, "cannot create a unix socket", errno);
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      VIOPOOL_LOG_DEBUG("connected socket={}", socket_path);
      return std::unique_ptr<VhostUserFrontend>(new VhostUserFrontend(fd, options));
    }
    const int err = errno;
    ::close(fd);
    // ENOENT / ECONNREFUSED: not listening yet; EAGAIN: its backlog is full.
    const bool retry = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR;
    if (!retry || Clock::now() >= deadline) {
      return fail(Errc::kIo, "cannot connect to the vhost-user socket", err);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool VhostUserFrontend::reply_ack() const noexcept {
  return (protocol_features_ >> vhost_user::kProtocolReplyAck) & 1;
}

unexpected VhostUserFrontend::failed(Request req, Error e, bool fatal) {
  last_error_ = std::string(vhost_user::request_name(req)) + ": " + to_string(e);
  if (fatal && !broken_) {
    broken_ = true;
    broken_error_ = e;
  }
  VIOPOOL_LOG_DEBUG("request failed: {}", last_error_);
  return unexpected(e);
}

Result<void> VhostUserFrontend::send_message(Request req, std::uint32_t flags, const void* payload,
                                             std::uint32_t size, std::span<const int> fds,
                                             Clock::time_point deadline) {
  if (size > vhost_user::kMaxPayload || fds.size() > vhost_user::kMaxMemRegions) {
    return fail(Errc::kInvalidArgument, "vhost-user message too large");
  }
  std::array<std::byte, sizeof(vhost_user::MsgHeader) + vhost_user::kMaxPayload> buf{};
  const vhost_user::MsgHeader hdr{static_cast<std::uint32_t>(req), flags, size};
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  if (size > 0) {
    std::memcpy(buf.data() + sizeof(hdr), payload, size);
  }
  const std::size_t total = sizeof(hdr) + size;

  std::size_t sent = 0;
  while (sent < total) {
    iovec iov{buf.data() + sent, total - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * vhost_user::kMaxMemRegions)> ctl{};
    if (sent == 0 && !fds.empty()) {
      // The fds travel with the first byte of the message, as backends expect
      // them with the header (libvhost-user and DPDK read them there).
      msg.msg_control = ctl.data();
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      VIOPOOL_TRY(wait_fd(fd_, POLLOUT, deadline));
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return fail(Errc::kIo, "backend closed the connection", errno);
    }
    return fail(Errc::kIo, "sending to the backend failed", n < 0 ? errno : 0);
  }
  return {};
}

Result<void> VhostUserFrontend::read_exact(std::byte* dst, std::size_t len,
                                           Clock::time_point deadline) {
  std::size_t got = 0;
  while (got < len) {
    iovec iov{dst + got, len - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * vhost_user::kMaxMemRegions)> ctl{};
    msg.msg_control = ctl.data();
    msg.msg_controllen = ctl.size();
    const ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n > 0) {
      // No reply we ask for carries fds: close any the backend sends anyway.
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          const std::size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (std::size_t i = 0; i < nfds; ++i) {
            int stray = -1;
            std::memcpy(&stray, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            ::close(stray);
          }
        }
      }
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      return fail(Errc::kIo, "backend closed the connection");
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      VIOPOOL_TRY(wait_fd(fd_, POLLIN, deadline));
      continue;
    }
    if (errno == ECONNRESET) {
      return fail(Errc::kIo, "backend closed the connection", errno);
    }
    return fail(Errc::kIo, "reading from the backend failed", errno);
  }
  return {};
}

Result<void> VhostUserFrontend::recv_reply(Request req, std::span<std::byte> reply,
                                           std::uint32_t& reply_size, Clock::time_point deadline) {
  vhost_user::MsgHeader hdr{};
  VIOPOOL_TRY(read_exact(reinterpret_cast<std::byte*>(&hdr), sizeof(hdr), deadline));
  if ((hdr.flags & vhost_user::kFlagVersionMask) != vhost_user::kFlagVersion) {
    return fail(Errc::kProtocol, "reply has an unknown protocol version");
  }
  if ((hdr.flags & vhost_user::kFlagReply) == 0) {
    return fail(Errc::kProtocol, "backend sent a message that is not a reply");
  }
  if (hdr.request != static_cast<std::uint32_t>(req)) {
    return fail(Errc::kProtocol, "reply is for another request type");
  }
  if (hdr.size > reply.size()) {
    return fail(Errc::kProtocol, "reply payload larger than the request allows");
  }
  VIOPOOL_TRY(read_exact(reply.data(), hdr.size, deadline));
  reply_size = hdr.size;
  return {};
}

Result<void> VhostUserFrontend::request_no_reply(Request req, const void* payload,
                                                 std::uint32_t size, std::span<const int> fds,
                                                 bool ackable) {
  if (broken_) {
    return failed(req, broken_error_, false);
  }
  const auto deadline = Clock::now() + options_.timeout;
  const bool want_ack = ackable && reply_ack() && is_reply_ackable(req);
  std::uint32_t flags = vhost_user::kFlagVersion;
  if (want_ack) {
    flags |= vhost_user::kFlagNeedReply;
  }
  if (auto r = send_message(req, flags, payload, size, fds, deadline); !r) {
    return failed(req, r.error(), true);
  }
  if (!want_ack) {
    return {};
  }
  std::array<std::byte, sizeof(std::uint64_t)> ack{};
  std::uint32_t got = 0;
  if (auto r = recv_reply(req, ack, got, deadline); !r) {
    return failed(req, r.error(), true);
  }
  if (got != sizeof(std::uint64_t)) {
    return failed(req, make_error(Errc::kProtocol, "REPLY_ACK payload is not 8 bytes"), true);
  }
  std::uint64_t status = 0;
  std::memcpy(&status, ack.data(), sizeof(status));
  if (status != 0) {
    // A nack leaves the stream in sync: the connection stays usable.
    return failed(req, make_error(Errc::kProtocol, "backend rejected the request (REPLY_ACK)"),
                  false);
  }
  return {};
}

Result<void> VhostUserFrontend::request_with_reply(Request req, const void* payload,
                                                   std::uint32_t size, std::span<std::byte> reply,
                                                   std::uint32_t& reply_size) {
  if (broken_) {
    return failed(req, broken_error_, false);
  }
  const auto deadline = Clock::now() + options_.timeout;
  if (auto r = send_message(req, vhost_user::kFlagVersion, payload, size, {}, deadline); !r) {
    return failed(req, r.error(), true);
  }
  if (auto r = recv_reply(req, reply, reply_size, deadline); !r) {
    return failed(req, r.error(), true);
  }
  return {};
}

Result<std::uint64_t> VhostUserFrontend::get_u64(Request req) {
  std::array<std::byte, sizeof(std::uint64_t)> buf{};
  std::uint32_t got = 0;
  VIOPOOL_TRY(request_with_reply(req, nullptr, 0, buf, got));
  if (got != sizeof(std::uint64_t)) {
    return failed(req, make_error(Errc::kProtocol, "reply payload is not a u64"), true);
  }
  std::uint64_t v = 0;
  std::memcpy(&v, buf.data(), sizeof(v));
  return v;
}

Result<void> VhostUserFrontend::set_owner() {
  return request_no_reply(Request::kSetOwner, nullptr, 0, {}, true);
}

Result<std::uint64_t> VhostUserFrontend::get_features() { return get_u64(Request::kGetFeatures); }

Result<void> VhostUserFrontend::set_features(std::uint64_t features) {
  return request_no_reply(Request::kSetFeatures, &features, sizeof(features), {}, true);
}

Result<std::uint64_t> VhostUserFrontend::get_protocol_features() {
  return get_u64(Request::kGetProtocolFeatures);
}

Result<void> VhostUserFrontend::set_protocol_features(std::uint64_t features) {
  // Not acked, as QEMU does: whether REPLY_ACK applies to the very message that
  // negotiates it is ambiguous, and some backends answer only after it.
  VIOPOOL_TRY(
      request_no_reply(Request::kSetProtocolFeatures, &features, sizeof(features), {}, false));
  protocol_features_ = features;
  return {};
}

Result<std::uint32_t> VhostUserFrontend::get_queue_num() {
  if (((protocol_features_ >> vhost_user::kProtocolMq) & 1) == 0) {
    return failed(Request::kGetQueueNum,
                  make_error(Errc::kUnsupported, "MQ protocol feature not negotiated"), false);
  }
  auto v = get_u64(Request::kGetQueueNum);
  if (!v) {
    return unexpected(v.error());
  }
  if (*v == 0 || *v > 0xffff) {
    return failed(Request::kGetQueueNum,
                  make_error(Errc::kProtocol, "backend reports an impossible queue count"), false);
  }
  return static_cast<std::uint32_t>(*v);
}

Result<void> VhostUserFrontend::get_config(std::uint32_t offset, std::span<std::byte> out) {
  if (((protocol_features_ >> vhost_user::kProtocolConfig) & 1) == 0) {
    return failed(Request::kGetConfig,
                  make_error(Errc::kUnsupported, "CONFIG protocol feature not negotiated"), false);
  }
  if (out.empty() || out.size() > vhost_user::kMaxConfigBytes) {
    return failed(Request::kGetConfig,
                  make_error(Errc::kInvalidArgument, "config read size out of range"), false);
  }
  const auto size = static_cast<std::uint32_t>(out.size());
  std::array<std::byte, vhost_user::kMaxPayload> buf{};
  const vhost_user::ConfigHeader hdr{offset, size, 0};
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  std::array<std::byte, vhost_user::kMaxPayload> reply{};
  std::uint32_t got = 0;
  VIOPOOL_TRY(request_with_reply(Request::kGetConfig, buf.data(),
                                 static_cast<std::uint32_t>(sizeof(hdr)) + size, reply, got));
  if (got == 0 || got == sizeof(hdr)) {
    // libvhost-user answers a refused read with an empty payload.
    return failed(Request::kGetConfig,
                  make_error(Errc::kProtocol, "backend refused the config read"), false);
  }
  if (got != sizeof(hdr) + size) {
    return failed(Request::kGetConfig,
                  make_error(Errc::kProtocol, "config reply has the wrong size"), false);
  }
  std::memcpy(out.data(), reply.data() + sizeof(hdr), size);
  return {};
}

Result<std::int64_t> VhostUserFrontend::create_crypto_session(std::span<const std::byte> payload) {
  if (((protocol_features_ >> vhost_user::kProtocolCryptoSession) & 1) == 0) {
    return failed(Request::kCreateCryptoSession,
                  make_error(Errc::kUnsupported, "CRYPTO_SESSION protocol feature not negotiated"),
                  false);
  }
  if (payload.size() != vhost_user::kCryptoSessionBytes) {
    return failed(Request::kCreateCryptoSession,
                  make_error(Errc::kInvalidArgument, "session payload must be 632 bytes"), false);
  }
  std::array<std::byte, vhost_user::kMaxPayload> reply{};
  std::uint32_t got = 0;
  VIOPOOL_TRY(request_with_reply(Request::kCreateCryptoSession, payload.data(),
                                 vhost_user::kCryptoSessionBytes, reply, got));
  if (got != vhost_user::kCryptoSessionBytes) {
    // QEMU refuses such a reply too.
    return failed(Request::kCreateCryptoSession,
                  make_error(Errc::kProtocol, "session reply has the wrong size"), true);
  }
  std::int64_t id = 0;
  std::memcpy(&id, reply.data(), sizeof(id));
  return id;
}

Result<void> VhostUserFrontend::close_crypto_session(std::uint64_t session_id) {
  if (((protocol_features_ >> vhost_user::kProtocolCryptoSession) & 1) == 0) {
    return failed(Request::kCloseCryptoSession,
                  make_error(Errc::kUnsupported, "CRYPTO_SESSION protocol feature not negotiated"),
                  false);
  }
  return request_no_reply(Request::kCloseCryptoSession, &session_id, sizeof(session_id), {},
                          false);
}

Result<void> VhostUserFrontend::set_mem_table(std::span<const MemTableEntry> regions) {
  if (regions.empty() || regions.size() > vhost_user::kMaxMemRegions) {
    return failed(Request::kSetMemTable,
                  make_error(Errc::kInvalidArgument, "memory table needs 1 to 8 regions"), false);
  }
  vhost_user::MemTable table{};
  std::array<int, vhost_user::kMaxMemRegions> fds{};
  table.num_regions = static_cast<std::uint32_t>(regions.size());
  for (std::size_t i = 0; i < regions.size(); ++i) {
    table.regions[i] = vhost_user::MemRegion{regions[i].guest_phys_addr.value, regions[i].size,
                                             regions[i].userspace_addr, regions[i].mmap_offset};
    fds[i] = regions[i].fd;
  }
  // The payload is the header plus only the regions in use, as QEMU sends it.
  const auto size = static_cast<std::uint32_t>(offsetof(vhost_user::MemTable, regions) +
                                               sizeof(vhost_user::MemRegion) * regions.size());
  return request_no_reply(Request::kSetMemTable, &table, size,
                          std::span<const int>(fds.data(), regions.size()), true);
}

Result<void> VhostUserFrontend::set_vring_num(std::uint32_t index, std::uint32_t num) {
  const vhost_user::VringState s{index, num};
  return request_no_reply(Request::kSetVringNum, &s, sizeof(s), {}, true);
}

Result<void> VhostUserFrontend::set_vring_base(std::uint32_t index, std::uint32_t base) {
  const vhost_user::VringState s{index, base};
  return request_no_reply(Request::kSetVringBase, &s, sizeof(s), {}, true);
}

Result<void> VhostUserFrontend::set_vring_addr(const vhost_user::VringAddr& addr) {
  return request_no_reply(Request::kSetVringAddr, &addr, sizeof(addr), {}, true);
}

Result<void> VhostUserFrontend::set_vring_kick(std::uint32_t index, int fd) {
  const std::uint64_t v =
      (index & vhost_user::kVringIndexMask) | (fd < 0 ? vhost_user::kVringNoFd : 0);
  const int fds[1] = {fd};
  return request_no_reply(Request::kSetVringKick, &v, sizeof(v),
                          fd < 0 ? std::span<const int>() : std::span<const int>(fds), true);
}

Result<void> VhostUserFrontend::set_vring_call(std::uint32_t index, int fd) {
  const std::uint64_t v =
      (index & vhost_user::kVringIndexMask) | (fd < 0 ? vhost_user::kVringNoFd : 0);
  const int fds[1] = {fd};
  return request_no_reply(Request::kSetVringCall, &v, sizeof(v),
                          fd < 0 ? std::span<const int>() : std::span<const int>(fds), true);
}

Result<void> VhostUserFrontend::set_vring_enable(std::uint32_t index, VringEnable enable) {
  const vhost_user::VringState s{index, enable == VringEnable::kYes ? 1u : 0u};
  return request_no_reply(Request::kSetVringEnable, &s, sizeof(s), {}, true);
}

Result<std::uint32_t> VhostUserFrontend::get_vring_base(std::uint32_t index) {
  const vhost_user::VringState s{index, 0};
  std::array<std::byte, sizeof(vhost_user::VringState)> buf{};
  std::uint32_t got = 0;
  VIOPOOL_TRY(request_with_reply(Request::kGetVringBase, &s, sizeof(s), buf, got));
  if (got != sizeof(vhost_user::VringState)) {
    return failed(Request::kGetVringBase,
                  make_error(Errc::kProtocol, "vring state reply is not 8 bytes"), true);
  }
  vhost_user::VringState r{};
  std::memcpy(&r, buf.data(), sizeof(r));
  if (r.index != index) {
    return failed(Request::kGetVringBase,
                  make_error(Errc::kProtocol, "vring state reply names another vring"), false);
  }
  return r.num;
}

Result<void> VhostUserFrontend::sync() {
  auto r = get_features();
  if (!r) {
    return unexpected(r.error());
  }
  return {};
}

}  // namespace viopool::frontend
