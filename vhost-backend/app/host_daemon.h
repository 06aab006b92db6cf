// viopool-host's object graph: the mbuf pool, one PollLoop per worker lcore,
// the devices and the control API. main() parses options and calls this.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pool-manager/client/lease_client.h"
#include "vhost-backend/control/api_server.h"
#include "vhost-backend/control/config.h"
#include "vhost-backend/runtime/poll_loop.h"
#include "vhost-backend/vhost/vhost_device.h"

struct rte_mempool;

namespace viopool::app {

class HostDaemon final : public control::HostApi {
 public:
  explicit HostDaemon(control::HostConfig cfg);
  ~HostDaemon() override;

  // Main lcore, after EAL init: creates the pool, launches the loops, adds the
  // configured devices and opens the control socket. `why` explains a failure.
  Result<void> start(std::string& why);
  // Stops the API, every device and every loop. Idempotent.
  void stop() noexcept;

  // control::HostApi
  control::ApiReply device_add(const nlohmann::json& body) override;
  control::ApiReply device_del(const nlohmann::json& body) override;
  control::ApiReply device_list(const nlohmann::json& body) override;
  // A device's description with its lease and pooled vNIC, if any.
  nlohmann::json describe(const std::string& name) const;
  control::ApiReply device_stats(const nlohmann::json& body) override;
  std::string metrics() override;

 private:
  struct Loop {
    unsigned lcore;
    std::unique_ptr<runtime::PollLoop> loop;
  };

  Result<void> add_device(const control::DeviceConfig& d, std::string& why);
  std::string host_id() const;  // names this host in pool leases
  runtime::PollLoop* pick_loop(int lcore, std::string& why);
  // A leased pool volume's lease comes back in `lease` (released if the
  // device does not start).
  Result<std::unique_ptr<vhost::VhostDevice>> make_device(
      const control::DeviceConfig& d, runtime::PollLoop& loop,
      std::unique_ptr<pool::LeaseKeeper>& lease, std::string& why);

  control::HostConfig cfg_;
  rte_mempool* pool_ = nullptr;
  std::vector<Loop> loops_;
  // Declared before devices_: a device stops before its lease is released.
  std::map<std::string, std::unique_ptr<pool::LeaseKeeper>> leases_;
  std::map<std::string, nlohmann::json> vnics_;  // pooled vNICs: MAC, VLAN, MTU, rates
  std::map<std::string, std::unique_ptr<vhost::VhostDevice>> devices_;
  control::ApiServer api_;
  bool started_ = false;
};

}  // namespace viopool::app
