// viopool-appliance: the pool. Carves volumes from its inventory, leases them
// to hosts (control API on TCP, state in SQLite) and serves them over the
// fabric (UDP; docs/fabric.md), with the statically configured volumes.
#include <signal.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "pool-manager/appliance/appliance_api.h"
#include "pool-manager/appliance/appliance_config.h"
#include "pool-manager/appliance/volume_plane.h"
#include "pool-manager/pool/state_store.h"
#include "pool-manager/transport/udp_transport.h"
#include "vhost-backend/base/log.h"
#ifdef VIOPOOL_APPLIANCE_DPDK
#include "offload/service/offload_service.h"
#include "pool-manager/target/ethdev_nic_port.h"
#include "pool-manager/transport/mac_address.h"
#include "vhost-backend/devices/crypto/cryptodev_backend.h"
#include "vhost-backend/devices/crypto/virtio_crypto.h"
#include "vhost-backend/runtime/eal.h"
#endif

VIOPOOL_LOG_MODULE("appliance")

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

// The fabric counters and, under "transport", the UDP socket's.
nlohmann::json stats_json(const viopool::pool::TargetStats& s,
                          const viopool::pool::TransportStats& t) {
  nlohmann::json j = viopool::pool::to_json(s);
  j["transport"] = {{"sent", t.sent},           {"received", t.received},
                    {"send_errors", t.send_errors}, {"truncated", t.truncated},
                    {"segmented", t.segmented}, {"gso_refused", t.gso_refused},
                    {"coalesced", t.coalesced}};
  return j;
}

// Written whole to a temporary file and renamed: readers never see half.
void write_stats(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump() << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

#ifdef VIOPOOL_APPLIANCE_DPDK
// An engine's algorithms by family, in virtio-crypto numbering and names.
nlohmann::json capabilities_json(const viopool::crypto::CryptoCapabilities& c) {
  using namespace viopool::crypto;
  static const std::map<std::uint32_t, const char*> kCipher = {
      {kCipherAesEcb, "aes-ecb"}, {kCipherAesCbc, "aes-cbc"}, {kCipherAesCtr, "aes-ctr"},
      {kCipherAesXts, "aes-xts"}};
  static const std::map<std::uint32_t, const char*> kHash = {
      {kHashMd5, "md5"},       {kHashSha1, "sha1"},     {kHashSha224, "sha224"},
      {kHashSha256, "sha256"}, {kHashSha384, "sha384"}, {kHashSha512, "sha512"}};
  static const std::map<std::uint32_t, const char*> kMac = {
      {kMacHmacMd5, "hmac-md5"},       {kMacHmacSha1, "hmac-sha1"},
      {kMacHmacSha224, "hmac-sha224"}, {kMacHmacSha256, "hmac-sha256"},
      {kMacHmacSha384, "hmac-sha384"}, {kMacHmacSha512, "hmac-sha512"},
      {kMacCmacAes, "cmac-aes"}};
  static const std::map<std::uint32_t, const char*> kAead = {
      {kAeadGcm, "aes-gcm"}, {kAeadCcm, "aes-ccm"}, {kAeadChacha20Poly1305, "chacha20-poly1305"}};
  auto family = [](const auto& algos, const std::map<std::uint32_t, const char*>& names) {
    nlohmann::json out = nlohmann::json::array();
    for (std::uint32_t a = 0; a < algos.size(); ++a) {
      if (!algos[a]) {
        continue;
      }
      auto n = names.find(a);
      out.push_back({{"algorithm", n == names.end() ? std::to_string(a) : n->second},
                     {"key", {algos[a]->key.min, algos[a]->key.max}},
                     {"digest", {algos[a]->digest.min, algos[a]->digest.max}},
                     {"iv", {algos[a]->iv.min, algos[a]->iv.max}}});
    }
    return out;
  };
  return {{"cipher", family(c.cipher, kCipher)},
          {"hash", family(c.hash, kHash)},
          {"mac", family(c.mac, kMac)},
          {"aead", family(c.aead, kAead)},
          {"max_queues", c.max_queues}};
}
#endif

}  // namespace

