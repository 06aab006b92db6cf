// viopool-host serving virtio-net to dpdk-testpmd's virtio_user frontend:
// content integrity through an ethdev backend, multi-queue, restarts of
// either side, and runtime device changes under traffic.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

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

  // testpmd prints its port counters every second: wait until its pcap port
  // has sent all frames on, then stop it (a clean exit flushes the pcap file).
  const bool forwarded = wait_until(
      [&] {
        const std::string log = tp.log();
        const auto at = log.rfind("NIC statistics for port 1");
        if (at == std::string::npos) {
          return false;
        }
        const auto tx = log.find("TX-packets:", at);
        return tx != std::string::npos &&
               std::strtoull(log.c_str() + tx + 11, nullptr, 10) >= kFrames;
      },
      20s);
  BOOST_TEST(forwarded, "testpmd did not forward every frame to its pcap port; stats: "
                            << host.stats("net0").dump() << "\ntestpmd log:\n"
                            << tp.log());
  const int st = tp.stop(30s);
  BOOST_TEST((WIFEXITED(st) || (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)),
             "testpmd had to be killed: its pcap file may be incomplete");
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

BOOST_AUTO_TEST_CASE(an_idle_daemon_sleeps) {
  TempDir dir;
  HostProc host(dir, json{{"devices", {loopback_device(dir, "net0"), loopback_device(dir, "net1")}}});
  // One device with a frontend that sends a little and then stays quiet.
  TestpmdOptions o;
  o.vhost_socket = dir.file("net1.vhost");
  o.forward_mode = "rxonly";
  o.tx_first = false;
  Process tp = start_testpmd(dir, o);
  BOOST_REQUIRE(wait_until([&] { return host.device("net1").value("state", "") == "running"; }, 15s));
  std::this_thread::sleep_for(500ms);
  const long hz = ::sysconf(_SC_CLK_TCK);
  const long before = cpu_ticks(host.process().pid());
  std::this_thread::sleep_for(3s);
  const long used = cpu_ticks(host.process().pid()) - before;
  // A busy-polling worker would burn ~3 s of CPU here. Sleeping on kicks it
  // burns (almost) nothing; 10 % of a core leaves room for a noisy machine.
  BOOST_TEST(used < hz * 3 / 10, "viopool-host used " << used << " ticks of " << hz * 3);
}

BOOST_AUTO_TEST_CASE(traffic_flows_through_an_af_packet_port_in_a_namespace) {
  TempDir dir;
  NetNs ns("vpt-net-" + std::to_string(::getpid()));
  // veth pair inside the test's namespace: vpa is viopool's port, vpb the peer.
  BOOST_REQUIRE(run_shell("ip -n " + ns.name() + " link add vpa type veth peer name vpb") == 0);
  BOOST_REQUIRE(run_shell("ip -n " + ns.name() + " link set vpa up && ip -n " + ns.name() +
                          " link set vpb up") == 0);
  BOOST_REQUIRE(run_shell("ip -n " + ns.name() + " addr add 192.0.2.2/24 dev vpb") == 0);
  // The guest echoes frames back, so a static neighbour is all the peer needs.
  BOOST_REQUIRE(run_shell("ip -n " + ns.name() +
                          " neigh add 192.0.2.1 lladdr 02:00:00:00:00:01 dev vpb") == 0);

  json dev = {{"name", "net0"},
              {"socket", dir.file("net0.vhost")},
              {"backend", {{"kind", "ethdev"}, {"devargs", "net_af_packet0,iface=vpa"}}}};
  json cfg = {{"devices", {dev}}, {"control_socket", dir.file("host.sock")}};
  write_file(dir.file("host.json"), cfg.dump());
  Process host({build_path("vhost-backend/app/viopool-host"), "--config", dir.file("host.json"),
                "--no-huge", "--memory", "256"},
               SpawnOptions{dir.file("host.log"), ns.name()});
  BOOST_REQUIRE(wait_until(
      [&] { return api_call(dir.file("host.sock"), "device_list", json::object()).status == 200; },
      20s));
  auto total = [&](const char* k) {
    auto devs = api_call(dir.file("host.sock"), "device_stats", {{"name", "net0"}})
                    .body.value("devices", json::array());
    return devs.empty() ? 0 : devs[0].value("total", json::object()).value(k, std::uint64_t{0});
  };

  TestpmdOptions o;
  o.vhost_socket = dir.file("net0.vhost");
  o.tx_first = false;  // io + loop: the guest returns what it receives
  Process tp = start_testpmd(dir, o);
  BOOST_REQUIRE(wait_until(
      [&] {
        auto devs = api_call(dir.file("host.sock"), "device_list", json::object())
                        .body.value("devices", json::array());
        return !devs.empty() && devs[0].value("state", "") == "running";
      },
      20s));

  // 300 UDP datagrams from the peer, addressed inside the namespace only.
  BOOST_REQUIRE(ns.exec("for i in $(seq 300); do echo viopool > /dev/udp/192.0.2.1/9; done") == 0);
  BOOST_TEST(wait_until([&] { return total("rx_packets") >= 300 && total("tx_packets") >= 300; },
                        15s),
             "rx=" << total("rx_packets") << " tx=" << total("tx_packets") << "\n" << host.log());
  // What the guest sent back arrived at the peer's interface.
  const std::string link = dir.file("link.txt");
  run_shell("ip -n " + ns.name() + " -s link show vpb > " + link);
  std::istringstream ls(read_file(link));
  std::string line;
  long rx_packets = -1;
  while (std::getline(ls, line)) {
    if (line.find("RX:") != std::string::npos && std::getline(ls, line)) {
      std::istringstream(line) >> rx_packets >> rx_packets;  // bytes, then packets
      break;
    }
  }
  BOOST_TEST(rx_packets >= 300, read_file(link));
  tp.stop();
  host.stop();
}

BOOST_AUTO_TEST_SUITE_END()
