// viopool-host serving virtio-net to dpdk-testpmd's virtio_user frontend:
// content integrity through an ethdev backend, multi-queue, restarts of
// either side, and runtime device changes under traffic.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/pcap.h"
#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

json loopback_device(const TempDir& dir, const std::string& name, unsigned qps = 1,
                     const std::string& mode = "server") {
  return json{{"name", name},
              {"socket", dir.file(name + ".vhost")},
              {"mode", mode},
              {"queue_pairs", qps},
              {"backend", {{"kind", "loopback"}}}};
}

// True once the device's guest→backend counter grew by `by` since `from`.
bool tx_grows(const HostProc& h, const std::string& dev, std::uint64_t from, std::uint64_t by,
              std::chrono::milliseconds limit = 15s) {
  return wait_until([&] { return h.total(dev, "tx_packets") >= from + by; }, limit);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(net)

BOOST_AUTO_TEST_CASE(frames_cross_the_device_unchanged_in_both_directions) {
  TempDir dir;
  constexpr std::size_t kFrames = 400;
  const auto to_backend = make_test_frames(kFrames, 0xA1);
  const auto to_guest = make_test_frames(kFrames, 0xB2);
  BOOST_REQUIRE(write_pcap(dir.file("guest_in.pcap"), to_backend));
  BOOST_REQUIRE(write_pcap(dir.file("backend_in.pcap"), to_guest));

  // Backend port: DPDK net_pcap, the same ethdev code path a NIC takes.
  json dev = {{"name", "net0"},
              {"socket", dir.file("net0.vhost")},
              {"backend",
               {{"kind", "ethdev"},
                {"devargs", "net_pcap0,rx_pcap=" + dir.file("backend_in.pcap") +
                                ",tx_pcap=" + dir.file("backend_out.pcap")}}}};
  HostProc host(dir, json{{"devices", {dev}}});

  // Frontend: testpmd forwards between its virtio_user port and a pcap port.
  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  o.topology = "paired";
  o.tx_first = false;
  o.extra_vdevs = {"net_pcap1,rx_pcap=" + dir.file("guest_in.pcap") +
                   ",tx_pcap=" + dir.file("guest_out.pcap")};
  Process tp = start_testpmd(dir, o);

  const bool moved = wait_until(
      [&] {
        return host.total("net0", "tx_packets") >= kFrames &&
               host.total("net0", "rx_packets") >= kFrames;
      },
      30s);
  BOOST_REQUIRE_MESSAGE(moved, "traffic did not complete; stats: "
                                   << host.stats("net0").dump() << "\ntestpmd log:\n"
                                   << tp.log());
  BOOST_TEST(host.total("net0", "tx_drops") == 0u);
  BOOST_TEST(host.total("net0", "rx_drops") == 0u);

  // Stop both writers so their pcap files are complete.
  tp.stop();
  BOOST_REQUIRE(host.api("device_del", {{"name", "net0"}}).status == 200);

  std::vector<Packet> backend_out, guest_out;
  BOOST_REQUIRE(read_pcap(dir.file("backend_out.pcap"), backend_out));
  BOOST_REQUIRE(read_pcap(dir.file("guest_out.pcap"), guest_out));
  BOOST_REQUIRE_EQUAL(backend_out.size(), kFrames);
  BOOST_REQUIRE_EQUAL(guest_out.size(), kFrames);
  for (std::size_t i = 0; i < kFrames; ++i) {
    BOOST_TEST_CONTEXT("frame " << i) {
      BOOST_TEST(backend_out[i] == to_backend[i]);
      BOOST_TEST(guest_out[i] == to_guest[i]);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_queue_pair_carries_traffic) {
  TempDir dir;
  HostProc host(dir, json{{"devices", {loopback_device(dir, "net0", 2)}}});
  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  o.queues = 2;
  Process tp = start_testpmd(dir, o);

  const bool both = wait_until(
      [&] {
        auto s = host.stats("net0");
        if (!s.contains("queues") || s["queues"].size() != 2) {
          return false;
        }
        for (const auto& q : s["queues"]) {
          if (q.value("tx_packets", 0ull) < 10000 || q.value("rx_packets", 0ull) < 10000) {
            return false;
          }
        }
        return true;
      },
      20s);
  BOOST_TEST(both, "stats: " << host.stats("net0").dump());
  auto d = host.device("net0");
  BOOST_TEST(d.value("active_queue_pairs", 0) == 2);
  BOOST_TEST(d.value("state", "") == "running");
  // MQ was negotiated (bit 22).
  BOOST_TEST((d["features"].value("negotiated", 0ull) >> 22 & 1u) == 1u);
}

BOOST_AUTO_TEST_CASE(frontend_restart_resumes_traffic_in_server_mode) {
  TempDir dir;
  HostProc host(dir, json{{"devices", {loopback_device(dir, "net0")}}});
  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  {
    Process tp = start_testpmd(dir, o);
    BOOST_REQUIRE(tx_grows(host, "net0", 0, 100000));
    tp.stop();
  }
  BOOST_TEST(wait_until([&] { return host.device("net0").value("state", "") == "waiting"; }, 10s));
  const auto before = host.total("net0", "tx_packets");
  Process tp2 = start_testpmd(dir, o);
  BOOST_TEST(tx_grows(host, "net0", before, 100000));
  auto d = host.device("net0");
  BOOST_TEST(d.value("state", "") == "running");
  BOOST_TEST(d.value("connections", 0) == 2);
}

BOOST_AUTO_TEST_CASE(backend_restart_reconnects_in_client_mode) {
  TempDir dir;
  // The frontend owns the socket (virtio_user server=1); viopool connects.
  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  o.virtio_server = true;
  o.forward_mode = "txonly";
  o.tx_first = false;
  Process tp = start_testpmd(dir, o);
  BOOST_REQUIRE(wait_until([&] { return ::access(o.vhost_socket.c_str(), F_OK) == 0; }, 20s));

  json dev = loopback_device(dir, "net0", 1, "client");
  dev["socket"] = o.vhost_socket;
  {
    HostProc host(dir, json{{"devices", {dev}}}, "host1");
    BOOST_REQUIRE(tx_grows(host, "net0", 0, 100000));
    BOOST_TEST(host.process().stop() == 0);  // clean exit on SIGTERM
  }
  BOOST_REQUIRE(tp.running());
  HostProc again(dir, json{{"devices", {dev}}}, "host2");
  BOOST_TEST(tx_grows(again, "net0", 0, 100000), "stats: " << again.stats("net0").dump()
                                                           << "\ntestpmd:\n" << tp.log());
  BOOST_TEST(tp.running());
}

BOOST_AUTO_TEST_CASE(devices_come_and_go_while_another_carries_traffic) {
  TempDir dir;
  HostProc host(dir, json{{"devices", {loopback_device(dir, "net0")}}});
  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  o.forward_mode = "txonly";
  o.tx_first = false;
  Process tp = start_testpmd(dir, o);
  BOOST_REQUIRE(tx_grows(host, "net0", 0, 10000));

  for (int round = 0; round < 3; ++round) {
    auto add = host.api("device_add", loopback_device(dir, "net1"));
    BOOST_TEST(add.status == 201, add.body.dump());
    BOOST_TEST(host.device("net1").value("state", "") == "waiting");
    const auto mark = host.total("net0", "tx_packets");
    BOOST_TEST(tx_grows(host, "net0", mark, 10000));
    auto del = host.api("device_del", {{"name", "net1"}});
    BOOST_TEST(del.status == 200, del.body.dump());
    BOOST_TEST(host.device("net1").empty());
  }
  const auto mark = host.total("net0", "tx_packets");
  BOOST_TEST(tx_grows(host, "net0", mark, 10000));
  auto d = host.device("net0");
  BOOST_TEST(d.value("state", "") == "running");
  BOOST_TEST(d.value("connections", 0) == 1);  // never disturbed
}

BOOST_AUTO_TEST_SUITE_END()