int main(int argc, char** argv) {
  using namespace viopool;
  CLI::App app{
      "viopool-appliance: the device pool. Carves volumes from the inventory of its config\n"
      "(directories and block devices), leases them to hosts through its control API (JSON\n"
      "over HTTP, docs/api.md), keeps carvings and leases in SQLite, and serves the volumes\n"
      "to viopool-host over the fabric (UDP; docs/fabric.md). Stops on SIGINT/SIGTERM.",
      "viopool-appliance"};
  std::string config_path;
  std::string listen;
  std::string api;
  std::string state;
  std::string stats_path;
  std::string log_level;
  bool no_huge = false;
  app.add_option("-c,--config", config_path, "JSON config file (docs/operations.md)")->required();
  app.add_option("--listen", listen, "Fabric UDP address (overrides the config), ip:port");
  app.add_option("--api", api, "Control API TCP address (overrides the config), ip:port");
  app.add_option("--state", state, "SQLite state file (overrides the config)");
  app.add_option("--stats", stats_path, "Write fabric counters as JSON to this file every second");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  app.add_flag("--no-huge", no_huge, "Crypto engines: run DPDK without hugepages");
  CLI11_PARSE(app, argc, argv);
  log::init("viopool-appliance", log::parse_level(log_level, log::Level::kInfo));

  std::string why;
  auto cfg = pool::load_appliance_config(config_path, why);
  if (!cfg) {
    std::fprintf(stderr, "viopool-appliance: %s\n", why.empty() ? cfg.error().what : why.c_str());
    return 2;
  }
  if (!listen.empty()) {
    if (cfg->fabric_endpoint == cfg->listen) {
      cfg->fabric_endpoint = listen;
    }
    cfg->listen = listen;
  }
  if (!api.empty()) {
    cfg->api = api;
  }
  if (!state.empty()) {
    cfg->state = state;
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
  auto store = pool::SqliteStateStore::open(cfg->state, why);
  if (!store) {
    std::fprintf(stderr, "viopool-appliance: %s\n", why.c_str());
    return 1;
  }
  // Crypto engines are DPDK cryptodevs and NIC ports DPDK ethdevs: EAL starts
  // only if the inventory has one.
  pool::VolumePlane::CryptoFactory crypto_factory;
  const bool wants_dpdk =
      std::any_of(cfg->inventory.begin(), cfg->inventory.end(), [](const pool::StorageDevice& d) {
        return d.kind == pool::StorageKind::kCrypto || d.kind == pool::StorageKind::kNic;
      });
  // NIC ports of the inventory, opened, with what they are.
  struct OpenNic {
    const pool::StorageDevice* dev;
    std::shared_ptr<pool::NicPort> port;
    nlohmann::json info;
  };
  std::vector<OpenNic> nic_ports;
  std::vector<std::pair<std::string, nlohmann::json>> engine_infos;
#ifdef VIOPOOL_APPLIANCE_DPDK
  if (wants_dpdk) {
    runtime::EalOptions eo;
    eo.program = "viopool-appliance";
    eo.force_no_huge = no_huge;
    eo.memory_mb = 256;
    eo.worker_lcores = 0;
    if (auto e = runtime::init_eal(eo, why); !e) {
      std::fprintf(stderr, "viopool-appliance: %s\n", why.c_str());
      return 1;
    }
    crypto_factory = [](const std::string& devargs) {
      crypto::CryptodevBackendOptions o;
      o.devargs = devargs;
      o.log_id = "slot=" + devargs.substr(0, devargs.find(','));
      return crypto::make_cryptodev_backend(std::move(o));
    };
    for (const auto& d : cfg->inventory) {
      if (d.kind == pool::StorageKind::kNic) {
        auto port = pool::EthdevNicPort::open({d.name, d.path, d.mtu}, why);
        if (!port) {
          std::fprintf(stderr, "viopool-appliance: %s\n", why.c_str());
          return 1;
        }
        nlohmann::json info = (*port)->describe();
        nic_ports.push_back({&d, std::shared_ptr<pool::NicPort>(std::move(*port)), std::move(info)});
      } else if (d.kind == pool::StorageKind::kCrypto) {
        // What the engine offers, from an instance made for the asking.
        auto engine = crypto_factory(d.driver + "_vpcaps");
        if (engine && engine->start(1, 1)) {
          engine_infos.emplace_back(d.name, capabilities_json(engine->capabilities()));
          engine->stop();
        }
      }
    }
  }
#else
  (void)no_huge;
  if (wants_dpdk) {
    std::fprintf(stderr, "viopool-appliance: built without DPDK: no crypto engines or NIC ports\n");
    return 2;
  }
#endif
  pool::VolumePlane::PortFactory port_factory;
#ifdef VIOPOOL_APPLIANCE_DPDK
  if (wants_dpdk) {
    port_factory = [](const std::string& devargs,
                      std::string& why) -> std::shared_ptr<pool::NicPort> {
      auto p = pool::EthdevNicPort::open({devargs.substr(0, devargs.find(',')), devargs, 1500}, why);
      if (!p) {
        return nullptr;
      }
      return std::shared_ptr<pool::NicPort>(std::move(*p));
    };
  }
#endif
  pool::VolumePlane plane(**target, 256 * 1024, crypto_factory, port_factory);
#ifdef VIOPOOL_APPLIANCE_DPDK
  // NIC ports switched by OVS with offload: an agent per port follows the
  // bridge and installs what it can on the NIC; marked frames bypass OVS.
  std::map<std::string, std::unique_ptr<offload::OffloadService>> offloads;
  std::map<std::string, std::uint16_t> nic_port_ids;
  const auto port_map = [&](const std::string& device) {
    offload::PortMap m;
    m.ports.push_back({device, std::nullopt, nic_port_ids[device], std::nullopt, std::nullopt,
                       std::nullopt, std::nullopt});
    for (const auto& f : plane.ovs_vnics(device)) {
      offload::Mac mac{};
      if (auto a = pool::parse_mac(f.mac)) {
        std::copy(a->bytes.begin(), a->bytes.begin() + 6, mac.begin());
      }
      m.ports.push_back({f.name, std::nullopt, nic_port_ids[device], std::uint16_t{0}, f.id, mac,
                         f.vlan > 0 ? std::optional<std::uint16_t>(f.vlan) : std::nullopt});
    }
    return m;
  };
  plane.on_vnics_changed = [&](const std::string& device) {
    if (auto it = offloads.find(device); it != offloads.end()) {
      it->second->set_ports(port_map(device));
    }
  };
#endif
  for (auto& [devp, port, info] : nic_ports) {
    const pool::StorageDevice& dev = *devp;
    const std::string& name = dev.name;
    plane.add_nic_port(name, port, info);
    if (!dev.ovs_bridge.empty()) {
      if (auto r = plane.attach_to_ovs(dev, port, why); !r) {
        std::fprintf(stderr, "viopool-appliance: nic '%s': %s\n", name.c_str(), why.c_str());
        return 1;
      }
    }
#ifdef VIOPOOL_APPLIANCE_DPDK
    if (dev.ovs_offload) {
      nic_port_ids[name] = info.value("port_id", std::uint16_t{0});
      offload::FollowerOptions fo;
      fo.target = dev.ovs_bridge;
      fo.rundir = dev.ovs_rundir;
      auto svc = std::make_unique<offload::OffloadService>(fo, port_map(name));
      if (auto r = svc->start(why); !r) {
        std::fprintf(stderr, "viopool-appliance: nic '%s': offload: %s\n", name.c_str(),
                     why.c_str());
        return 1;
      }
      offloads.emplace(name, std::move(svc));
    }
#endif
  }
  for (auto& [name, info] : engine_infos) {
    plane.set_device_info(name, std::move(info));
  }
  pool::PoolServiceOptions po;
  po.devices = cfg->inventory;
  po.fabric_endpoint = cfg->fabric_endpoint;
  po.default_ttl_ms = cfg->lease_ttl_ms;
  for (const auto& v : cfg->target.volumes) {
    po.reserved_names.push_back(v.name);
    po.reserved_ids.push_back(v.function_id);
  }
  auto service = pool::PoolService::open(po, **store, plane, wall_ms, why);
  if (!service) {
    std::fprintf(stderr, "viopool-appliance: %s\n", why.c_str());
    return 1;
  }
  control::ApiServer server;
  if (!cfg->api.empty()) {
    auto routes = pool::appliance_routes(**service, **target);
#ifdef VIOPOOL_APPLIANCE_DPDK
    // offload_show, offload_stats, offload_resync with {"nic": NAME}: the
    // agent of that NIC port (docs/api.md).
    routes.call = [&, base = routes.call](const std::string& op,
                                          const nlohmann::json& b) -> control::ApiReply {
      if (op.rfind("offload_", 0) != 0) {
        return base(op, b);
      }
      const std::string nic = b.is_object() ? b.value("nic", "") : "";
      auto it = offloads.find(nic);
      if (it == offloads.end()) {
        return control::error_reply(Errc::kNotFound,
                                    "nic: '" + nic + "' is no NIC port with OVS offload here");
      }
      nlohmann::json rest = b;
      rest.erase("nic");
      auto r = it->second->call(op, rest);
      return r ? *r : control::error_reply(Errc::kNotFound, "unknown operation '" + op + "'");
    };
    routes.read_only.push_back("offload_show");
    routes.read_only.push_back("offload_stats");
#endif
    if (auto r = server.start_tcp(cfg->api, routes, why);
        !r) {
      std::fprintf(stderr, "viopool-appliance: %s\n", why.c_str());
      return 1;
    }
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  // Leases of silent hosts expire here; the fabric thread fences them.
  std::mutex mu;
  std::condition_variable cv;
  std::thread expiry([&] {
    std::unique_lock lock(mu);
    while (!g_stop.load()) {
      cv.wait_for(lock, std::chrono::milliseconds(250));
      lock.unlock();
      (*service)->expire();
      lock.lock();
    }
  });
  VIOPOOL_LOG_INFO("serving {} static volume(s) on udp {} mtu {}; {} inventory device(s); api {}",
                   cfg->target.volumes.size(), pool::to_string((*udp)->local()), cfg->mtu,
                   cfg->inventory.size(), cfg->api.empty() ? "off" : cfg->api);
  // This thread polls the target for the daemon's life: commands from the API
  // and expiry threads always run here, between two rounds.
  (*target)->bind_poller();
  while (!g_stop.load()) {
    (*target)->run(g_stop, pool::VolumeTarget::Clock::now() + std::chrono::seconds(1));
    if (!stats_path.empty()) {
      write_stats(stats_path, stats_json((*target)->stats(), (*udp)->stats()));
    }
  }
  server.stop();
  // No more polling here: a command the expiry thread still makes runs on
  // its own thread (nothing else touches the target any more).
  (*target)->unbind_poller();
  cv.notify_all();
  expiry.join();
  const auto s = stats_json((*target)->stats(), (*udp)->stats());
  if (!stats_path.empty()) {
    write_stats(stats_path, s);
  }
  VIOPOOL_LOG_INFO("stopped: {}", s.dump());
  return 0;
}
