// viopool-offload against a real Open vSwitch: ovsdb-server and the DPDK
// build of ovs-vswitchd run from a temporary directory (no systemd), with a
// netdev bridge; the agent follows it and installs on a net_tap port in its
// own network namespace. Rules changed with ovs-ofctl add-flow, mod-flows,
// del-flows and replace-flows show up in `viopoolctl offload show` within a
// bounded time; this kernel has no TC flower, so the tap refuses every rule
// and each refusal carries the NIC's own reason; rules with no rte_flow form
// say which OpenFlow feature stops them.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "tests/support/ovs.h"
#include "tests/support/process.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

// The OVS the agent follows (no DPDK ports on it), with no flows.
struct Ovs {
  TempDir dir;
  OvsProc proc{dir, false};
  std::string mgmt = proc.mgmt();
  Ovs() { BOOST_REQUIRE(proc.ofctl("del-flows") == 0); }
  int ofctl(const std::string& cmd, const std::string& args = "") const {
    return proc.ofctl(cmd, args);
  }
};

struct Agent {
  const Ovs& ovs;
  NetNs ns{"vpof" + std::to_string(::getpid())};
  Process proc;
  std::string socket;

  explicit Agent(const Ovs& o) : ovs(o) {
    socket = ovs.dir.file("offload.sock");
    const json cfg = {
        {"bridge", "unix:" + ovs.mgmt},
        {"ovs_rundir", ovs.dir.path()},
        {"control_socket", socket},
        {"resync_ms", 60000},  // the monitor, not the resync, must bring changes
        {"uplinks", {{{"name", "up0"}, {"ofport", 1}, {"devargs", "net_tap0,iface=vpof0"},
                      {"rx_queues", 4}}}},
        {"vnics", {{{"name", "vm1"}, {"ofport", 10}, {"uplink", "up0"}, {"queue", 1},
                    {"mark", 101}, {"mac", "52:54:00:00:00:01"}},
                   {{"name", "vm2"}, {"ofport", 11}, {"uplink", "up0"}, {"queue", 2},
                    {"mac", "52:54:00:00:00:02"}}}}};
    write_file(ovs.dir.file("offload.json"), cfg.dump(2));
    proc = Process({build_path("offload/viopool-offload"), "--config", ovs.dir.file("offload.json"),
                    "--no-huge"},
                   SpawnOptions{ovs.dir.file("offload.log"), ns.name()});
    BOOST_REQUIRE_MESSAGE(
        wait_until([&] { return proc.log().find("following") != std::string::npos; }, 20s),
        "viopool-offload did not start:\n" << proc.log());
  }
  ~Agent() { proc.stop(); }

