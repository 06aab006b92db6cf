// viopool-appliance: the pool side of the fabric. Serves the volumes of its
// config file to viopool-host instances over UDP (docs/fabric.md); inventory,
// carving and leases come with the appliance's control API.
#include <signal.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "pool-manager/target/target_config.h"
#include "pool-manager/transport/udp_transport.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("appliance")

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

nlohmann::json to_json(const viopool::pool::TargetStats& s) {
  return {{"frames", s.frames},
          {"malformed", s.malformed},
          {"unknown_function", s.unknown_function},
          {"auth_failures", s.auth_failures},
          {"naks", s.naks},
          {"hellos", s.hellos},
          {"channels", s.channels},
          {"channels_closed", s.channels_closed},
          {"requests", s.requests},
          {"completions", s.completions},
          {"errors", s.errors},
          {"expired", s.expired},
          {"bytes_read", s.bytes_read},
          {"bytes_written", s.bytes_written},
          {"retransmits", s.retransmits},
          {"duplicates", s.duplicates}};
}

// Written whole to a temporary file and renamed: readers never see half.
void write_stats(const std::string& path, const viopool::pool::TargetStats& s) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << to_json(s).dump() << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  using namespace viopool;
  CLI::App app{
      "viopool-appliance: serves pooled volumes (files or block devices, through io_uring) to\n"
      "viopool-host over the fabric (UDP; docs/fabric.md). Stops on SIGINT/SIGTERM.",
      "viopool-appliance"};
  std::string config_path;
  std::string listen;
  std::string stats_path;
  std::string log_level;
  app.add_option("-c,--config", config_path, "JSON config file (docs/operations.md)")->required();
  app.add_option("--listen", listen, "UDP address to serve on (overrides the config), ip:port");
  app.add_option("--stats", stats_path, "Write fabric counters as JSON to this file every second");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  CLI11_PARSE(app, argc, argv);
  log::init("viopool-appliance", log::parse_level(log_level, log::Level::kInfo));

  std::string why;
  auto cfg = pool::load_appliance_config(config_path, why);
  if (!cfg) {
    std::fprintf(stderr, "viopool-appliance: %s\n", why.empty() ? cfg.error().what : why.c_str());
    return 2;
  }
  if (!listen.empty()) {
    cfg->listen = listen;
  }
  auto udp = pool::UdpTransport::open({cfg->listen, cfg->mtu});
  if (!udp) {
    std::fprintf(stderr, "viopool-appliance: cannot serve on %s: %s\n", cfg->listen.c_str(),
                 udp.error().what);
    return 1;
  }
  auto target = pool::VolumeTarget::create(**udp, cfg->target, why);
  if (!target) {
    std::fprintf(stderr, "viopool-appliance: %s\n", why.c_str());
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  VIOPOOL_LOG_INFO("serving {} volume(s) on udp {} mtu {}", cfg->target.volumes.size(),
                   pool::to_string((*udp)->local()), cfg->mtu);
  while (!g_stop.load()) {
    (*target)->run(g_stop, pool::VolumeTarget::Clock::now() + std::chrono::seconds(1));
    if (!stats_path.empty()) {
      write_stats(stats_path, (*target)->stats());
    }
  }
  const auto s = (*target)->stats();
  if (!stats_path.empty()) {
    write_stats(stats_path, s);
  }
  VIOPOOL_LOG_INFO("stopped: {}", to_json(s).dump());
  return 0;
}
