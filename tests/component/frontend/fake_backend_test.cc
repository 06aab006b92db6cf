// The frontend against fake vhost-user backends that misbehave at a chosen
// request: close the socket, answer garbage, never answer, nack. Each must end
// in a clean, specific error within the timeout, never a hang or a crash.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "integration/frontend/blk_driver.h"
#include "integration/frontend/vhost_user_frontend.h"
#include "tests/component/frontend/printers.h"
#include "tests/support/process.h"

using namespace viopool;
using namespace viopool::frontend;
using namespace viopool::testing;
using namespace std::chrono_literals;
using vhost_user::Request;

namespace {

enum class Misbehave {
  kNone,
  kClose,         // close the connection on receiving the trigger
  kGarbage,       // answer with bytes that are not a vhost-user reply
  kSilent,        // never answer (keep the socket open)
  kNack,          // REPLY_ACK with a non-zero status
  kWrongRequest,  // a well-formed reply to another request type
  kOversized,     // a reply header announcing a 64 KiB payload
  kEmptyConfig,   // GET_CONFIG answered with no config bytes (a refusal)
};

// A one-connection vhost-user "backend" on a thread: answers GET_FEATURES,
// GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_CONFIG and REPLY_ACK requests
// correctly until it sees `trigger`, then misbehaves as told.
class FakeBackend {
 public:
  FakeBackend(const std::string& path, Request trigger, Misbehave how)
      : trigger_(trigger), how_(how) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(listen_fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    BOOST_REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    BOOST_REQUIRE(::listen(listen_fd_, 1) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeBackend() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  int messages() const { return messages_.load(); }

 private:
  // Waits for input on fd for up to 100 ms at a time while not stopped.
  bool wait_readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        return true;
      }
    }
    return false;
  }
  bool read_all(int fd, void* dst, std::size_t len) {
    auto* p = static_cast<char*>(dst);
    while (len > 0) {
      if (!wait_readable(fd)) {
        return false;
      }
      std::array<char, CMSG_SPACE(sizeof(int) * 8)> ctl{};
      iovec iov{p, len};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl.data();
      m.msg_controllen = ctl.size();
      const ssize_t n = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
      if (n <= 0) {
        return false;
      }
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        const std::size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < nfds; ++i) {
          int f = -1;
          std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          ::close(f);
        }
      }
      p += n;
      len -= static_cast<std::size_t>(n);
    }
    return true;
  }
  void reply(int fd, std::uint32_t request, const void* payload, std::uint32_t size) {
    vhost_user::MsgHeader h{request, vhost_user::kFlagVersion | vhost_user::kFlagReply, size};
    std::array<char, 512> buf{};
    std::memcpy(buf.data(), &h, sizeof(h));
    if (size > 0) {
      std::memcpy(buf.data() + sizeof(h), payload, size);
    }
    (void)!::send(fd, buf.data(), sizeof(h) + size, MSG_NOSIGNAL);
  }

  void serve() {
    if (!wait_readable(listen_fd_)) {
      return;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      return;
    }
    for (;;) {
      vhost_user::MsgHeader h{};
      if (!read_all(fd, &h, sizeof(h))) {
        break;
      }
      std::array<char, 512> payload{};
      if (h.size > payload.size() || !read_all(fd, payload.data(), h.size)) {
        break;
      }
      ++messages_;
      const bool need_reply = (h.flags & vhost_user::kFlagNeedReply) != 0;
      if (h.request == static_cast<std::uint32_t>(trigger_) && how_ != Misbehave::kNone) {
        if (how_ == Misbehave::kClose) {
          break;
        }
        if (how_ == Misbehave::kSilent) {
          while (wait_readable(fd)) {
            char drain[256];
            if (::recv(fd, drain, sizeof(drain), 0) <= 0) {
              break;
            }
          }
          break;
        }
        if (how_ == Misbehave::kGarbage) {
          const char junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
          (void)!::send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
          continue;
        }
        if (how_ == Misbehave::kNack) {
          const std::uint64_t one = 1;
          reply(fd, h.request, &one, sizeof(one));
          continue;
        }
        if (how_ == Misbehave::kWrongRequest) {
          const std::uint64_t v = 0;
          reply(fd, h.request + 1, &v, sizeof(v));
          continue;
        }
        if (how_ == Misbehave::kOversized) {
          vhost_user::MsgHeader bad{h.request, vhost_user::kFlagVersion | vhost_user::kFlagReply,
                                    65536};
          (void)!::send(fd, &bad, sizeof(bad), MSG_NOSIGNAL);
          continue;
        }
        if (how_ == Misbehave::kEmptyConfig) {
          reply(fd, h.request, nullptr, 0);
          continue;
        }
      }
      switch (static_cast<Request>(h.request)) {
        case Request::kGetFeatures: {
          const std::uint64_t f = (1ull << virtio::kFeatureVersion1) |
                                  (1ull << virtio::kFeatureProtocolFeatures) |
                                  (1ull << blk::kFeatFlush);
          reply(fd, h.request, &f, sizeof(f));
          break;
        }
        case Request::kGetProtocolFeatures: {
          const std::uint64_t f =
              (1ull << vhost_user::kProtocolReplyAck) | (1ull << vhost_user::kProtocolConfig);
          reply(fd, h.request, &f, sizeof(f));
          break;
        }
        case Request::kGetConfig: {
          // Echo the request with a 1 MiB capacity in the config bytes.
          const std::uint64_t cap = 2048;
          std::memcpy(payload.data() + sizeof(vhost_user::ConfigHeader), &cap, sizeof(cap));
          reply(fd, h.request, payload.data(), h.size);
          break;
        }
        case Request::kGetVringBase: {
          reply(fd, h.request, payload.data(), sizeof(vhost_user::VringState));
          break;
        }
        default:
          if (need_reply) {
            const std::uint64_t ok = 0;
            reply(fd, h.request, &ok, sizeof(ok));
          }
          break;
      }
    }
    ::close(fd);
  }

  Request trigger_;
  Misbehave how_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> messages_{0};
  std::thread thread_;
};

