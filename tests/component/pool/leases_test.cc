// The appliance as a product, end to end: viopool-appliance in an
// "appliance" namespace owns a directory of storage; two viopool-host
// instances in "host-a" and "host-b" namespaces (one bridge joins all three)
// lease volumes from it through its control API at device_add and serve them
// to viopool-frontend. Exclusive leases keep host B off host A's volume; host
// A is killed, its lease expires and host B takes the volume; carvings and
// leases survive an appliance restart while I/O runs; an IOPS limit holds one
// tenant back without slowing the other; capacity is never oversubscribed
// and bad requests are refused with a reason.
#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApplianceIp = "10.81.0.254";
constexpr const char* kApi = "10.81.0.254:7480";

struct Site {
  TempDir dir;
  std::string tag = std::to_string(::getpid());
  NetNs appl_ns{"vlp" + tag};
  NetNs a_ns{"vla" + tag};
  NetNs b_ns{"vlb" + tag};
  Process appliance;

  Site() {
    BOOST_REQUIRE(appl_ns.exec("ip link add br0 type bridge && ip addr add " +
                               std::string(kApplianceIp) + "/24 dev br0 && ip link set br0 up") ==
                  0);
    int n = 1;
    for (const NetNs* ns : {&a_ns, &b_ns}) {
      const std::string h = "vl" + tag + "h" + std::to_string(n);
      const std::string p = "vl" + tag + "p" + std::to_string(n);
      BOOST_REQUIRE(run_shell("ip link add " + h + " netns " + ns->name() + " type veth peer name " +
                              p + " netns " + appl_ns.name()) == 0);
      BOOST_REQUIRE(ns->exec("ip addr add 10.81.0." + std::to_string(n) + "/24 dev " + h +
                             " && ip link set " + h + " up && ip link set lo up") == 0);
      BOOST_REQUIRE(appl_ns.exec("ip link set " + p + " master br0 && ip link set " + p + " up") ==
                    0);
      ++n;
    }
    std::filesystem::create_directory(dir.file("ssd"));
    json cfg = {{"listen", std::string(kApplianceIp) + ":7400"},
                {"api", kApi},
                {"state", dir.file("appliance.db")},
                {"lease_ttl_ms", 1500},
                {"inventory",
                 {{{"name", "ssd"},
                   {"kind", "directory"},
                   {"path", dir.file("ssd")},
                   {"capacity", "256M"},
                   {"overcommit", 2}}}}};
    write_file(dir.file("appliance.json"), cfg.dump(2));
    start_appliance();
  }

  void start_appliance() {
    appliance = Process({build_path("pool-manager/appliance/viopool-appliance"), "--config",
                         dir.file("appliance.json")},
                        SpawnOptions{dir.file("appliance.log"), appl_ns.name()});
    const bool up = wait_until(
        [&] { return appliance.log().find("control API listening") != std::string::npos; }, 10s);
    BOOST_REQUIRE_MESSAGE(up, "viopool-appliance did not start:\n" << appliance.log());
  }

  // viopoolctl --json pool <args> from host A's namespace; its exit code,
  // the reply in `out` and the error text in `err`.
  int pool(const std::string& args, json& out, std::string* err = nullptr) const {
    return viopoolctl(dir, a_ns, std::string("-a ") + kApi + " pool " + args, out, err);
  }
  json pool(const std::string& args) const {
    json out;
    BOOST_REQUIRE_MESSAGE(pool(args, out) == 0, "viopoolctl pool " << args << " failed");
    return out;
  }

  json host_config(const std::string& id) const { return {{"host_id", id}, {"devices", json::array()}}; }

  static json leased(const TempDir& dir, const std::string& name, const json& pick) {
    json b = {{"kind", "pool"}, {"appliance", kApi}, {"mtu", 1472}, {"timeout_ms", 20000}};
    b.update(pick);
    return {{"name", name}, {"type", "blk"}, {"socket", dir.file(name + ".vhost")},
            {"queues", 2},  {"backend", b}};
  }

  int io(const std::string& dev, const std::string& rw, const std::string& runtime, json& report,
         const std::string& tag_) const {
    return run_frontend(dir,
                        {"--socket", dir.file(dev + ".vhost"), "--rw", rw, "--bs",
                         rw == "verify" ? "64k" : "4k", "--qd", "16", "--queues", "2", "--runtime",
                         runtime, "--io-timeout", "20"},
                        report, tag_);
  }
};

std::uint64_t mismatches(const json& report) {
  return report.value("verify", json::object()).value("mismatches", ~0ull);
}

std::size_t leases_of(const Site& s, const std::string& host) {
  return s.pool("leases --host " + host).value("leases", json::array()).size();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pool_leases)