  json ctl(const std::string& cmd) const {
    const std::string out = ovs.dir.file("ctl.out");
    if (run_shell(build_path("integration/viopoolctl/viopoolctl") + " --json offload --socket " +
                  socket + " " + cmd + " > " + out) != 0) {
      return json();
    }
    return json::parse(read_file(out), nullptr, false);
  }
  json show() const { return ctl("show"); }
  // The rule whose text starts with `prefix`, or null.
  json rule(const std::string& prefix) const {
    const json s = show();
    if (!s.is_object()) {
      return json();
    }
    for (const auto& r : s["rules"]) {
      if (r["rule"].get<std::string>().rfind(prefix, 0) == 0) {
        return r;
      }
    }
    return json();
  }
  std::size_t count() const {
    const json s = show();
    return s.is_object() ? s["rules"].size() : 0;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(offload_follows_ovs)

BOOST_AUTO_TEST_CASE(the_agent_follows_every_change_and_reports_why_nothing_offloads_here) {
  Ovs ovs;
  BOOST_REQUIRE(ovs.ofctl("add-flow", "'priority=100,in_port=1,ip,nw_dst=10.0.0.1,actions=output:10'") == 0);
  Agent agent(ovs);
  // Present at start.
  BOOST_REQUIRE(wait_until([&] { return !agent.rule("table=0,priority=100").is_null(); }, 5s));

  // add-flow: an offloadable rule, refused by this tap with the NIC's reason;
  // a rule no rte_flow can express, with the OpenFlow feature.
  BOOST_REQUIRE(ovs.ofctl("add-flow", "'priority=200,in_port=1,tcp,tp_dst=22,actions=drop'") == 0);
  BOOST_REQUIRE(ovs.ofctl("add-flow", "'priority=50,in_port=1,ct_state=+trk,ip,actions=drop'") == 0);
  BOOST_REQUIRE(ovs.ofctl("add-flow", "'priority=40,in_port=1,actions=learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[]),output:11'") == 0);
  BOOST_REQUIRE(wait_until([&] { return agent.count() == 4; }, 5s));
  const json ssh = agent.rule("table=0,priority=200");
  BOOST_TEST(ssh["state"] == "refused");
  BOOST_TEST_MESSAGE("tap refusal: " << ssh["reasons"].dump());
  const std::string reason = ssh["reasons"][0].get<std::string>();
  BOOST_TEST(reason.find("refused by the NIC") != std::string::npos);
  // The PMD's own words after the stage that refused ("create: ... Kernel
  // too old for flower support: File exists" with this kernel).
  const auto v = reason.find("validate: ");
  const auto c = reason.find("create: ");
  const auto stage = v != std::string::npos ? v + 10 : c != std::string::npos ? c + 8 : 0;
  BOOST_TEST(stage > 0u);
  BOOST_TEST(reason.size() > stage + 5);
  BOOST_TEST(agent.rule("table=0,priority=50")["state"] == "not_offloadable");
  BOOST_TEST(agent.rule("table=0,priority=50")["reasons"][0] == "ct_state");
  BOOST_TEST(agent.rule("table=0,priority=40")["reasons"][0] == "learn");

  // mod-flows: the new actions are what the agent shows.
  BOOST_REQUIRE(ovs.ofctl("mod-flows", "'in_port=1,ip,nw_dst=10.0.0.1,actions=output:11'") == 0);
  BOOST_TEST(wait_until(
      [&] {
        return agent.rule("table=0,priority=100")["rule"].get<std::string>().find("output:11") !=
               std::string::npos;
      },
      5s));

  // del-flows (strict): gone.
  BOOST_REQUIRE(ovs.ofctl("--strict del-flows", "'priority=200,in_port=1,tcp,tp_dst=22'") == 0);
  BOOST_TEST(wait_until([&] { return agent.count() == 3; }, 5s));
  BOOST_TEST(agent.rule("table=0,priority=200").is_null());

  // replace-flows: exactly the file's rules remain.
  write_file(ovs.dir.file("flows.txt"),
             "priority=7,in_port=1,udp,tp_dst=53,actions=output:10\n"
             "priority=6,in_port=1,ipv6,actions=drop\n");
  BOOST_REQUIRE(ovs.ofctl("replace-flows", ovs.dir.file("flows.txt")) == 0);
  BOOST_TEST(wait_until([&] { return agent.count() == 2 && !agent.rule("table=0,priority=7").is_null(); },
                        5s));
  BOOST_TEST(agent.rule("table=0,priority=100").is_null());

  const json stats = agent.ctl("stats");
  BOOST_TEST(stats.value("refused", 0) == 2);
  BOOST_TEST(stats.value("nic_rules", 1) == 0);  // nothing installed, nothing left behind
  BOOST_TEST(stats["follower"].value("events", 0) > 0);
  BOOST_TEST_MESSAGE("stats: " << stats.dump());
}

BOOST_AUTO_TEST_CASE(a_bridge_that_cannot_be_read_is_an_error_at_start) {
  TempDir dir;
  const json cfg = {{"bridge", "unix:" + dir.file("nope.mgmt")},
                    {"control_socket", dir.file("o.sock")},
                    {"uplinks", {{{"name", "up0"}, {"devargs", "net_null0"}}}}};
  write_file(dir.file("o.json"), cfg.dump());
  Process p({build_path("offload/viopool-offload"), "--config", dir.file("o.json"), "--no-huge"},
            SpawnOptions{dir.file("o.log")});
  const int st = p.wait_exit(20s);
  BOOST_TEST(st != -1);
  BOOST_TEST(p.log().find("dump-flows") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
