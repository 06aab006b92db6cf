// BridgeFollower: keeps a copy of one OVS bridge's OpenFlow table.
//
// How: `ovs-ofctl monitor <bridge> watch:` (OVS's flow monitor, NXST/OF1.4
// FLOW_MONITOR) runs as a child and tells us *that* the table changed; the
// table itself is then read with `ovs-ofctl dump-flows`, debounced, and
// again every `resync` period. The monitor's own event lines are not used
// as the truth because OVS prints them without the rule's priority (and
// without `drop` actions), so a rule could not be identified from them;
// dump-flows prints every rule completely. A burst of changes costs one
// dump; a monitor that dies is restarted and followed by a full dump.
// No OVS library and no DPDK: only the ovs-ofctl tool.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "offload/model/flow_spec.h"
#include "vhost-backend/base/result.h"

namespace viopool::offload {

struct FollowerOptions {
  // What ovs-ofctl is pointed at: a bridge name, or "unix:/path/br0.mgmt".
  std::string target;
  std::string ofctl = "ovs-ofctl";
  // OpenFlow versions dump-flows may speak: 1.3 shows meter instructions,
  // which an OpenFlow 1.0 dump silently leaves out.
  std::string protocols = "OpenFlow10,OpenFlow13";
  // OVS_RUNDIR for ovs-ofctl (its monitor opens a control socket there);
  // empty: the default.
  std::string rundir;
  std::chrono::milliseconds debounce{50};
  std::chrono::milliseconds resync{30000};
  std::chrono::milliseconds dump_timeout{10000};
};

struct FollowerStats {
  std::uint64_t dumps = 0;          // full reads of the table
  std::uint64_t events = 0;         // monitor lines announcing a change
  std::uint64_t monitor_starts = 0;
  std::uint64_t errors = 0;         // dumps that failed or did not parse
};

class BridgeFollower {
 public:
  // Called on the follower's thread with the whole table after every read.
  using OnTable = std::function<void(const std::vector<FlowSpec>& table)>;

  BridgeFollower(FollowerOptions o, OnTable on_table);
  ~BridgeFollower();
  BridgeFollower(const BridgeFollower&) = delete;
  BridgeFollower& operator=(const BridgeFollower&) = delete;

  // Reads the table once (so a bad target fails here, with ovs-ofctl's
  // message in `why`), then follows it on a thread.
  Result<void> start(std::string& why);
  void stop();
  // Asks for a full read now (API "resync").
  void resync();
  FollowerStats stats() const;
  std::string last_error() const;

  // One `ovs-ofctl dump-flows` of `o.target`, parsed.
  static Result<std::vector<FlowSpec>> dump(const FollowerOptions& o, std::string& why);

 private:
  void run();
  bool start_monitor();
  void stop_monitor();
  void read_monitor();

  FollowerOptions o_;
  OnTable on_table_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point dirty_since_{};
  FollowerStats stats_;
  std::string last_error_;
  pid_t monitor_pid_ = -1;
  int monitor_fd_ = -1;
  std::thread thread_;
  std::thread reader_;
};

}  // namespace viopool::offload
