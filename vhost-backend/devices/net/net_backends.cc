// Loopback, null and ethdev NetBackends.
#include "vhost-backend/devices/net/net_backends.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <array>
#include <vector>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("net-backend")

namespace viopool::net {
namespace {

// Loopback keeps what the guest sent on queue pair q and hands it back on the
// same pair. A bounded ring per pair: when full, tx_burst refuses (drops are
// counted by the device), so a guest cannot make it grow.
class LoopbackBackend final : public NetBackend {
 public:
  static constexpr std::uint32_t kRingSize = 1024;  // power of two

  const char* kind() const noexcept override { return "loopback"; }
  Result<void> start(std::uint16_t queue_pairs) override {
    rings_.assign(queue_pairs, Ring{});
    return {};
  }
  void stop() noexcept override {
    for (auto& r : rings_) {
      while (r.head != r.tail) {
        rte_pktmbuf_free(r.slots[r.tail++ & (kRingSize - 1)]);
      }
    }
    rings_.clear();
  }
  std::uint16_t rx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    auto& r = rings_[q];
    std::uint16_t i = 0;
    while (i < n && r.tail != r.head) {
      pkts[i++] = r.slots[r.tail++ & (kRingSize - 1)];
    }
    return i;
  }
  std::uint16_t tx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    auto& r = rings_[q];
    std::uint16_t i = 0;
    while (i < n && r.head - r.tail < kRingSize) {
      r.slots[r.head++ & (kRingSize - 1)] = pkts[i++];
    }
    return i;
  }
  bool has_external_input() const noexcept override { return false; }

 private:
  struct Ring {
    std::array<rte_mbuf*, kRingSize> slots{};
    std::uint32_t head = 0;  // producer (tx_burst); same lcore as consumer
    std::uint32_t tail = 0;
  };
  std::vector<Ring> rings_;
};

class NullBackend final : public NetBackend {
 public:
  const char* kind() const noexcept override { return "null"; }
  Result<void> start(std::uint16_t) override { return {}; }
  void stop() noexcept override {}
  std::uint16_t rx_burst(std::uint16_t, rte_mbuf**, std::uint16_t) noexcept override { return 0; }
  std::uint16_t tx_burst(std::uint16_t, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    rte_pktmbuf_free_bulk(pkts, n);
    return n;
  }
  bool has_external_input() const noexcept override { return false; }
};

class EthdevBackend final : public NetBackend {
 public:
  explicit EthdevBackend(EthdevBackendOptions o) : o_(std::move(o)) {}
  ~EthdevBackend() override { stop(); }

  const char* kind() const noexcept override { return "ethdev"; }

  Result<void> start(std::uint16_t queue_pairs) override {
    const std::string name = o_.devargs.substr(0, o_.devargs.find(','));
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port_) != 0) {
      if (rte_dev_probe(o_.devargs.c_str()) != 0) {
        VIOPOOL_LOG_ERROR("cannot probe ethdev devargs=\"{}\"", o_.devargs);
        return fail(Errc::kNotFound, "ethdev: probe failed (check devargs)");
      }
      probed_ = true;
      if (rte_eth_dev_get_port_by_name(name.c_str(), &port_) != 0) {
        return fail(Errc::kNotFound, "ethdev: probed device has no port of that name");
      }
    }
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port_, &info) != 0) {
      cleanup();
      return fail(Errc::kIo, "ethdev: cannot read device info");
    }
    nq_ = std::min<std::uint16_t>(queue_pairs, std::min(info.max_rx_queues, info.max_tx_queues));
    if (nq_ == 0) {
      cleanup();
      return fail(Errc::kUnsupported, "ethdev: port has no queues");
    }
    rte_eth_conf conf{};
    if (nq_ > 1 && info.flow_type_rss_offloads != 0) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf =
          info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    }
    int rc = rte_eth_dev_configure(port_, nq_, nq_, &conf);
    if (rc != 0) {
      cleanup();
      return fail(Errc::kIo, "ethdev: configure failed", -rc);
    }
    std::uint16_t rxd = o_.rx_desc;
    std::uint16_t txd = o_.tx_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(port_, &rxd, &txd);
    const int socket = rte_eth_dev_socket_id(port_);
    const unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    for (std::uint16_t q = 0; q < nq_; ++q) {
      if ((rc = rte_eth_rx_queue_setup(port_, q, rxd, sock, nullptr, o_.pool)) != 0 ||
          (rc = rte_eth_tx_queue_setup(port_, q, txd, sock, nullptr)) != 0) {
        cleanup();
        return fail(Errc::kIo, "ethdev: queue setup failed", -rc);
      }
    }
    if ((rc = rte_eth_dev_start(port_)) != 0) {
      cleanup();
      return fail(Errc::kIo, "ethdev: start failed", -rc);
    }
    started_ = true;
    // Promiscuous: the port carries traffic for the guest's MAC, not its own.
    if (rte_eth_promiscuous_enable(port_) != 0) {
      VIOPOOL_LOG_WARN("promiscuous mode unsupported port={} devargs=\"{}\"", port_, o_.devargs);
    }
    VIOPOOL_LOG_INFO("ethdev started port={} devargs=\"{}\" queues={} rxd={} txd={}", port_,
                     o_.devargs, nq_, rxd, txd);
    return {};
  }

  void stop() noexcept override { cleanup(); }

  // Several guest queue pairs may share one port queue (a port with fewer
  // queues): all of a device's queues are polled by one lcore, so that is safe.
  std::uint16_t rx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    return rte_eth_rx_burst(port_, q % nq_, pkts, n);
  }
  std::uint16_t tx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    return rte_eth_tx_burst(port_, q % nq_, pkts, n);
  }
  bool has_external_input() const noexcept override { return true; }

 private:
  void cleanup() noexcept {
    if (started_) {
      rte_eth_dev_stop(port_);
      started_ = false;
    }
    if (probed_) {
      rte_eth_dev_close(port_);
      // A vdev we probed is removed so that the same devargs can be added again.
      rte_devargs da{};
      if (rte_devargs_parse(&da, o_.devargs.c_str()) == 0) {
        rte_eal_hotplug_remove(rte_bus_name(da.bus), da.name);
        rte_devargs_reset(&da);
      }
      probed_ = false;
    }
  }

  EthdevBackendOptions o_;
  std::uint16_t port_ = 0;
  std::uint16_t nq_ = 1;
  bool probed_ = false;
  bool started_ = false;
};

}  // namespace

std::unique_ptr<NetBackend> make_loopback_backend() { return std::make_unique<LoopbackBackend>(); }
std::unique_ptr<NetBackend> make_null_backend() { return std::make_unique<NullBackend>(); }
std::unique_ptr<NetBackend> make_ethdev_backend(EthdevBackendOptions o) {
  return std::make_unique<EthdevBackend>(std::move(o));
}

}  // namespace viopool::net
