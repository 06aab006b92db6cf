// Bad input to viopool-host — wrong configs, bad API calls, a misbehaving
// vhost-user frontend — gets a clear error and harms nothing else.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

json loopback_device(const TempDir& dir, const std::string& name, unsigned qps = 1) {
  return json{{"name", name},
              {"socket", dir.file(name + ".vhost")},
              {"queue_pairs", qps},
              {"backend", {{"kind", "loopback"}}}};
}

// A hand-driven vhost-user frontend speaking raw protocol messages.
class RawFrontend {
 public:
  explicit RawFrontend(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    BOOST_REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  }
  ~RawFrontend() { ::close(fd_); }

  void send(std::uint32_t request, const std::uint64_t* payload) {
    struct {
      std::uint32_t request, flags, size;
      std::uint64_t u64;
    } __attribute__((packed)) m{request, 0x1 /* version 1 */, payload ? 8u : 0u,
                                payload ? *payload : 0};
    const std::size_t len = payload ? sizeof(m) : 12;
    BOOST_REQUIRE(::write(fd_, &m, len) == static_cast<ssize_t>(len));
  }
  // Reads a reply carrying a u64; false if the peer closed or timed out.
  bool reply_u64(std::uint64_t& v) {
    std::uint8_t buf[20];
    std::size_t got = 0;
    while (got < sizeof(buf)) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) {
        return false;
      }
      ssize_t n = ::read(fd_, buf + got, sizeof(buf) - got);
      if (n <= 0) {
        return false;
      }
      got += static_cast<std::size_t>(n);
    }
    std::memcpy(&v, buf + 12, 8);
    return true;
  }
  // True if the backend closes the connection within 5 s.
  bool closed_by_peer() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) {
      return false;
    }
    char c;
    return ::read(fd_, &c, 1) == 0;
  }

 private:
  int fd_ = -1;
};

constexpr std::uint32_t kGetFeatures = 1;
constexpr std::uint32_t kSetFeatures = 2;
constexpr std::uint32_t kSetOwner = 3;
constexpr std::uint32_t kGetQueueNum = 17;

}  // namespace

BOOST_AUTO_TEST_SUITE(net_bad_input)

