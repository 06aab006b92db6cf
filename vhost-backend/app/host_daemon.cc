// HostDaemon: wiring and the control API operations of viopool-host.
#include "vhost-backend/app/host_daemon.h"

#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <chrono>

#include <unistd.h>

#include "pool-manager/client/lease_client.h"
#include "pool-manager/client/remote_block.h"
#include "pool-manager/client/remote_crypto.h"
#include "pool-manager/client/remote_net.h"
#include "vhost-backend/base/log.h"
#include "vhost-backend/devices/blk/blk_backends.h"
#include "vhost-backend/devices/crypto/cryptodev_backend.h"
#include "vhost-backend/devices/net/net_backends.h"
#include "vhost-backend/vhost/vhost_blk_device.h"
#include "vhost-backend/vhost/vhost_crypto_device.h"
#include "vhost-backend/vhost/vhost_net_device.h"

VIOPOOL_LOG_MODULE("host")

namespace viopool::app {
namespace {

using nlohmann::json;

int loop_main(void* arg) { return static_cast<runtime::PollLoop*>(arg)->run(); }

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

HostDaemon::HostDaemon(control::HostConfig cfg) : cfg_(std::move(cfg)) {}

std::string HostDaemon::host_id() const {
  if (!cfg_.host_id.empty()) {
    return cfg_.host_id;
  }
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
    return "viopool-host";
  }
  return name;
}
HostDaemon::~HostDaemon() { stop(); }

Result<void> HostDaemon::start(std::string& why) {
  // Cache of 256 mbufs per lcore: large enough for a few bursts in flight.
  pool_ = rte_pktmbuf_pool_create("viopool_mbufs", cfg_.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                  static_cast<int>(rte_socket_id()));
  if (pool_ == nullptr) {
    why = "cannot create mbuf pool of " + std::to_string(cfg_.mbufs) +
          " mbufs (not enough memory? lower \"mbufs\" or raise EAL -m)";
    return fail(Errc::kResourceExhausted, "mbuf pool creation failed");
  }
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    loops_.push_back(Loop{lcore, std::make_unique<runtime::PollLoop>(
                                     "lcore" + std::to_string(lcore),
                                     std::chrono::microseconds(100000),
                                     cfg_.busy_poll ? runtime::PollLoop::IdleMode::kBusy
                                                    : runtime::PollLoop::IdleMode::kAdaptive)});
  }
  if (loops_.empty()) {
    why = "no worker lcore: give EAL at least two lcores (e.g. --lcores=0@0,1@1)";
    return fail(Errc::kInvalidArgument, "no worker lcore");
  }
  for (auto& l : loops_) {
    if (rte_eal_remote_launch(loop_main, l.loop.get(), l.lcore) != 0) {
      why = "cannot launch poll loop on lcore " + std::to_string(l.lcore);
      return fail(Errc::kInternal, "lcore launch failed");
    }
  }
  started_ = true;
  for (const auto& d : cfg_.devices) {
    std::string dwhy;
    if (auto r = add_device(d, dwhy); !r) {
      why = "device " + d.name + ": " + dwhy;
      return r;
    }
  }
  return api_.start(cfg_.control_socket, *this, why);
}

void HostDaemon::stop() noexcept {
  if (!started_) {
    return;
  }
  started_ = false;
  api_.stop();
  for (auto& [name, dev] : devices_) {
    dev->stop();
  }
  devices_.clear();
  for (auto& l : loops_) {
    l.loop->stop();
  }
  rte_eal_mp_wait_lcore();
  loops_.clear();
  if (pool_) {
    rte_mempool_free(pool_);
    pool_ = nullptr;
  }
}

runtime::PollLoop* HostDaemon::pick_loop(int lcore, std::string& why) {
  if (lcore >= 0) {
    for (auto& l : loops_) {
      if (static_cast<int>(l.lcore) == lcore) {
        return l.loop.get();
      }
    }
    why = "lcore " + std::to_string(lcore) + " is not a worker lcore of this daemon";
    return nullptr;
  }
  runtime::PollLoop* best = nullptr;
  std::size_t best_n = SIZE_MAX;
  for (auto& l : loops_) {
    const std::size_t n = l.loop->size();
    if (n < best_n) {
      best = l.loop.get();
      best_n = n;
    }
  }
  return best;
}

