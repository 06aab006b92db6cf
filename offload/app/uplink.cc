#include "offload/app/uplink.h"

#include <rte_errno.h>
#include <rte_ethdev.h>

namespace viopool::offload {

Result<std::uint16_t> open_uplink(const std::string& name, const std::string& devargs,
                                  std::uint16_t rx_queues, rte_mempool* pool, std::string& why) {
  const std::string dev = devargs.substr(0, devargs.find(','));
  std::uint16_t port = 0;
  if (rte_eth_dev_get_port_by_name(dev.c_str(), &port) != 0) {
    if (rte_dev_probe(devargs.c_str()) != 0 ||
        rte_eth_dev_get_port_by_name(dev.c_str(), &port) != 0) {
      why = "uplink '" + name + "': cannot probe " + devargs;
      return fail(Errc::kNotFound, "offload: probe failed");
    }
  }
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(port, rx_queues, rx_queues, &conf);
  for (std::uint16_t q = 0; rc == 0 && q < rx_queues; ++q) {
    rc = rte_eth_rx_queue_setup(port, q, 256, rte_eth_dev_socket_id(port), nullptr, pool);
  }
  for (std::uint16_t q = 0; rc == 0 && q < rx_queues; ++q) {
    rc = rte_eth_tx_queue_setup(port, q, 256, rte_eth_dev_socket_id(port), nullptr);
  }
  if (rc == 0) {
    rc = rte_eth_dev_start(port);
  }
  if (rc != 0) {
    why = "uplink '" + name + "' (" + devargs + "): cannot start: " + rte_strerror(-rc) + " (" +
          std::to_string(rc) + ")";
    return fail(Errc::kIo, "offload: port start failed");
  }
  return port;
}

void close_uplink(std::uint16_t port) noexcept {
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
}

}  // namespace viopool::offload
