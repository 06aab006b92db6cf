// Drives real viopool-host and dpdk-testpmd processes for component tests:
// configs in a temp dir, DPDK without hugepages (no files left behind),
// control API calls over the unix socket.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace viopool::testing {

struct ApiResult {
  int status = 0;  // HTTP status, 0 if unreachable
  nlohmann::json body;  // always an object (empty if unreachable or not JSON)
};

ApiResult api_call(const std::string& socket, const std::string& op, const nlohmann::json& body);

class HostProc {
 public:
  // Writes `config` (control_socket is filled in) and starts viopool-host
  // (inside `netns` if given); waits until the control socket answers.
  HostProc(const TempDir& dir, nlohmann::json config, const std::string& tag = "host",
           const std::string& netns = "");
  ApiResult api(const std::string& op, const nlohmann::json& body = nlohmann::json::object()) const;
  nlohmann::json device(const std::string& name) const;      // from device_list
  nlohmann::json stats(const std::string& name) const;       // device_stats entry
  std::uint64_t total(const std::string& name, const char* counter) const;
  Process& process() { return proc_; }
  const std::string& control_socket() const { return socket_; }

 private:
  std::string socket_;
  Process proc_;
};

struct TestpmdOptions {
  std::string vhost_socket;
  unsigned queues = 1;
  bool virtio_server = false;             // virtio_user acts as vhost-user server
  std::string forward_mode = "io";
  std::string topology = "loop";
  bool tx_first = true;
  std::vector<std::string> extra_vdevs;   // e.g. a net_pcap port
  std::string tag = "tp";
  std::string mac;  // the virtio_user port's MAC (a pooled vNIC's); empty: random
};

// Runs `viopool-frontend blk --json` with `args` to completion (bounded);
// returns its exit code (-1 if it did not exit) and leaves its JSON report
// in `report`.
int run_frontend(const TempDir& dir, const std::vector<std::string>& args,
                 nlohmann::json& report, const std::string& tag);

// `viopoolctl --json ARGS` run in network namespace `ns` (bounded): its
// exit code, its JSON reply in `out` (discarded if none) and its error text
// in `err`.
int viopoolctl(const TempDir& dir, const NetNs& ns, const std::string& args, nlohmann::json& out,
               std::string* err = nullptr);

// dpdk-testpmd with a virtio_user port on `vhost_socket`, forwarding
// non-interactively until stopped.
Process start_testpmd(const TempDir& dir, const TestpmdOptions& o);

}  // namespace viopool::testing
