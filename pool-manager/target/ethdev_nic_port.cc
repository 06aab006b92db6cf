#include "pool-manager/target/ethdev_nic_port.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("nic-port")

namespace viopool::pool {
namespace {

constexpr std::size_t kBurst = 32;
std::atomic<std::uint32_t> g_seq{0};

std::string mac_text(const rte_ether_addr& a) {
  char buf[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(buf, sizeof buf, &a);
  return buf;
}

// Does the port take rte_flow rules at all? A rule steering one MAC to
// queue 0, validated (never created).
std::string probe_flow(std::uint16_t port) {
  rte_flow_attr attr{};
  attr.ingress = 1;
  rte_flow_item_eth spec{};
  rte_flow_item_eth mask{};
  spec.hdr.dst_addr.addr_bytes[0] = 0x02;
  std::memset(mask.hdr.dst_addr.addr_bytes, 0xff, RTE_ETHER_ADDR_LEN);
  const rte_flow_item pattern[] = {{RTE_FLOW_ITEM_TYPE_ETH, &spec, nullptr, &mask},
                                   {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
  rte_flow_action_queue q{0};
  const rte_flow_action actions[] = {{RTE_FLOW_ACTION_TYPE_QUEUE, &q},
                                     {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  rte_flow_error err{};
  if (rte_flow_validate(port, &attr, pattern, actions, &err) == 0) {
    return "";
  }
  return err.message != nullptr ? err.message : "refused";
}

}  // namespace

Result<std::unique_ptr<EthdevNicPort>> EthdevNicPort::open(const EthdevNicPortOptions& o,
                                                           std::string& why) {
  std::unique_ptr<EthdevNicPort> p(new EthdevNicPort());
  p->o_ = o;
  const std::string who = "nic '" + o.name + "': ";
  rte_devargs da{};
  if (rte_devargs_parse(&da, o.devargs.c_str()) != 0) {
    why = who + "devargs '" + o.devargs + "' do not parse";
    return fail(Errc::kInvalidArgument, "nic: bad devargs");
  }
  const std::string dev = da.name;
  rte_devargs_reset(&da);
  std::uint16_t existing = 0;
  if (rte_eth_dev_get_port_by_name(dev.c_str(), &existing) == 0) {
    why = who + "a port named '" + dev + "' exists already";
    return fail(Errc::kAlreadyExists, "nic: port exists");
  }
  if (const int rc = rte_dev_probe(o.devargs.c_str()); rc != 0) {
    why = who + "cannot probe '" + o.devargs + "': " + rte_strerror(-rc);
    return fail(Errc::kNotFound, "nic: probe failed", -rc);
  }
  p->probed_ = true;
  if (rte_eth_dev_get_port_by_name(dev.c_str(), &p->port_) != 0) {
    why = who + "the probed device has no port named '" + dev + "'";
    return fail(Errc::kNotFound, "nic: no port");
  }
  VIOPOOL_TRY(p->start(why));
  return p;
}

Result<void> EthdevNicPort::start(std::string& why) {
  const std::string who = "nic '" + o_.name + "': ";
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_, &info) != 0 || info.max_rx_queues == 0 ||
      info.max_tx_queues == 0) {
    why = who + "the port has no queues";
    return fail(Errc::kUnsupported, "nic: no queues");
  }
  const std::uint32_t room = std::max<std::uint32_t>(
      RTE_MBUF_DEFAULT_BUF_SIZE, RTE_PKTMBUF_HEADROOM + RTE_ETHER_HDR_LEN + 4 + o_.mtu + 8);
  const std::uint32_t mbufs = o_.rx_desc + o_.tx_desc + 4 * kBurst + 512;
  const std::string pool_name =
      "vpnic" + std::to_string(::getpid() % 100000) + "_" + std::to_string(g_seq.fetch_add(1));
  const int socket = rte_eth_dev_socket_id(port_);
  pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, std::min<unsigned>(256, mbufs / 8), 0,
                                  static_cast<std::uint16_t>(std::min<std::uint32_t>(room, 65535)),
                                  socket);
  if (pool_ == nullptr) {
    why = who + "cannot create an mbuf pool: " + rte_strerror(rte_errno);
    return fail(Errc::kResourceExhausted, "nic: no pool");
  }
  rte_eth_conf conf{};
  conf.rxmode.mtu = o_.mtu;
  int rc = rte_eth_dev_configure(port_, 1, 1, &conf);
  if (rc == 0) {
    const int mrc = rte_eth_dev_set_mtu(port_, static_cast<std::uint16_t>(o_.mtu));
    if (mrc != 0 && mrc != -ENOTSUP) {
      VIOPOOL_LOG_WARN("nic={} cannot set mtu {}: {}", o_.name, o_.mtu, rte_strerror(-mrc));
    }
    std::uint16_t rxd = o_.rx_desc;
    std::uint16_t txd = o_.tx_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(port_, &rxd, &txd);
    const unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    if ((rc = rte_eth_rx_queue_setup(port_, 0, rxd, sock, nullptr, pool_)) == 0 &&
        (rc = rte_eth_tx_queue_setup(port_, 0, txd, sock, nullptr)) == 0) {
      rc = rte_eth_dev_start(port_);
    }
  }
  if (rc != 0) {
    why = who + "cannot configure and start the port: " + rte_strerror(-rc);
    return fail(Errc::kIo, "nic: start failed", -rc);
  }
  started_ = true;
  // The vNICs' MACs are not the port's own.
  if ((rc = rte_eth_promiscuous_enable(port_)) != 0) {
    VIOPOOL_LOG_WARN("nic={} promiscuous mode: {}", o_.name, rte_strerror(-rc));
  }
  rte_ether_addr mac{};
  rte_eth_macaddr_get(port_, &mac);
  rte_eth_link link{};
  rte_eth_link_get_nowait(port_, &link);
  const std::string flow = probe_flow(port_);
  describe_ = {{"driver", info.driver_name},
               {"port_id", port_},
               {"mac", mac_text(mac)},
               {"link_up", link.link_status == RTE_ETH_LINK_UP},
               {"speed_mbps", link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed},
               {"mtu", o_.mtu},
               {"max_rx_queues", info.max_rx_queues},
               {"max_tx_queues", info.max_tx_queues},
               {"rx_offload_capa", info.rx_offload_capa},
               {"tx_offload_capa", info.tx_offload_capa},
               {"rte_flow", flow.empty()}};
  if (!flow.empty()) {
    describe_["rte_flow_error"] = flow;
  }
  VIOPOOL_LOG_INFO("nic={} port={} devargs=\"{}\" driver={} mac={} rte_flow={}", o_.name, port_,
                   o_.devargs, info.driver_name, mac_text(mac), flow.empty() ? "yes" : flow);
  rx_held_.reserve(kBurst);
  return {};
}

EthdevNicPort::~EthdevNicPort() {
  release_rx();
  if (started_) {
    rte_eth_dev_stop(port_);
  }
  if (probed_) {
    rte_eth_dev_close(port_);
    rte_devargs da{};
    if (rte_devargs_parse(&da, o_.devargs.c_str()) == 0) {
      rte_eal_hotplug_remove(rte_bus_name(da.bus), da.name);
      rte_devargs_reset(&da);
    }
  }
  if (pool_ != nullptr) {
    rte_mempool_free(pool_);
  }
}

std::uint32_t EthdevNicPort::rx(std::span<NicFrame> out) noexcept {
  release_rx();
  rte_mbuf* m[kBurst];
  const auto n = rte_eth_rx_burst(port_, 0, m,
                                  static_cast<std::uint16_t>(std::min(out.size(), kBurst)));
  std::size_t linear_need = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (m[i]->nb_segs > 1) {
      linear_need += m[i]->pkt_len;
    }
  }
  if (linear_.size() < linear_need) {
    linear_.resize(linear_need);
  }
  std::size_t at = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    rx_held_.push_back(m[i]);
    const std::uint32_t mark =
        (m[i]->ol_flags & RTE_MBUF_F_RX_FDIR_ID) != 0 ? m[i]->hash.fdir.hi : 0;
    if (m[i]->nb_segs == 1) {
      out[i] = NicFrame{rte_pktmbuf_mtod(m[i], const std::byte*), m[i]->data_len, mark};
      continue;
    }
    auto* dst = linear_.data() + at;
    const void* p = rte_pktmbuf_read(m[i], 0, m[i]->pkt_len, dst);
    if (p != dst) {
      std::memcpy(dst, p, m[i]->pkt_len);
    }
    out[i] = NicFrame{dst, m[i]->pkt_len, mark};
    at += m[i]->pkt_len;
  }
  return n;
}

void EthdevNicPort::release_rx() noexcept {
  if (!rx_held_.empty()) {
    rte_pktmbuf_free_bulk(rx_held_.data(), static_cast<unsigned>(rx_held_.size()));
    rx_held_.clear();
  }
}

std::uint32_t EthdevNicPort::tx(std::span<const NicFrame> frames) noexcept {
  std::uint32_t done = 0;
  while (done < frames.size()) {
    const auto want = static_cast<unsigned>(std::min(frames.size() - done, kBurst));
    rte_mbuf* m[kBurst];
    if (rte_pktmbuf_alloc_bulk(pool_, m, want) != 0) {
      return done;
    }
    unsigned built = 0;
    for (; built < want; ++built) {
      const NicFrame& f = frames[done + built];
      char* p = rte_pktmbuf_append(m[built], static_cast<std::uint16_t>(f.len));
      if (p == nullptr) {
        break;
      }
      std::memcpy(p, f.data, f.len);
    }
    const auto sent = rte_eth_tx_burst(port_, 0, m, static_cast<std::uint16_t>(built));
    if (sent < want) {
      rte_pktmbuf_free_bulk(m + sent, want - sent);
    }
    done += sent;
    if (sent < want) {
      return done;
    }
  }
  return done;
}

}  // namespace viopool::pool
