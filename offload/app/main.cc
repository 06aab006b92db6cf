// viopool-offload: follows one OVS bridge and executes its flow policy in
// NIC hardware (rte_flow), reporting for every OpenFlow rule whether it is
// offloaded and, if not, why (docs/offload.md). Stops on SIGINT/SIGTERM.
#include <signal.h>
#include <CLI/CLI.hpp>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <atomic>
#include <map>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <thread>

#include "offload/app/offload_config.h"
#include "offload/app/uplink.h"
#include "offload/service/offload_service.h"
#include "vhost-backend/base/log.h"
#include "vhost-backend/control/api_server.h"
#include "vhost-backend/runtime/eal.h"

VIOPOOL_LOG_MODULE("offload")

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

using namespace viopool;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "viopool-offload: follows an Open vSwitch bridge's OpenFlow table and installs what the\n"
      "NIC can do as rte_flow rules on DPDK ports; reports every rule's state through its control\n"
      "API (docs/api.md \"viopool-offload\"). Stops on SIGINT/SIGTERM.",
      "viopool-offload"};
  std::string config_path;
  std::string log_level;
  bool no_huge = false;
  app.add_option("-c,--config", config_path, "JSON config file (docs/offload.md)")->required();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  app.add_flag("--no-huge", no_huge, "Run DPDK without hugepages");
  CLI11_PARSE(app, argc, argv);
  log::init("viopool-offload", log::parse_level(log_level, log::Level::kInfo));

  std::string why;
  auto cfg = offload::load_offload_config(config_path, why);
  if (!cfg) {
    std::fprintf(stderr, "viopool-offload: %s\n", why.c_str());
    return 2;
  }
  runtime::EalOptions eo;
  eo.program = "viopool-offload";
  eo.user_args = cfg->eal_args;
  eo.force_no_huge = no_huge;
  eo.memory_mb = 256;
  eo.worker_lcores = 0;
  auto eal = runtime::init_eal(eo, why);
  if (!eal) {
    std::fprintf(stderr, "viopool-offload: %s\n", why.c_str());
    return 1;
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("vp_offload", 4095, 128, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == nullptr) {
    std::fprintf(stderr, "viopool-offload: cannot create an mbuf pool\n");
    return 1;
  }
  offload::PortMap map;
  for (const auto& u : cfg->uplinks) {
    auto port = offload::open_uplink(u.name, u.devargs, u.rx_queues, pool, why);
    if (!port) {
      std::fprintf(stderr, "viopool-offload: %s\n", why.c_str());
      return 1;
    }
    map.ports.push_back({u.name, u.ofport, *port, std::nullopt, std::nullopt, std::nullopt});
    VIOPOOL_LOG_INFO("uplink {} (ofport {}) is DPDK port {} ({})", u.name,
                     u.ofport ? std::to_string(*u.ofport) : "?", *port, u.devargs);
  }
  for (const auto& v : cfg->vnics) {
    std::uint16_t port = 0;
    for (const auto& p : map.ports) {
      if (p.name == v.uplink) {
        port = p.dpdk_port;
      }
    }
    map.ports.push_back({v.name, v.ofport, port, v.queue, v.mark, v.mac, v.access_vlan});
  }
  {
    offload::FollowerOptions fo;
    fo.target = cfg->bridge;
    fo.rundir = cfg->ovs_rundir;
    fo.resync = std::chrono::milliseconds(cfg->resync_ms);
    fo.debounce = std::chrono::milliseconds(cfg->debounce_ms);
    offload::OffloadService service(fo, map, cfg->priority_levels);
    if (auto r = service.start(why); !r) {
      std::fprintf(stderr, "viopool-offload: %s\n", why.c_str());
      return 1;
    }
    // Per uplink queue: packets received (drain_rx).
    std::mutex rx_mu;
    std::map<std::uint16_t, std::vector<std::uint64_t>> rx_counts;
    for (std::size_t i = 0; i < cfg->uplinks.size(); ++i) {
      rx_counts[map.ports[i].dpdk_port].assign(cfg->uplinks[i].rx_queues, 0);
    }
    control::ApiRoutes routes;
    routes.call = [&](const std::string& op, const nlohmann::json& b) -> control::ApiReply {
      auto reply = service.call(op, b);
      if (!reply) {
        return control::error_reply(Errc::kNotFound, "unknown operation '" + op + "'");
      }
      if (op == "offload_stats" && cfg->drain_rx) {
        std::lock_guard lock(rx_mu);
        nlohmann::json ports = nlohmann::json::array();
        for (std::size_t i = 0; i < cfg->uplinks.size(); ++i) {
          ports.push_back({{"name", cfg->uplinks[i].name},
                           {"port", map.ports[i].dpdk_port},
                           {"rx_packets", rx_counts[map.ports[i].dpdk_port]}});
        }
        reply->body["uplinks"] = ports;
      }
      return *reply;
    };
    routes.read_only = {"offload_show", "offload_stats"};
    routes.metrics = [&] { return service.metrics(); };
    control::ApiServer server;
    if (auto r = server.start_unix(cfg->control_socket, routes, why); !r) {
      std::fprintf(stderr, "viopool-offload: %s\n", why.c_str());
      return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    VIOPOOL_LOG_INFO("following {}; {} uplink(s), {} vNIC(s); api {}", cfg->bridge,
                     cfg->uplinks.size(), cfg->vnics.size(), cfg->control_socket);
    while (!g_stop.load()) {
      if (!cfg->drain_rx) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      for (auto& [port, counts] : rx_counts) {
        for (std::uint16_t q = 0; q < counts.size(); ++q) {
          rte_mbuf* pkts[32];
          const auto n = rte_eth_rx_burst(port, q, pkts, 32);
          rte_pktmbuf_free_bulk(pkts, n);
          if (n > 0) {
            std::lock_guard lock(rx_mu);
            counts[q] += n;
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    server.stop();
    service.stop();
  }
  for (const auto& p : map.ports) {
    if (!p.is_vnic()) {
      offload::close_uplink(p.dpdk_port);
    }
  }
  runtime::cleanup_eal();
  VIOPOOL_LOG_INFO("stopped");
  return 0;
}
