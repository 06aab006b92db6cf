// Pooled volumes end to end: viopool-appliance in an "appliance" network
// namespace serves a file over the fabric; viopool-host in a "host"
// namespace (joined to it by a veth pair) serves it to viopool-frontend as a
// vhost-user-blk device with a pool:// backend. Integrity is checked by
// content (the frontend's verify mode: patterned writes at random offsets
// and sizes, every block read back and compared), directly, through
// viopool-chaos at 5 % loss, 5 % reorder, 1 % duplication and 0.1 %
// corruption, and across an appliance crash and restart. A wrong key or the
// wrong volume is refused at device_add; a dead appliance fails requests at
// their deadline instead of hanging.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kKey = "00112233445566778899aabbccddeeff";
constexpr const char* kHostIp = "10.79.0.1";
constexpr const char* kApplianceIp = "10.79.0.2";
constexpr unsigned kMtu = 9000;
constexpr unsigned kFabricMtu = kMtu - 28;  // minus IPv4 and UDP headers

// Two namespaces joined by a veth pair, a volume file, the appliance.
struct Pool {
  TempDir dir;
  NetNs host_ns{"vph" + std::to_string(::getpid())};
  NetNs appl_ns{"vpa" + std::to_string(::getpid())};
  std::string image;
  Process appliance;

  Pool() {
    const std::string a = "vpv" + std::to_string(::getpid()) + "h";
    const std::string b = "vpv" + std::to_string(::getpid()) + "a";
    BOOST_REQUIRE(run_shell("ip link add " + a + " netns " + host_ns.name() + " mtu " +
                            std::to_string(kMtu) + " type veth peer name " + b + " netns " +
                            appl_ns.name() + " mtu " + std::to_string(kMtu)) == 0);
    BOOST_REQUIRE(host_ns.exec("ip addr add " + std::string(kHostIp) + "/24 dev " + a +
                               " && ip link set " + a + " up") == 0);
    BOOST_REQUIRE(appl_ns.exec("ip addr add " + std::string(kApplianceIp) + "/24 dev " + b +
                               " && ip link set " + b + " up") == 0);
    image = dir.file("vol0.img");
    std::ofstream(image).close();
    BOOST_REQUIRE(::truncate(image.c_str(), 64 << 20) == 0);
    json cfg = {
        {"listen", std::string(kApplianceIp) + ":7400"},
        {"mtu", kFabricMtu},
        {"api", ""},
        {"state", dir.file("appliance.db")},
        {"volumes",
         {{{"name", "vol0"}, {"function_id", 5}, {"key", kKey}, {"path", image}, {"queues", 2}}}}};
    write_file(dir.file("appliance.json"), cfg.dump(2));
    start_appliance();
  }

  void start_appliance() {
    appliance = Process({build_path("pool-manager/appliance/viopool-appliance"), "--config",
                         dir.file("appliance.json"), "--stats", dir.file("appliance-stats.json")},
                        SpawnOptions{dir.file("appliance.log"), appl_ns.name()});
    const bool up = wait_until(
        [&] { return appliance.log().find("serving 1 static volume") != std::string::npos; }, 10s);
    BOOST_REQUIRE_MESSAGE(up, "viopool-appliance did not start:\n" << appliance.log());
  }

  json appliance_stats() const {
    auto j = json::parse(read_file(dir.file("appliance-stats.json")), nullptr, false);
    return j.is_object() ? j : json::object();
  }

  json device(const std::string& name, const std::string& uri, const char* key = kKey,
              unsigned timeout_ms = 30000) const {
    return json{{"name", name},
                {"type", "blk"},
                {"socket", dir.file(name + ".vhost")},
                {"queues", 2},
                {"backend",
                 {{"kind", "pool"},
                  {"uri", uri},
                  {"function_id", 5},
                  {"key", key},
                  {"mtu", kFabricMtu},
                  {"timeout_ms", timeout_ms}}}};
  }

  std::string direct_uri() const { return "pool://" + std::string(kApplianceIp) + ":7400/vol0"; }

