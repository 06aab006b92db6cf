// viopool-chaos between two UDP endpoints on loopback: datagrams reach the
// target at the configured loss rate, answers find their way back to the
// host, corruption flips bits, and the process reports what it did on SIGTERM.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "pool-manager/transport/udp_transport.h"
#include "tests/support/process.h"

using namespace viopool;
using namespace viopool::pool;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

std::size_t receive(Transport& t, std::vector<std::vector<std::byte>>& got, std::size_t want,
                    std::chrono::milliseconds limit, std::vector<PeerAddress>* from = nullptr) {
  std::vector<std::vector<std::byte>> bufs(32, std::vector<std::byte>(2048));
  std::vector<InFrame> in(32);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    for (std::size_t i = 0; i < in.size(); ++i) {
      in[i].buf = bufs[i];
    }
    const auto n = t.recv_burst(in);
    for (std::uint32_t i = 0; i < n; ++i) {
      got.emplace_back(in[i].buf.begin(), in[i].buf.begin() + in[i].len);
      if (from) {
        from->push_back(in[i].peer);
      }
    }
    if (n == 0) {
      std::this_thread::sleep_for(200us);
    }
  }
  return got.size();
}

std::uint16_t free_port() {
  auto t = UdpTransport::open({"127.0.0.1:0"});
  BOOST_REQUIRE(t.has_value());
  const std::string s = to_string((*t)->local());
  return static_cast<std::uint16_t>(std::stoi(s.substr(s.rfind(':') + 1)));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(chaos)

BOOST_AUTO_TEST_CASE(forwards_both_ways_with_loss_and_corruption) {
  TempDir dir;
  auto target = UdpTransport::open({"127.0.0.1:0"});
  auto host = UdpTransport::open({"127.0.0.1:0"});
  BOOST_REQUIRE(target.has_value());
  BOOST_REQUIRE(host.has_value());
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  Process chaos({build_path("pool-manager/chaos/viopool-chaos"), "--listen", listen, "--target",
                 to_string((*target)->local()), "--drop", "0.2", "--corrupt", "0.1", "--seed", "7"},
                SpawnOptions{dir.file("chaos.log")});
  std::this_thread::sleep_for(300ms);  // let it bind
  const auto to = parse_udp_address(listen).value();
  constexpr std::size_t kFrames = 2000;
  std::vector<std::vector<std::byte>> sent;
  // Fabric-shaped (a 56-byte head whose `length` says 44 bytes follow): a
  // UDP transport splits datagrams into frames by that field.
  const auto shaped = [](std::byte v) {
    std::vector<std::byte> f(100, v);
    f[28] = f[29] = f[30] = std::byte{0};
    f[31] = std::byte{44};
    return f;
  };
  for (std::size_t i = 0; i < kFrames; ++i) {
    sent.push_back(shaped(static_cast<std::byte>(i & 0xff)));
    const OutFrame f{sent.back(), to};
    while ((*host)->send_burst(std::span(&f, 1)) == 0) {
      std::this_thread::sleep_for(50us);
    }
    if (i % 64 == 63) {
      std::this_thread::sleep_for(1ms);  // stay below socket buffer limits
    }
  }
  std::vector<std::vector<std::byte>> got;
  std::vector<PeerAddress> from;
  receive(**target, got, kFrames, 3000ms, &from);
  // 20 % loss: 2000 ± a few binomial deviations.
  BOOST_TEST(got.size() > kFrames * 70 / 100);
  BOOST_TEST(got.size() < kFrames * 90 / 100);
  std::size_t corrupted = 0;
  for (const auto& g : got) {
    corrupted += g != shaped(g[0]) ? 1 : 0;
  }
  BOOST_TEST(corrupted > 0u);  // ~10 %; a flip of byte 0 itself is not seen here
  // Answers from the target reach the host through the same forwarder.
  std::vector<std::byte> answer(10, std::byte{0x42});
  const OutFrame back{answer, from.front()};
  for (int i = 0; i < 50; ++i) {
    (*target)->send_burst(std::span(&back, 1));
  }
  std::vector<std::vector<std::byte>> answers;
  receive(**host, answers, 30, 2000ms);
  BOOST_TEST(answers.size() >= 30u);
  chaos.stop(5s);
  const std::string log = read_file(dir.file("chaos.log"));
  const auto report = nlohmann::json::parse(log.substr(log.find('{')), nullptr, false);
  BOOST_REQUIRE(report.is_object());
  BOOST_TEST(report["to_target"].value("received", 0ull) == kFrames);
  // Everything not dropped arrived; a corrupted length field may split one
  // datagram into two frames at the receiver (then refused as malformed).
  const auto dropped = report["to_target"].value("dropped", 0ull);
  BOOST_TEST(got.size() >= kFrames - dropped);
  BOOST_TEST(got.size() <= kFrames - dropped + corrupted);
}

BOOST_AUTO_TEST_CASE(refuses_bad_arguments) {
  TempDir dir;
  Process p({build_path("pool-manager/chaos/viopool-chaos"), "--target", "nowhere:1"},
            SpawnOptions{dir.file("bad.log")});
  const int st = p.wait_exit(5s);
  BOOST_TEST((WIFEXITED(st) && WEXITSTATUS(st) == 2));
  BOOST_TEST(read_file(dir.file("bad.log")).find("--target") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
