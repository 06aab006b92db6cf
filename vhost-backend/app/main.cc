// viopool-host: serves virtio devices (net, blk, crypto) to VMs over vhost-user. main() only
// parses options and the config file, starts EAL and hands over to HostDaemon.
#include <CLI/CLI.hpp>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "vhost-backend/app/host_daemon.h"
#include "vhost-backend/base/log.h"
#include "vhost-backend/runtime/eal.h"

VIOPOOL_LOG_MODULE("main")

int main(int argc, char** argv) {
  using namespace viopool;
  CLI::App app{
      "viopool-host: vhost-user backend serving virtio-net, virtio-blk and virtio-crypto devices to\n"
      "VMs.\n"
      "Devices come from the config file and from the control API (viopoolctl).\n"
      "Arguments after -- go to DPDK's EAL (e.g. --lcores=0@0,1@1 to pin cores).",
      "viopool-host"};
  std::string config_path;
  std::string control_socket;
  std::string log_level;
  bool no_huge = false;
  bool busy_poll = false;
  unsigned memory_mb = 512;
  unsigned workers = 1;
  std::vector<std::string> eal;
  app.add_option("-c,--config", config_path, "JSON config file (see docs/operations.md)");
  app.add_option("--control-socket", control_socket,
                 "Unix socket of the control API (overrides the config; default "
                 "/run/viopool/host.sock)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  app.add_flag("--no-huge", no_huge, "Do not use hugepages even if some are free");
  app.add_flag("--busy-poll", busy_poll,
               "Worker lcores never sleep (cores dedicated to polling; default: sleep when idle)");
  app.add_option("--memory", memory_mb, "DPDK memory in MiB (hugepage cap or --no-huge size)")
      ->check(CLI::Range(64u, 65536u));
  app.add_option("--workers", workers, "Worker lcores polling devices (default layout only)")
      ->check(CLI::Range(1u, 64u));
  app.add_option("eal", eal, "EAL arguments, after --");
  CLI11_PARSE(app, argc, argv);

  control::HostConfig cfg;
  std::string why;
  if (!config_path.empty()) {
    auto c = control::load_host_config(config_path, why);
    if (!c) {
      std::fprintf(stderr, "viopool-host: %s\n", why.c_str());
      return 2;
    }
    cfg = std::move(*c);
  }
  if (!control_socket.empty()) {
    cfg.control_socket = control_socket;
  }
  if (!log_level.empty()) {
    cfg.log_level = log_level;
  }
  if (busy_poll) {
    cfg.busy_poll = true;
  }
  log::init("viopool-host", log::parse_level(cfg.log_level, log::Level::kInfo));

  // Signals are taken synchronously by main; every thread started from here
  // on (EAL, vhost, API) inherits the blocked mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  runtime::EalOptions eo;
  eo.program = "viopool-host";
  eo.user_args = cfg.eal_args;
  eo.user_args.insert(eo.user_args.end(), eal.begin(), eal.end());
  eo.force_no_huge = no_huge;
  eo.memory_mb = memory_mb;
  eo.worker_lcores = workers;
  auto info = runtime::init_eal(eo, why);
  if (!info) {
    VIOPOOL_LOG_ERROR("{}", why);
    return 1;
  }
  VIOPOOL_LOG_INFO("EAL up hugepages={}", info->hugepages);

  int rc = 0;
  {
    app::HostDaemon daemon(std::move(cfg));
    if (auto r = daemon.start(why); !r) {
      VIOPOOL_LOG_ERROR("start-up failed: {}", why);
      rc = 1;
    } else {
      VIOPOOL_LOG_INFO("viopool-host running; SIGINT or SIGTERM stops it");
      int sig = 0;
      sigwait(&sigs, &sig);
      VIOPOOL_LOG_INFO("signal {} received, stopping", sig);
    }
    daemon.stop();
  }
  runtime::cleanup_eal();
  return rc;
}