Result<void> HostDaemon::add_device(const control::DeviceConfig& d, std::string& why) {
  if (devices_.count(d.name)) {
    why = "a device named '" + d.name + "' already exists";
    return fail(Errc::kAlreadyExists, "duplicate device name");
  }
  for (const auto& [n, dev] : devices_) {
    if (dev->config().socket == d.socket) {
      why = "socket " + d.socket + " is already used by device '" + n + "'";
      return fail(Errc::kAlreadyExists, "duplicate socket path");
    }
    const auto& o = dev->config();
    if (d.type == control::DeviceType::kBlk && o.type == control::DeviceType::kBlk &&
        d.blk.kind == control::BlkBackendKind::kUring &&
        o.blk.kind == control::BlkBackendKind::kUring && o.blk.path == d.blk.path &&
        !(d.read_only && o.read_only)) {
      why = "'" + d.blk.path + "' is already the backend of device '" + n +
            "' (only read-only devices may share a file)";
      return fail(Errc::kAlreadyExists, "volume in use");
    }
    if (d.type == control::DeviceType::kCrypto && o.type == control::DeviceType::kCrypto &&
        o.crypto.devargs.substr(0, o.crypto.devargs.find(',')) ==
            d.crypto.devargs.substr(0, d.crypto.devargs.find(','))) {
      why = "cryptodev '" + d.crypto.devargs + "' is already the engine of device '" + n +
            "' (give each device its own engine instance, e.g. crypto_aesni_mb1)";
      return fail(Errc::kAlreadyExists, "cryptodev in use");
    }
    if (d.type == control::DeviceType::kNet && o.type == control::DeviceType::kNet &&
        d.net.kind == control::NetBackendKind::kEthdev &&
        dev->config().net.kind == control::NetBackendKind::kEthdev &&
        dev->config().net.devargs.substr(0, dev->config().net.devargs.find(',')) ==
            d.net.devargs.substr(0, d.net.devargs.find(','))) {
      why = "ethdev '" + d.net.devargs + "' is already the backend of device '" + n + "'";
      return fail(Errc::kAlreadyExists, "ethdev in use");
    }
  }
  runtime::PollLoop* loop = pick_loop(d.lcore, why);
  if (loop == nullptr) {
    return fail(Errc::kInvalidArgument, "bad lcore");
  }
  std::unique_ptr<pool::LeaseKeeper> lease;
  auto dev = make_device(d, *loop, lease, why);
  Result<void> started = dev ? (*dev)->start(why) : Result<void>(unexpected(dev.error()));
  if (!started) {
    vnics_.erase(d.name);  // the lease goes with `lease`
    return started;
  }
  devices_.emplace(d.name, std::move(*dev));
  if (lease) {
    leases_.emplace(d.name, std::move(lease));
  }
  return {};
}

