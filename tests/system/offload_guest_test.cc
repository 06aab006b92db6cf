// Real offload on net_tap: this machine's kernel has no TC flower, Debian's
// stock guest kernel does. The tiny guest mounts the host's root over
// virtio-9p and runs tests/system/offload_in_guest.py there: Open vSwitch
// and viopool-offload on a net_tap port, OpenFlow rules added with ovs-ofctl.
// Checked: the rules become TC flower filters on the tap; frames the kernel
// sends into the tap obey them (a queue rule steers to its queue, a drop rule
// drops); MARK, which the tap lacks, falls back to the queue alone; METER is
// refused with the PMD's reason, and the rule below it that overlaps it
// stays on OVS (shadowed).
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/system/guest.h"

using nlohmann::json;
using namespace viopool::testing;

namespace {

std::uint64_t at(const json& counts, std::size_t q) {
  return counts.is_array() && q < counts.size() ? counts[q].get<std::uint64_t>() : 0;
}

// Boots the tiny guest with the host's / over virtio-9p (read-only, the
// build directory included) and runs tests/system/<script> there; returns
// its result line.
json run_in_guest(const std::string& script, unsigned memory_mb, unsigned cpus) {
  TempDir dir;
  const std::string wrapper = std::string(VIOPOOL_BUILD_DIR) + "/tests/system/" + script + "-" +
                              std::to_string(::getpid()) + ".sh";
  write_file(wrapper, "#!/bin/sh\nexec python3 " + std::string(VIOPOOL_SOURCE_DIR) +
                          "/tests/system/" + script + " " + VIOPOOL_BUILD_DIR + "\n");
  BOOST_REQUIRE(::chmod(wrapper.c_str(), 0755) == 0);
  GuestOptions o;
  o.check = "host";
  o.kernel_args = {"viopool.script=" + wrapper};
  o.qemu_args = {"-fsdev", "local,id=hostfs,path=/,security_model=none,readonly=on,multidevs=remap",
                 "-device", "virtio-9p-pci,fsdev=hostfs,mount_tag=hostroot",
                 "-smp", std::to_string(cpus)};
  o.memory_mb = memory_mb;
  o.timeout = std::chrono::seconds(400);
  Guest g(dir, o);
  const json r = g.wait_result();
  ::unlink(wrapper.c_str());
  BOOST_TEST_MESSAGE("guest: " << r.dump());
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(offload_in_a_guest)

BOOST_AUTO_TEST_CASE(ovs_rules_become_tc_flower_filters_that_steer_and_drop) {
  const json r = run_in_guest("offload_in_guest.py", 1024, 1);
  BOOST_REQUIRE_MESSAGE(r.value("ok", false), "guest result: " << r.dump());

  const json& rules = r["rules"];
  BOOST_TEST(rules["priority=300"]["state"] == "offloaded");
  BOOST_TEST(rules["priority=300"]["note"].get<std::string>().find("MARK") != std::string::npos);
  BOOST_TEST(rules["priority=200"]["state"] == "offloaded");
  BOOST_TEST(rules["priority=100"]["state"] == "offloaded");
  BOOST_TEST(rules["priority=150"]["state"] == "refused");  // METER: net_tap has no meters
  BOOST_TEST(rules["priority=150"]["reasons"][0].get<std::string>().find("refused by the NIC") !=
             std::string::npos);
  BOOST_TEST(rules["priority=50"]["state"] == "shadowed");
  BOOST_TEST(r.value("tc_filters", 0) >= 3);

  const json& landed = r["landed"];
  BOOST_TEST(at(landed["vxlan"], 1) >= 20u);  // udp dport 4789 → vm1's queue
  BOOST_TEST(at(landed["rest"], 2) >= 20u);   // udp from 10.9.0.8 → vm2's queue
  // Dropped: nothing reaches a vNIC queue (queue 0 may see the kernel's own chatter).
  BOOST_TEST(at(landed["blocked"], 1) + at(landed["blocked"], 2) + at(landed["blocked"], 3) == 0u);
  BOOST_TEST(at(landed["blocked"], 0) < 20u);
}

// Issue-level promise of the slow path: the operator's OVS policy holds for
// a flow whether OVS enforces it (the appliance without offload: pooled
// vNIC and uplink are vhost-user ports of the bridge) or the NIC does (the
// appliance restarted with offload: the rule is a TC flower filter on the
// tap and the dropped frames never reach OVS). tests/system/
// slowpath_in_guest.py tells the story step by step.
BOOST_AUTO_TEST_CASE(the_same_ovs_policy_holds_before_and_after_offload) {
  const json r = run_in_guest("slowpath_in_guest.py", 2048, 2);
  BOOST_REQUIRE_MESSAGE(r.value("ok", false), "guest result: " << r.dump());
  BOOST_TEST(r["ports"] == json::array({"uplink", "va"}));
  // Without the rule both sources reach the VM.
  BOOST_TEST(r["no_rule"]["blocked"] == 3);
  BOOST_TEST(r["no_rule"]["allowed"] == 3);
  // OVS enforces it.
  const json& slow = r["slow_path"];
  BOOST_TEST(slow["blocked"] == 0);
  BOOST_TEST(slow["allowed"].get<int>() >= 4);
  BOOST_TEST(slow["ovs_hits"].get<int>() >= 5);
  // The NIC enforces it: same outcome, OVS never sees the dropped frames.
  BOOST_TEST(r["offloaded_rule"]["state"] == "offloaded");
  const json& hw = r["offloaded"];
  BOOST_TEST(hw["blocked"] == 0);
  BOOST_TEST(hw["allowed"].get<int>() >= 4);
  BOOST_TEST(hw["ovs_hits"] == 0);
  BOOST_TEST(hw["tc_drops"].get<int>() >= 5);
}

BOOST_AUTO_TEST_SUITE_END()