struct Outcome {
  Result<std::unique_ptr<BlkDriver>> driver;
  std::string why;
  std::chrono::milliseconds took;
};

Outcome connect_to(const std::string& path, std::chrono::milliseconds timeout = 2s) {
  BlkDriverOptions o;
  o.socket_path = path;
  o.arena.size = 4 << 20;
  o.queue_size = 64;
  o.frontend.timeout = timeout;
  std::string why;
  const auto t0 = std::chrono::steady_clock::now();
  auto d = BlkDriver::connect(o, &why);
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  return Outcome{std::move(d), why, took};
}

bool mentions(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fake_backend)

BOOST_AUTO_TEST_CASE(a_well_behaved_fake_completes_the_whole_handshake) {
  TempDir dir;
  FakeBackend fake(dir.file("s"), Request::kGetFeatures, Misbehave::kNone);
  auto r = connect_to(dir.file("s"));
  BOOST_REQUIRE_MESSAGE(r.driver.has_value(), r.why);
  BOOST_TEST((*r.driver)->capacity_bytes() == 2048u * 512u);
  BOOST_TEST((*r.driver)->frontend().reply_ack());
}

BOOST_AUTO_TEST_CASE(nothing_listening_is_an_io_error) {
  TempDir dir;
  auto r = connect_to(dir.file("missing"));
  BOOST_REQUIRE(!r.driver.has_value());
  BOOST_TEST(r.driver.error().code == Errc::kIo);
  BOOST_TEST(r.took.count() < 1000);
}

BOOST_AUTO_TEST_CASE(backend_closing_mid_handshake_is_an_io_error_naming_the_request) {
  for (Request at : {Request::kGetFeatures, Request::kSetMemTable, Request::kSetVringKick}) {
    BOOST_TEST_CONTEXT(vhost_user::request_name(at)) {
      TempDir dir;
      FakeBackend fake(dir.file("s"), at, Misbehave::kClose);
      auto r = connect_to(dir.file("s"));
      BOOST_REQUIRE(!r.driver.has_value());
      BOOST_TEST(r.driver.error().code == Errc::kIo);
      BOOST_TEST(mentions(r.why, vhost_user::request_name(at)), r.why);
      BOOST_TEST(r.took.count() < 2000);
    }
  }
}

