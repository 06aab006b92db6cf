// Opens an uplink for rte_flow: probes its devargs (or finds the port DPDK
// already has), configures as many transmit as receive queues (net_tap
// insists), and starts it.
#pragma once

#include <cstdint>
#include <string>

#include "vhost-backend/base/result.h"

struct rte_mempool;

namespace viopool::offload {

Result<std::uint16_t> open_uplink(const std::string& name, const std::string& devargs,
                                  std::uint16_t rx_queues, rte_mempool* pool, std::string& why);
void close_uplink(std::uint16_t port) noexcept;

}  // namespace viopool::offload
