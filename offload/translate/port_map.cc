#include "offload/translate/port_map.h"

#include <algorithm>

namespace viopool::offload {

const PortBinding* PortMap::find(const std::string& ovs_port) const {
  for (const auto& p : ports) {
    if (p.name == ovs_port || (p.ofport && std::to_string(*p.ofport) == ovs_port)) {
      return &p;
    }
  }
  return nullptr;
}

std::vector<std::uint16_t> PortMap::uplinks() const {
  std::vector<std::uint16_t> out;
  for (const auto& p : ports) {
    if (!p.is_vnic() && std::find(out.begin(), out.end(), p.dpdk_port) == out.end()) {
      out.push_back(p.dpdk_port);
    }
  }
  return out;
}

}  // namespace viopool::offload
