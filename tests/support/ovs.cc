#include "tests/support/ovs.h"

#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>

namespace viopool::testing {

namespace {
const char* kVswitchd = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
}  // namespace

OvsProc::OvsProc(const TempDir& dir, bool dpdk) : dir_(dir) {
  using namespace std::chrono_literals;
  BOOST_REQUIRE(run_shell("ovsdb-tool create " + dir.file("conf.db") +
                          " /usr/share/openvswitch/vswitch.ovsschema") == 0);
  db_ = Process({"ovsdb-server", dir.file("conf.db"), "--remote=punix:" + dir.file("db.sock"),
                 "--unixctl=" + dir.file("ovsdb.ctl"), "--pidfile=" + dir.file("ovsdb.pid"),
                 "--log-file=" + dir.file("ovsdb.log")},
                SpawnOptions{dir.file("ovsdb.out")});
  BOOST_REQUIRE(wait_until([&] { return ::access(dir.file("db.sock").c_str(), F_OK) == 0; }, 10s));
  BOOST_REQUIRE(vsctl("--no-wait init") == 0);
  if (dpdk) {
    BOOST_REQUIRE(vsctl("--no-wait set Open_vSwitch . other_config:dpdk-init=true "
                        "'other_config:dpdk-extra=--no-pci --file-prefix=vpovs" +
                        std::to_string(::getpid()) +
                        "' other_config:dpdk-socket-mem=256 other_config:dpdk-socket-limit=300 "
                        "other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 "
                        "other_config:pmd-maxsleep=1000") == 0);
  }
  vswitchd_ = Process({"env", "OVS_RUNDIR=" + dir.path(), kVswitchd, "unix:" + dir.file("db.sock"),
                       "--unixctl=" + dir.file("vswitchd.ctl"),
                       "--pidfile=" + dir.file("vswitchd.pid"),
                       "--log-file=" + dir.file("vswitchd.log")},
                      SpawnOptions{dir.file("vswitchd.out")});
  BOOST_REQUIRE(vsctl("add-br br0 -- set bridge br0 datapath_type=netdev") == 0);
  BOOST_REQUIRE_MESSAGE(
      wait_until([&] { return ::access(mgmt().c_str(), F_OK) == 0; }, 20s),
      "ovs-vswitchd did not create the bridge:\n" << read_file(dir.file("vswitchd.log")));
}

OvsProc::~OvsProc() {
  vswitchd_.stop();
  db_.stop();
}

int OvsProc::vsctl(const std::string& args) const {
  return run_shell("ovs-vsctl --db=" + db() + " --timeout=10 " + args);
}

int OvsProc::ofctl(const std::string& cmd, const std::string& args) const {
  return run_shell("OVS_RUNDIR=" + dir_.path() + " ovs-ofctl " + cmd + " unix:" + mgmt() + " " +
                   args);
}

}  // namespace viopool::testing