Result<std::unique_ptr<vhost::VhostDevice>> HostDaemon::make_device(
    const control::DeviceConfig& d, runtime::PollLoop& loop,
    std::unique_ptr<pool::LeaseKeeper>& lease, std::string& why) {
  if (d.type == control::DeviceType::kBlk) {
    std::unique_ptr<blk::BlockBackend> backend;
    const std::uint32_t bs = d.blk.block_size ? d.blk.block_size : 512;
    switch (d.blk.kind) {
      case control::BlkBackendKind::kUring: {
        blk::UringBackendOptions o;
        o.path = d.blk.path;
        o.read_only = d.read_only;
        o.direct = d.blk.direct == control::DirectIoMode::kOn    ? blk::UringBackendOptions::DirectIo::kOn
                   : d.blk.direct == control::DirectIoMode::kOff ? blk::UringBackendOptions::DirectIo::kOff
                                                                 : blk::UringBackendOptions::DirectIo::kAuto;
        o.queue_depth = d.blk.queue_depth;
        o.block_size = d.blk.block_size;
        auto b = blk::make_uring_backend(o, why);
        if (!b) {
          return unexpected(b.error());
        }
        backend = std::move(*b);
        break;
      }
      case control::BlkBackendKind::kMalloc:
        backend = blk::make_malloc_backend(d.blk.size_bytes, bs);
        break;
      case control::BlkBackendKind::kNull:
        backend = blk::make_null_backend(d.blk.size_bytes, bs);
        break;
      case control::BlkBackendKind::kPool: {
        pool::RemoteBlockOptions o;
        std::string uri = d.blk.uri;
        if (!d.blk.appliance.empty()) {
          pool::LeaseAsk ask;
          ask.appliance = d.blk.appliance;
          ask.host = host_id();
          ask.function = d.blk.volume;
          ask.min_size_bytes = d.blk.lease_size;
          ask.shared = d.blk.lease_shared;
          ask.ttl_ms = d.blk.lease_ttl_ms;
          auto g = pool::acquire_lease(ask, why);
          if (!g) {
            return unexpected(g.error());
          }
          VIOPOOL_LOG_INFO("dev={} leased {} (lease {}, function {}) from {}", d.name, g->function,
                           g->lease_id, g->function_id, d.blk.appliance);
          uri = g->uri;
          o.function_id = g->function_id;
          o.key = g->key;
          o.lease_id = g->lease_id;
          lease = std::make_unique<pool::LeaseKeeper>(d.blk.appliance, std::move(*g));
        } else {
          auto key = pool::parse_auth_key(d.blk.key);
          if (!key) {
            why = "backend.key: 32 hex digits";
            return unexpected(key.error());
          }
          o.function_id = d.blk.function_id;
          o.key = *key;
        }
        if (!pool::parse_pool_uri(uri, o)) {
          why = "backend.uri: expected pool://ADDRESS:PORT/VOLUME, not '" + uri + "'";
          return fail(Errc::kInvalidArgument, "config: bad pool uri");
        }
        o.mtu = d.blk.mtu;
        o.read_only = d.read_only;
        o.request_timeout = std::chrono::milliseconds(d.blk.timeout_ms);
        auto b = pool::make_remote_backend(o, why);
        if (!b) {
          return unexpected(b.error());
        }
        backend = std::move(*b);
        break;
      }
    }
    return std::unique_ptr<vhost::VhostDevice>(
        std::make_unique<vhost::VhostBlkDevice>(d, std::move(backend), loop));
  }
  if (d.type == control::DeviceType::kCrypto) {
    if (d.crypto.pool) {
      pool::LeaseAsk ask;
      ask.appliance = d.crypto.appliance;
      ask.host = host_id();
      ask.function = d.crypto.slot;
      ask.ttl_ms = d.crypto.lease_ttl_ms;
      auto g = pool::acquire_lease(ask, why);
      if (!g) {
        return unexpected(g.error());
      }
      VIOPOOL_LOG_INFO("dev={} leased crypto slot {} (lease {}, function {}) from {}", d.name,
                       g->function, g->lease_id, g->function_id, d.crypto.appliance);
      pool::RemoteCryptoOptions o;
      if (!pool::parse_crypto_pool_uri(g->uri, o)) {
        why = "the appliance gave a bad uri '" + g->uri + "'";
        return fail(Errc::kProtocol, "pool: bad uri");
      }
      o.function_id = g->function_id;
      o.key = g->key;
      o.lease_id = g->lease_id;
      o.mtu = d.crypto.mtu;
      o.request_timeout = std::chrono::milliseconds(d.crypto.timeout_ms);
      lease = std::make_unique<pool::LeaseKeeper>(d.crypto.appliance, std::move(*g));
      auto b = pool::make_remote_crypto(o, why);
      if (!b) {
        return unexpected(b.error());
      }
      return std::unique_ptr<vhost::VhostDevice>(
          std::make_unique<vhost::VhostCryptoDevice>(d, std::move(*b), loop));
    }
    crypto::CryptodevBackendOptions o;
    o.devargs = d.crypto.devargs;
    o.queue_depth = d.crypto.queue_depth;
    o.cpu_crypto = d.crypto.cpu_crypto;
    o.log_id = "dev=" + d.name;
    return std::unique_ptr<vhost::VhostDevice>(std::make_unique<vhost::VhostCryptoDevice>(
        d, crypto::make_cryptodev_backend(std::move(o)), loop));
  }
  std::unique_ptr<net::NetBackend> backend;
  switch (d.net.kind) {
    case control::NetBackendKind::kLoopback: backend = net::make_loopback_backend(); break;
    case control::NetBackendKind::kNull: backend = net::make_null_backend(); break;
    case control::NetBackendKind::kEthdev:
      backend = net::make_ethdev_backend({d.net.devargs, d.net.rx_desc, d.net.tx_desc, pool_});
      break;
    case control::NetBackendKind::kPool: {
      pool::LeaseAsk ask;
      ask.appliance = d.net.appliance;
      ask.host = host_id();
      ask.function = d.net.vnic;
      ask.cls = "vnic";
      ask.ttl_ms = d.net.lease_ttl_ms;
      auto g = pool::acquire_lease(ask, why);
      if (!g) {
        return unexpected(g.error());
      }
      VIOPOOL_LOG_INFO("dev={} leased vNIC {} (lease {}, function {}) from {}", d.name,
                       g->function, g->lease_id, g->function_id, d.net.appliance);
      pool::RemoteNetOptions o;
      if (!pool::parse_net_pool_uri(g->uri, o)) {
        why = "the appliance gave a bad uri '" + g->uri + "'";
        return fail(Errc::kProtocol, "pool: bad uri");
      }
      o.function_id = g->function_id;
      o.key = g->key;
      o.lease_id = g->lease_id;
      o.mtu = d.net.mtu;
      o.pool = pool_;
      lease = std::make_unique<pool::LeaseKeeper>(d.net.appliance, std::move(*g));
      pool::VnicInfo info;
      auto b = pool::make_remote_net(o, info, why);
      if (!b) {
        return unexpected(b.error());
      }
      char mac[18];
      std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", info.mac[0], info.mac[1],
                    info.mac[2], info.mac[3], info.mac[4], info.mac[5]);
      // The guest's virtio-net MAC must be this one: the appliance drops
      // frames from any other source.
      vnics_[d.name] = json{{"mac", mac}, {"vlan", info.vlan}, {"mtu", info.mtu},
                            {"queues", info.queues}, {"rate_mbps", info.rate_mbps},
                            {"peak_mbps", info.peak_mbps}};
      backend = std::move(*b);
      break;
    }
  }
  return std::unique_ptr<vhost::VhostDevice>(std::make_unique<vhost::VhostNetDevice>(
      d, std::move(backend), pool_, loop, cfg_.idle_sleep_us));
}
control::ApiReply HostDaemon::device_add(const json& body) {
  std::string why;
  auto d = control::parse_device_config(body, why);
  if (!d) {
    return control::error_reply(d.error().code, why);
  }
  if (auto r = add_device(*d, why); !r) {
    VIOPOOL_LOG_WARN("device_add refused dev={} error=\"{}\"", d->name, why);
    return control::error_reply(r.error().code, why);
  }
  return control::ApiReply{201, describe(d->name)};
}