  int verify(const std::string& name, const std::string& runtime, json& report,
             const std::string& tag) const {
    return run_frontend(dir,
                        {"--socket", dir.file(name + ".vhost"), "--rw", "verify", "--bs", "64k",
                         "--qd", "16", "--queues", "2", "--runtime", runtime, "--io-timeout", "20"},
                        report, tag);
  }
};

std::uint64_t mismatches(const json& report) {
  return report.value("verify", json::object()).value("mismatches", ~0ull);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pooled_blk)

BOOST_AUTO_TEST_CASE(data_written_through_the_pool_reads_back_intact) {
  Pool p;
  HostProc host(p.dir, json{{"devices", {p.device("pvol", p.direct_uri())}}}, "host",
                p.host_ns.name());
  json report;
  BOOST_TEST(p.verify("pvol", "2", report, "verify") == 0);
  BOOST_TEST(mismatches(report) == 0u);
  BOOST_TEST(report.value("verify", json::object()).value("bytes", 0ull) > 0u);
  // The guest-visible capacity is the appliance's file.
  BOOST_TEST(host.device("pvol").value("capacity_bytes", 0ull) == 64ull << 20);
  const json b = host.stats("pvol").value("backend", json::object());
  BOOST_TEST(b.value("kind", "") == "pool");
  BOOST_TEST(b.value("requests", 0ull) > 0u);
  BOOST_TEST(b.value("timeouts", 1ull) == 0u);
  // Every request the host sent, the appliance served.
  BOOST_REQUIRE(wait_until([&] { return p.appliance_stats().value("requests", 0ull) > 0; }, 5s));
  BOOST_TEST(p.appliance_stats().value("errors", 1ull) == 0u);
  // The socket's own counters: frames both ways, none refused or cut.
  const json t = p.appliance_stats().value("transport", json::object());
  BOOST_TEST(t.value("sent", 0ull) > 0u);
  BOOST_TEST(t.value("received", 0ull) > 0u);
  BOOST_TEST(t.value("send_errors", 1ull) == 0u);
  BOOST_TEST(t.value("truncated", 1ull) == 0u);
  BOOST_TEST(t.value("gso_refused", 1ull) == 0u);
}

BOOST_AUTO_TEST_CASE(integrity_survives_loss_reorder_duplication_and_corruption) {
  Pool p;
  Process chaos(
      {build_path("pool-manager/chaos/viopool-chaos"), "--listen", "127.0.0.1:7500", "--target",
       std::string(kApplianceIp) + ":7400", "--drop", "0.05", "--reorder", "0.05", "--duplicate",
       "0.01", "--corrupt", "0.001", "--mtu", std::to_string(kFabricMtu), "--seed", "11"},
      SpawnOptions{p.dir.file("chaos.log"), p.host_ns.name()});
  BOOST_REQUIRE(
      wait_until([&] { return chaos.log().find("viopool-chaos: ") != std::string::npos; }, 5s));
  HostProc host(p.dir, json{{"devices", {p.device("pvol", "pool://127.0.0.1:7500/vol0")}}}, "host",
                p.host_ns.name());
  json report;
  BOOST_TEST(p.verify("pvol", "3", report, "verify") == 0);
  BOOST_TEST(mismatches(report) == 0u);
  const json b = host.stats("pvol").value("backend", json::object());
  BOOST_TEST(b.value("retransmits", 0ull) > 0u);  // losses were repaired
  BOOST_TEST(b.value("timeouts", 1ull) == 0u);
  chaos.stop();
  // The chaos report is the last line of its log.
  const std::string log = chaos.log();
  const auto j = json::parse(log.substr(log.rfind("{\"flows\"")), nullptr, false);
  BOOST_TEST_MESSAGE("chaos: " << log);
  BOOST_REQUIRE(j.is_object());
  BOOST_TEST(j["to_target"].value("dropped", 0ull) > 0u);
  BOOST_TEST(j["to_host"].value("dropped", 0ull) > 0u);
  BOOST_TEST(j["to_target"].value("duplicated", 0ull) + j["to_host"].value("duplicated", 0ull) >
             0u);
  // Corrupted frames that reached the appliance were refused, never applied.
  const json s = p.appliance_stats();
  if (j["to_target"].value("corrupted", 0ull) > 0) {
    BOOST_TEST(s.value("auth_failures", 0ull) + s.value("malformed", 0ull) > 0u);
  }
}

