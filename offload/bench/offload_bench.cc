// viopool-offload-bench: how fast rules reach a NIC through viopool (OpenFlow
// rules → OffloadAgent → rte_flow) against `tc -batch` of the equivalent
// flower filters on the same net_tap port, alternating runs, medians; and
// how fast the translator alone runs. Needs a kernel with TC flower (a guest
// on Debian's kernel: bench/offload). The last line is
//   RATIO offload_install <ours/tc> (ours=… peer=… rules/s)
#include <CLI/CLI.hpp>
#include <rte_mbuf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "offload/agent/offload_agent.h"
#include "offload/app/uplink.h"
#include "offload/ovs/ofctl_flow.h"
#include "offload/rte_flow/rte_flow_offloader.h"
#include "offload/translate/translator.h"
#include "vhost-backend/base/log.h"
#include "vhost-backend/runtime/eal.h"

using namespace viopool;
using namespace viopool::offload;
using Clock = std::chrono::steady_clock;

namespace {

std::string address(std::size_t i) {
  return "10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." +
         std::to_string(i & 255);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"viopool-offload-bench: rule installs per second, viopool vs tc -batch",
               "viopool-offload-bench"};
  std::string devargs = "net_tap0,iface=vpb0";
  std::string iface = "vpb0";
  unsigned rules = 1000;
  unsigned runs = 3;
  bool no_huge = false;
  bool translate_only = false;
  app.add_option("--devargs", devargs, "The net_tap port (default net_tap0,iface=vpb0)");
  app.add_option("--iface", iface, "Its kernel interface, for tc (default vpb0)");
  app.add_option("--rules", rules, "Rules per run (default 1000)")->check(CLI::Range(1u, 60000u));
  app.add_option("--runs", runs, "Runs of each side (default 3)")->check(CLI::Range(1u, 50u));
  app.add_flag("--no-huge", no_huge, "Run DPDK without hugepages");
  app.add_flag("--translate-only", translate_only, "Only measure the translator (no DPDK, no tc)");
  CLI11_PARSE(app, argc, argv);
  log::init("viopool-offload-bench", log::Level::kWarn);

  // The OpenFlow rules and their translation rate.
  std::vector<FlowSpec> table;
  std::string why;
  for (unsigned i = 0; i < rules; ++i) {
    auto f = parse_ofctl_flow("priority=100,in_port=1,ip,nw_src=" + address(i) + ",actions=output:10",
                              why);
    if (!f) {
      std::fprintf(stderr, "viopool-offload-bench: %s\n", why.c_str());
      return 1;
    }
    table.push_back(*f);
  }
  PortMap map;
  map.ports.push_back({"up0", 1, 0, std::nullopt, std::nullopt, std::nullopt});
  map.ports.push_back({"vm1", 10, 0, 1, std::nullopt, Mac{0x52, 0x54, 0, 0, 0, 1}});
  {
    std::size_t n = 0;
    const auto t0 = Clock::now();
    while (n < 2000000) {
      for (const auto& f : table) {
        n += translate(f, map).rules.size();
      }
    }
    std::printf("translate: %.0f rules/s\n", static_cast<double>(n) / seconds_since(t0));
  }
  if (translate_only) {
    return 0;
  }

  runtime::EalOptions eo;
  eo.program = "viopool-offload-bench";
  eo.force_no_huge = no_huge;
  eo.memory_mb = 256;
  eo.worker_lcores = 0;
  if (auto e = runtime::init_eal(eo, why); !e) {
    std::fprintf(stderr, "viopool-offload-bench: %s\n", why.c_str());
    return 1;
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("vp_obench", 2047, 64, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              rte_socket_id());
  auto port = open_uplink("up0", devargs, 4, pool, why);
  if (!pool || !port) {
    std::fprintf(stderr, "viopool-offload-bench: %s\n", why.c_str());
    return 1;
  }
  map.ports[0].dpdk_port = *port;
  map.ports[1].dpdk_port = *port;
  const char* tmp = std::getenv("TMPDIR");
  const std::string batch = std::string(tmp != nullptr ? tmp : "/tmp") + "/viopool-offload-bench.tc";
  {
    std::ofstream b(batch);
    for (unsigned i = 0; i < rules; ++i) {
      b << "filter add dev " << iface << " parent 1: protocol ip pref 17 handle " << i + 1
        << " flower src_ip " << address(i) << " action skbedit queue_mapping 1\n";
    }
  }
  const std::string clear = "tc filter del dev " + iface + " parent 1: pref 17 2>/dev/null";
  std::vector<double> ours;
  std::vector<double> peer;
  {
    RteFlowOffloader nic(8);
    OffloadAgent agent(map, nic);
    agent.start();
    // One rule first: the agent learns what the port lacks (COUNT, MARK).
    agent.apply({table.front()});
    agent.apply({});
    for (unsigned r = 0; r < runs; ++r) {
      auto t0 = Clock::now();
      agent.apply(table);
      const double ours_s = seconds_since(t0);
      const auto st = agent.stats();
      if (st.value("nic_rules", 0u) != rules) {
        std::fprintf(stderr, "viopool-offload-bench: %u of %u rules installed: %s\n",
                     st.value("nic_rules", 0u), rules, st.dump().c_str());
        return 1;
      }
      agent.apply({});
      ours.push_back(rules / ours_s);
      (void)std::system(clear.c_str());
      t0 = Clock::now();
      const int rc = std::system(("tc -batch " + batch).c_str());
      const double peer_s = seconds_since(t0);
      if (rc != 0) {
        std::fprintf(stderr, "viopool-offload-bench: tc -batch failed\n");
        return 1;
      }
      (void)std::system(clear.c_str());
      peer.push_back(rules / peer_s);
      std::printf("run %u: viopool %.0f rules/s, tc -batch %.0f rules/s\n", r + 1, ours.back(),
                  peer.back());
      std::fflush(stdout);
    }
  }
  std::remove(batch.c_str());
  close_uplink(*port);
  const double o = median(ours);
  const double p = median(peer);
  std::printf("RATIO offload_install %.2f (ours=%.0f peer=%.0f rules/s)\n", o / p, o, p);
  return 0;
}