control::ApiReply HostDaemon::device_del(const json& body) {
  auto it = body.find("name");
  if (it == body.end() || !it->is_string()) {
    return control::error_reply(Errc::kInvalidArgument, "device_del needs {\"name\": \"<device>\"}");
  }
  for (auto k = body.begin(); k != body.end(); ++k) {
    if (k.key() != "name") {
      return control::error_reply(Errc::kInvalidArgument, "device_del: unknown key '" + k.key() + "'");
    }
  }
  auto dit = devices_.find(it->get<std::string>());
  if (dit == devices_.end()) {
    return control::error_reply(Errc::kNotFound, "no device named '" + it->get<std::string>() + "'");
  }
  dit->second->stop();
  devices_.erase(dit);
  leases_.erase(it->get<std::string>());  // released after the device stopped
  vnics_.erase(it->get<std::string>());
  return control::ApiReply{200, json{{"deleted", it->get<std::string>()}}};
}

json HostDaemon::describe(const std::string& name) const {
  json j = devices_.at(name)->describe();
  if (auto l = leases_.find(name); l != leases_.end()) {
    j["lease"] = l->second->describe();
  }
  if (auto v = vnics_.find(name); v != vnics_.end()) {
    j["vnic"] = v->second;
  }
  return j;
}

control::ApiReply HostDaemon::device_list(const json&) {
  json arr = json::array();
  for (const auto& [name, dev] : devices_) {
    arr.push_back(describe(name));
  }
  return control::ApiReply{200, json{{"devices", arr}}};
}