BOOST_AUTO_TEST_CASE(two_hosts_share_the_pool_and_a_dead_hosts_lease_moves) {
  Site s;
  BOOST_REQUIRE(s.pool("carve v1 --device ssd --size 64M --thin --queues 2")["name"] == "v1");
  BOOST_REQUIRE(s.pool("carve v2 --device ssd --size 32M --queues 2")["name"] == "v2");
  HostProc a(s.dir, s.host_config("host-a"), "host-a", s.a_ns.name());
  HostProc b(s.dir, s.host_config("host-b"), "host-b", s.b_ns.name());

  auto r = a.api("device_add", Site::leased(s.dir, "pa", {{"volume", "v1"}}));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  json report;
  BOOST_TEST(s.io("pa", "verify", "2", report, "a-verify") == 0);
  BOOST_TEST(mismatches(report) == 0u);
  const json lease = a.device("pa").value("lease", json::object());
  BOOST_TEST(lease.value("state", "") == "active");
  BOOST_TEST(lease.value("function", "") == "v1");
  BOOST_TEST(a.device("pa").value("capacity_bytes", 0ull) == 64ull << 20);

  // Host B cannot have host A's volume; asked for any volume of 16M, it gets v2.
  r = b.api("device_add", Site::leased(s.dir, "pb", {{"volume", "v1"}}));
  BOOST_TEST(r.status == 409);
  BOOST_TEST(r.body.dump().find("host-a") != std::string::npos);
  r = b.api("device_add", Site::leased(s.dir, "pb2", {{"lease_size", "16M"}}));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  BOOST_TEST(b.device("pb2")["lease"].value("function", "") == "v2");
  r = b.api("device_add", Site::leased(s.dir, "pb3", {{"lease_size", "16M"}}));
  BOOST_TEST(r.status == 507);  // nothing free any more
  BOOST_TEST(b.device("pb3").empty());

  // Host A dies: its lease runs out (TTL 1.5 s) and v1 is free for host B.
  BOOST_TEST(leases_of(s, "host-a") == 1u);
  a.process().kill_hard();
  BOOST_TEST(wait_until([&] { return leases_of(s, "host-a") == 0; }, 10s));
  r = b.api("device_add", Site::leased(s.dir, "pb", {{"volume", "v1"}}));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  BOOST_TEST(s.io("pb", "verify", "2", report, "b-verify") == 0);
  BOOST_TEST(mismatches(report) == 0u);
  // Renewals keep host B's leases alive well past their TTL.
  std::this_thread::sleep_for(2s);
  BOOST_TEST(leases_of(s, "host-b") == 2u);
  BOOST_TEST(b.device("pb")["lease"].value("renewals", 0ull) > 0u);
  // Deleting the device releases its lease at once.
  BOOST_TEST(b.api("device_del", {{"name", "pb"}}).status == 200);
  BOOST_TEST(leases_of(s, "host-b") == 1u);
}

BOOST_AUTO_TEST_CASE(a_reassigned_lease_fences_its_old_holder) {
  Site s;
  BOOST_REQUIRE(s.pool("carve v1 --device ssd --size 32M --thin --queues 2")["name"] == "v1");
  HostProc a(s.dir, s.host_config("host-a"), "host-a", s.a_ns.name());
  HostProc b(s.dir, s.host_config("host-b"), "host-b", s.b_ns.name());
  auto r = a.api("device_add", Site::leased(s.dir, "pa", {{"volume", "v1"}, {"timeout_ms", 1000}}));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  json report;
  BOOST_TEST(s.io("pa", "verify", "1", report, "a-before") == 0);
  const auto id = a.device("pa")["lease"].value("id", 0ull);
  // The operator moves the lease to host B (the step before a migration).
  const json moved = s.pool("reassign " + std::to_string(id) + " --host host-b");
  BOOST_TEST(moved["host"] == "host-b");
  BOOST_TEST(moved["key"].get<std::string>().size() == 32u);
  // Host A's next renewal is refused: its lease is lost, and its I/O fails
  // (its key no longer opens a channel) instead of reaching the volume.
  BOOST_TEST(wait_until([&] { return a.device("pa")["lease"].value("state", "") == "lost"; }, 5s));
  BOOST_TEST(s.io("pa", "randread", "1", report, "a-after") != 0);
  // Host B takes the volume (its own lease in place of the moved one).
  r = b.api("device_add", Site::leased(s.dir, "pb", {{"volume", "v1"}}));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  BOOST_TEST(s.io("pb", "verify", "1", report, "b") == 0);
  BOOST_TEST(mismatches(report) == 0u);
  BOOST_TEST(leases_of(s, "host-b") == 1u);
}