BOOST_AUTO_TEST_CASE(garbage_replies_are_protocol_errors) {
  for (Misbehave how : {Misbehave::kGarbage, Misbehave::kWrongRequest, Misbehave::kOversized}) {
    BOOST_TEST_CONTEXT("misbehaviour " << static_cast<int>(how)) {
      TempDir dir;
      FakeBackend fake(dir.file("s"), Request::kGetProtocolFeatures, how);
      auto r = connect_to(dir.file("s"));
      BOOST_REQUIRE(!r.driver.has_value());
      BOOST_TEST(r.driver.error().code == Errc::kProtocol);
      BOOST_TEST(mentions(r.why, "GET_PROTOCOL_FEATURES"), r.why);
      BOOST_TEST(r.took.count() < 2000);
    }
  }
}

BOOST_AUTO_TEST_CASE(silent_backend_times_out_within_the_bound) {
  TempDir dir;
  FakeBackend fake(dir.file("s"), Request::kGetConfig, Misbehave::kSilent);
  auto r = connect_to(dir.file("s"), 300ms);
  BOOST_REQUIRE(!r.driver.has_value());
  BOOST_TEST(r.driver.error().code == Errc::kTimeout);
  BOOST_TEST(mentions(r.why, "GET_CONFIG"), r.why);
  BOOST_TEST(r.took.count() >= 250);
  BOOST_TEST(r.took.count() < 3000);
}

BOOST_AUTO_TEST_CASE(a_nacked_request_is_reported_by_name) {
  TempDir dir;
  FakeBackend fake(dir.file("s"), Request::kSetMemTable, Misbehave::kNack);
  auto r = connect_to(dir.file("s"));
  BOOST_REQUIRE(!r.driver.has_value());
  BOOST_TEST(r.driver.error().code == Errc::kProtocol);
  BOOST_TEST(mentions(r.why, "SET_MEM_TABLE"), r.why);
}

BOOST_AUTO_TEST_CASE(a_refused_config_read_is_reported) {
  TempDir dir;
  FakeBackend fake(dir.file("s"), Request::kGetConfig, Misbehave::kEmptyConfig);
  auto r = connect_to(dir.file("s"));
  BOOST_REQUIRE(!r.driver.has_value());
  BOOST_TEST(r.driver.error().code == Errc::kProtocol);
  BOOST_TEST(mentions(r.why, "GET_CONFIG"), r.why);
}

BOOST_AUTO_TEST_CASE(after_a_timeout_the_frontend_fails_fast) {
  TempDir dir;
  FakeBackend fake(dir.file("s"), Request::kGetFeatures, Misbehave::kSilent);
  FrontendOptions o;
  o.timeout = 200ms;
  auto fe = VhostUserFrontend::connect(dir.file("s"), o);
  BOOST_REQUIRE(fe.has_value());
  auto first = (*fe)->get_features();
  BOOST_REQUIRE(!first.has_value());
  BOOST_TEST(first.error().code == Errc::kTimeout);
  BOOST_TEST((*fe)->broken());
  // The stream is out of sync now: later requests fail at once, no new wait.
  const auto t0 = std::chrono::steady_clock::now();
  auto second = (*fe)->set_owner();
  BOOST_REQUIRE(!second.has_value());
  BOOST_TEST(second.error().code == Errc::kTimeout);
  BOOST_TEST((std::chrono::steady_clock::now() - t0) / 1ms < 50);
}

BOOST_AUTO_TEST_CASE(requests_needing_unnegotiated_protocol_features_are_refused_locally) {
  TempDir dir;
  FakeBackend fake(dir.file("s"), Request::kGetFeatures, Misbehave::kNone);
  auto fe = VhostUserFrontend::connect(dir.file("s"), FrontendOptions{});
  BOOST_REQUIRE(fe.has_value());
  std::array<std::byte, 8> cfg{};
  auto c = (*fe)->get_config(0, cfg);
  BOOST_REQUIRE(!c.has_value());
  BOOST_TEST(c.error().code == Errc::kUnsupported);
  auto q = (*fe)->get_queue_num();
  BOOST_REQUIRE(!q.has_value());
  BOOST_TEST(q.error().code == Errc::kUnsupported);
  BOOST_TEST(!(*fe)->broken());
  BOOST_TEST(fake.messages() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