control::ApiReply HostDaemon::device_stats(const json& body) {
  std::string only;
  if (auto it = body.find("name"); it != body.end()) {
    if (!it->is_string()) {
      return control::error_reply(Errc::kInvalidArgument, "name must be a string");
    }
    only = it->get<std::string>();
    if (!devices_.count(only)) {
      return control::error_reply(Errc::kNotFound, "no device named '" + only + "'");
    }
  }
  json arr = json::array();
  for (const auto& [name, dev] : devices_) {
    if (!only.empty() && name != only) {
      continue;
    }
    json st = dev->stats();
    st["name"] = name;
    arr.push_back(std::move(st));
  }
  return control::ApiReply{200, json{{"timestamp_ns", now_ns()}, {"devices", arr}}};
}

std::string HostDaemon::metrics() {
  // Every numeric per-queue counter of every device becomes a counter family
  // viopool_<type>_<counter>_total{device, queue}.
  std::map<std::string, std::string> families;
  for (const auto& [dname, dev] : devices_) {
    const json st = dev->stats();
    const std::string type = st.value("type", "dev");
    std::size_t qi = 0;
    for (const auto& q : st.value("queues", json::array())) {
      for (auto it = q.begin(); it != q.end(); ++it) {
        if (!it.value().is_number_unsigned() || it.key() == "queue" || it.key() == "queue_pair") {
          continue;
        }
        const std::string fam = "viopool_" + type + "_" + it.key() + "_total";
        families[fam] += fam + "{device=\"" + dname + "\",queue=\"" + std::to_string(qi) +
                         "\"} " + std::to_string(it.value().get<std::uint64_t>()) + "\n";
      }
      ++qi;
    }
    // Device-wide session counts (crypto).
    const json ses = st.value("sessions", json());
    if (ses.is_object()) {
      for (auto it = ses.begin(); it != ses.end(); ++it) {
        if (!it.value().is_number_unsigned()) {
          continue;
        }
        const bool gauge = it.key() == "active" || it.key() == "max";
        const std::string fam =
            "viopool_" + type + "_sessions_" + it.key() + (gauge ? "" : "_total");
        families[fam] += fam + "{device=\"" + dname + "\"} " +
                         std::to_string(it.value().get<std::uint64_t>()) + "\n";
      }
    }
  }
  std::string out;
  for (const auto& [fam, lines] : families) {
    const bool counter = fam.size() > 6 && fam.compare(fam.size() - 6, 6, "_total") == 0;
    out += "# TYPE " + fam + (counter ? " counter\n" : " gauge\n") + lines;
  }
  out += "# TYPE viopool_poll_loop_sleeps_total counter\n";
  for (const auto& l : loops_) {
    out += "viopool_poll_loop_sleeps_total{loop=\"" + l.loop->name() + "\"} " +
           std::to_string(l.loop->stats().sleeps) + "\n";
  }
  return out;
}

}  // namespace viopool::app