BOOST_AUTO_TEST_CASE(appliance_restart_keeps_carvings_and_leases_under_io) {
  Site s;
  BOOST_REQUIRE(s.pool("carve v1 --device ssd --size 64M --thin --queues 2")["name"] == "v1");
  HostProc a(s.dir, s.host_config("host-a"), "host-a", s.a_ns.name());
  auto r = a.api("device_add",
                 Site::leased(s.dir, "pa", {{"volume", "v1"}, {"lease_ttl_ms", 20000}}));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  const json before = s.pool("leases");
  json report;
  int rc = -1;
  std::thread io([&] { rc = s.io("pa", "verify", "5", report, "verify"); });
  std::this_thread::sleep_for(1500ms);
  BOOST_TEST(s.appliance.stop() == 0);  // SIGTERM
  s.start_appliance();
  io.join();
  BOOST_TEST(rc == 0);
  BOOST_TEST(mismatches(report) == 0u);
  const json fns = s.pool("list")["functions"];
  BOOST_REQUIRE(fns.size() == 1u);
  BOOST_TEST(fns[0]["name"] == "v1");
  BOOST_TEST(fns[0]["state"] == "leased");
  const json after = s.pool("leases");
  BOOST_REQUIRE(after["leases"].size() == 1u);
  BOOST_TEST(after["leases"][0]["id"] == before["leases"][0]["id"]);
  BOOST_TEST(a.stats("pa").value("backend", json::object()).value("reconnects", 0ull) > 0u);
}

BOOST_AUTO_TEST_CASE(an_iops_limit_holds_one_tenant_back_and_not_the_other) {
  Site s;
  s.pool("carve slow --device ssd --size 32M --thin --queues 2 --iops-limit 300");
  s.pool("carve fast --device ssd --size 32M --thin --queues 2");
  HostProc a(s.dir, s.host_config("host-a"), "host-a", s.a_ns.name());
  HostProc b(s.dir, s.host_config("host-b"), "host-b", s.b_ns.name());
  BOOST_REQUIRE(a.api("device_add", Site::leased(s.dir, "ps", {{"volume", "slow"}})).status == 201);
  BOOST_REQUIRE(b.api("device_add", Site::leased(s.dir, "pf", {{"volume", "fast"}})).status == 201);
  json slow, fast;
  int rs = -1;
  std::thread t([&] { rs = s.io("ps", "randread", "3", slow, "slow"); });
  const int rf = s.io("pf", "randread", "3", fast, "fast");
  t.join();
  BOOST_REQUIRE(rs == 0);
  BOOST_REQUIRE(rf == 0);
  const double slow_iops = slow["read"].value("iops", 0.0);
  const double fast_iops = fast["read"].value("iops", 0.0);
  BOOST_TEST_MESSAGE("slow " << slow_iops << " IOPS, fast " << fast_iops << " IOPS");
  BOOST_TEST(slow_iops <= 300 * 1.25);  // the limit, plus one burst over 3 s
  BOOST_TEST(slow_iops > 100.0);
  BOOST_TEST(fast_iops > 3 * slow_iops);
  const json shown = s.pool("show slow");
  BOOST_TEST(shown["stats"].value("throttled", 0ull) > 0u);
}

BOOST_AUTO_TEST_CASE(capacity_and_bad_requests_are_refused_with_a_reason) {
  Site s;
  json out;
  std::string err;
  BOOST_TEST(s.pool("carve big --device ssd --size 200M", out, &err) == 0);
  BOOST_TEST(s.pool("carve big2 --device ssd --size 100M", out, &err) != 0);  // thick > 256M
  BOOST_TEST(err.find("507") != std::string::npos);
  BOOST_TEST(s.pool("carve big --device ssd --size 1M --thin", out, &err) != 0);
  BOOST_TEST(err.find("already exists") != std::string::npos);
  BOOST_TEST(s.pool("carve neg --device ssd --size -5M", out, &err) != 0);
  BOOST_TEST(err.find("400") != std::string::npos);
  BOOST_TEST(s.pool("lease --host 'no spaces'  --function big", out, &err) != 0);
  BOOST_TEST(err.find("host") != std::string::npos);
  BOOST_TEST(s.pool("release 999", out, &err) != 0);
  BOOST_TEST(err.find("404") != std::string::npos);
  const json fns = s.pool("list")["functions"];
  BOOST_REQUIRE(fns.size() == 1u);
  BOOST_TEST(fns[0]["name"] == "big");
  BOOST_TEST(s.pool("leases")["leases"].empty());
  // A leased function cannot be deleted; released, it can.
  const json l = s.pool("lease --host h1 --function big");
  BOOST_TEST(s.pool("delete big", out, &err) != 0);
  BOOST_TEST(err.find("h1") != std::string::npos);
  s.pool("release " + std::to_string(l["id"].get<std::uint64_t>()));
  s.pool("delete big");
  BOOST_TEST(s.pool("inventory")["devices"][0]["committed"] == 0);
}

BOOST_AUTO_TEST_SUITE_END()
