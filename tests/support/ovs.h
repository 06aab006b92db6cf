// Open vSwitch run by a test, without systemd: ovsdb-server and the DPDK
// build of ovs-vswitchd from the test's directory, with one netdev bridge
// br0 (the default NORMAL flow). With `dpdk`, DPDK is initialised
// (hugepages, capped; an idle PMD sleeps) so vhost-user ports work.
// Stopped, by PID, at destruction.
#pragma once

#include <string>

#include "tests/support/process.h"

namespace viopool::testing {

class OvsProc {
 public:
  OvsProc(const TempDir& dir, bool dpdk);
  ~OvsProc();
  OvsProc(const OvsProc&) = delete;
  OvsProc& operator=(const OvsProc&) = delete;

  const TempDir& dir() const noexcept { return dir_; }
  std::string db() const { return "unix:" + dir_.file("db.sock"); }
  std::string mgmt() const { return dir_.file("br0.mgmt"); }
  // ovs-vsctl ARGS / ovs-ofctl CMD unix:br0.mgmt ARGS (bounded); exit codes.
  int vsctl(const std::string& args) const;
  int ofctl(const std::string& cmd, const std::string& args = "") const;

 private:
  const TempDir& dir_;
  Process db_;
  Process vswitchd_;
};

}  // namespace viopool::testing