BOOST_AUTO_TEST_CASE(bad_config_files_stop_startup_with_a_message) {
  TempDir dir;
  struct Case {
    json config;
    const char* message;
  } cases[] = {
      {json{{"devices", {loopback_device(dir, "a")}}, {"colour", 1}}, "unknown key 'colour'"},
      {json{{"devices", {loopback_device(dir, "a"), loopback_device(dir, "a")}}},
       "'a' is used twice"},
      {json{{"devices", {json{{"name", "a"}, {"socket", "/tmp/x"}, {"backend", {{"kind", "x"}}}}}}},
       "unknown backend 'x'"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string cfg = dir.file("bad" + std::to_string(i) + ".json");
    const std::string log = dir.file("bad" + std::to_string(i++) + ".log");
    write_file(cfg, c.config.dump());
    Process p({build_path("vhost-backend/app/viopool-host"), "--config", cfg, "--no-huge"},
              SpawnOptions{log});
    const int st = p.wait_exit(20s);
    BOOST_TEST((WIFEXITED(st) && WEXITSTATUS(st) == 2), "status " << st);
    BOOST_TEST(read_file(log).find(c.message) != std::string::npos, read_file(log));
  }
}

BOOST_AUTO_TEST_CASE(bad_api_calls_get_clear_errors_and_change_nothing) {
  TempDir dir;
  HostProc host(dir, json{{"devices", {loopback_device(dir, "net0")}}});
  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  Process tp = start_testpmd(dir, o);
  BOOST_REQUIRE(wait_until([&] { return host.total("net0", "tx_packets") > 10000; }, 15s));

  struct Case {
    json body;
    int status;
    const char* code;
  };
  json dup_socket = loopback_device(dir, "other");
  dup_socket["socket"] = dir.file("net0.vhost");
  json live_socket = loopback_device(dir, "other2");
  live_socket["socket"] = host.control_socket();  // a live server's socket
  json bad_ethdev = loopback_device(dir, "eth");
  bad_ethdev["backend"] = {{"kind", "ethdev"}, {"devargs", "net_doesnotexist0"}};
  json bad_lcore = loopback_device(dir, "lc");
  bad_lcore["lcore"] = 7;
  json unknown = loopback_device(dir, "unk");
  unknown["speed"] = "fast";
  const Case cases[] = {
      {loopback_device(dir, "net0"), 409, "already_exists"},
      {dup_socket, 409, "already_exists"},
      {live_socket, 409, "already_exists"},
      {bad_ethdev, 404, "not_found"},
      {bad_lcore, 400, "invalid_argument"},
      {unknown, 400, "invalid_argument"},
      {json{{"name", 5}}, 400, "invalid_argument"},
  };
  for (const auto& c : cases) {
    auto r = host.api("device_add", c.body);
    BOOST_TEST_CONTEXT(c.body.dump()) {
      BOOST_TEST(r.status == c.status);
      BOOST_TEST(r.body["error"].value("code", "") == c.code);
      BOOST_TEST(!r.body["error"].value("message", "").empty());
    }
  }
  BOOST_TEST(host.api("device_del", {{"name", "ghost"}}).status == 404);
  BOOST_TEST(host.api("device_del", {{"nam", "net0"}}).status == 400);
  BOOST_TEST(host.api("device_stats", {{"name", "ghost"}}).status == 404);

  // Nothing was added, net0 kept its frontend and its traffic.
  auto list = host.api("device_list");
  BOOST_TEST(list.body["devices"].size() == 1u);
  const auto mark = host.total("net0", "tx_packets");
  BOOST_TEST(wait_until([&] { return host.total("net0", "tx_packets") > mark + 10000; }, 10s));
  BOOST_TEST(host.device("net0").value("connections", 0) == 1);
  BOOST_TEST(host.process().running());
}

BOOST_AUTO_TEST_CASE(frontend_acking_unoffered_features_is_disconnected_alone) {
  TempDir dir;
  HostProc host(dir, json{{"devices", {loopback_device(dir, "net0", 2), loopback_device(dir, "net1")}}});
  TestpmdOptions o;
  o.vhost_socket = dir.file("net1.vhost");
  Process tp = start_testpmd(dir, o);
  BOOST_REQUIRE(wait_until([&] { return host.total("net1", "tx_packets") > 10000; }, 15s));

  {
    RawFrontend f(dir.file("net0.vhost"));
    f.send(kSetOwner, nullptr);
    f.send(kGetQueueNum, nullptr);
    std::uint64_t qnum = 0;
    BOOST_REQUIRE(f.reply_u64(qnum));
    BOOST_TEST(qnum == 2u);  // the configured queue pairs, not the library maximum
    f.send(kGetFeatures, nullptr);
    std::uint64_t offered = 0;
    BOOST_REQUIRE(f.reply_u64(offered));
    BOOST_TEST((offered & 1u) == 0u);  // no checksum offload is offered
    const std::uint64_t bad = offered | 1u;
    f.send(kSetFeatures, &bad);
    BOOST_TEST(f.closed_by_peer());
  }
  BOOST_TEST(host.process().running());
  BOOST_TEST(host.device("net0").value("state", "") == "waiting");
  // The other device's traffic never stopped.
  const auto mark = host.total("net1", "tx_packets");
  BOOST_TEST(wait_until([&] { return host.total("net1", "tx_packets") > mark + 10000; }, 10s));
  // And net0 serves a well-behaved frontend afterwards.
  TestpmdOptions o0;
  o0.vhost_socket = dir.file("net0.vhost");
  o0.queues = 2;
  o0.tag = "tp0";
  Process tp0 = start_testpmd(dir, o0);
  BOOST_TEST(wait_until([&] { return host.total("net0", "tx_packets") > 10000; }, 15s));
}

BOOST_AUTO_TEST_SUITE_END()