BOOST_AUTO_TEST_CASE(appliance_crash_and_restart_lose_nothing) {
  Pool p;
  HostProc host(p.dir, json{{"devices", {p.device("pvol", p.direct_uri())}}}, "host",
                p.host_ns.name());
  json report;
  int rc = -1;
  std::thread io([&] { rc = p.verify("pvol", "6", report, "verify"); });
  std::this_thread::sleep_for(2s);
  p.appliance.kill_hard();  // a crash: nothing flushed, nothing said
  std::this_thread::sleep_for(500ms);
  p.start_appliance();
  io.join();
  BOOST_TEST(rc == 0);
  if (rc != 0) {
    BOOST_TEST_MESSAGE("host log:\n" << host.process().log());
    BOOST_TEST_MESSAGE("appliance log:\n" << p.appliance.log());
  }
  BOOST_TEST(mismatches(report) == 0u);
  const json b = host.stats("pvol").value("backend", json::object());
  BOOST_TEST(b.value("reconnects", 0ull) > 0u);
  BOOST_TEST(b.value("timeouts", 1ull) == 0u);
  BOOST_TEST_MESSAGE("host backend after restart: " << b.dump());
}

BOOST_AUTO_TEST_CASE(wrong_key_or_volume_is_refused_at_device_add) {
  Pool p;
  HostProc host(p.dir, json{{"devices", json::array()}}, "host", p.host_ns.name());
  auto r = host.api("device_add",
                    p.device("forged", p.direct_uri(), "ffeeddccbbaa99887766554433221100"));
  BOOST_TEST(r.status >= 400);
  BOOST_TEST_MESSAGE("wrong key: " << r.body.dump());
  BOOST_TEST(r.body.dump().find("no answer") != std::string::npos);
  // The appliance counted the forged frames and answered none of them.
  BOOST_REQUIRE(
      wait_until([&] { return p.appliance_stats().value("auth_failures", 0ull) > 0; }, 5s));
  BOOST_TEST(p.appliance_stats().value("hellos", 1ull) == 0u);

  json other = p.device("other", "pool://" + std::string(kApplianceIp) + ":7400/vol9");
  r = host.api("device_add", other);
  BOOST_TEST(r.status >= 400);
  BOOST_TEST(r.body.dump().find("is volume 'vol0'") != std::string::npos);
  BOOST_TEST(host.device("forged").empty());
  BOOST_TEST(host.device("other").empty());
}

BOOST_AUTO_TEST_CASE(a_frozen_appliance_fails_requests_at_their_deadline) {
  Pool p;
  HostProc host(p.dir, json{{"devices", {p.device("pvol", p.direct_uri(), kKey, 500)}}}, "host",
                p.host_ns.name());
  BOOST_REQUIRE(::kill(p.appliance.pid(), SIGSTOP) == 0);
  json report;
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = run_frontend(p.dir,
                              {"--socket", p.dir.file("pvol.vhost"), "--rw", "randread", "--qd",
                               "4", "--runtime", "1", "--io-timeout", "10"},
                              report, "frozen");
  ::kill(p.appliance.pid(), SIGCONT);
  BOOST_TEST(rc == 1);  // requests failed (EIO), reported, nothing hung
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 15s));
  const json b = host.stats("pvol").value("backend", json::object());
  BOOST_TEST(b.value("timeouts", 0ull) > 0u);
  BOOST_TEST(host.stats("pvol")["total"].value("io_errors", 0ull) > 0u);
}

BOOST_AUTO_TEST_SUITE_END()
