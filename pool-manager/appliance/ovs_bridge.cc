#include "pool-manager/appliance/ovs_bridge.h"

#include <chrono>

#include "vhost-backend/base/log.h"
#include "vhost-backend/base/subprocess.h"

VIOPOOL_LOG_MODULE("ovs")

namespace viopool::pool {

int OvsBridge::vsctl(const std::vector<std::string>& args, std::string& err) const {
  std::vector<std::string> argv = {"ovs-vsctl", "--timeout=10"};
  if (!o_.db.empty()) {
    argv.push_back("--db=" + o_.db);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  return run_capture(argv, {}, std::chrono::seconds(15), out, err);
}

Result<void> OvsBridge::add_vhost_port(const std::string& name, std::uint16_t vlan,
                                       std::string& why) const {
  std::vector<std::string> args = {"--", "--may-exist", "add-port", o_.bridge, name,
                                   "--", "set", "Interface", name, "type=dpdkvhostuserclient",
                                   "options:vhost-server-path=" + socket_of(name)};
  if (vlan > 0) {
    args.insert(args.end(), {"--", "set", "Port", name, "tag=" + std::to_string(vlan)});
  } else {
    args.insert(args.end(), {"--", "clear", "Port", name, "tag"});
  }
  std::string err;
  const int rc = vsctl(args, err);
  if (rc != 0) {
    const auto nl = err.find('\n');
    why = "ovs-vsctl add-port " + o_.bridge + " " + name + ": " +
          (err.empty() ? "exit status " + std::to_string(rc) : err.substr(0, nl));
    return fail(Errc::kIo, "ovs: add-port failed");
  }
  VIOPOOL_LOG_INFO("bridge={} port={} socket={} vlan={}", o_.bridge, name, socket_of(name), vlan);
  return {};
}

void OvsBridge::del_port(const std::string& name) const {
  std::string err;
  if (vsctl({"--", "--if-exists", "del-port", o_.bridge, name}, err) != 0) {
    VIOPOOL_LOG_WARN("bridge={} cannot delete port {}: {}", o_.bridge, name, err);
  }
}

}  // namespace viopool::pool
