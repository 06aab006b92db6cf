// viopoolctl: the command line of viopool's control API. Talks JSON over HTTP
// to viopool-host's unix socket (device ...) and to viopool-appliance over TCP
// (pool ...); prints tables for people and --json for tools.
#include <CLI/CLI.hpp>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace {

using nlohmann::json;

struct Ctx {
  std::string socket;
  std::string appliance;
  bool json_out = false;
};

// Performs one API call; prints the error and returns false on failure.
bool call_with(httplib::Client& cli, const std::string& where, const std::string& op,
               const json& body, json& out) {
  cli.set_connection_timeout(std::chrono::seconds(5));
  cli.set_read_timeout(std::chrono::seconds(30));
  auto res = cli.Post("/v1/" + op, body.dump(), "application/json");
  if (!res) {
    std::fprintf(stderr, "viopoolctl: cannot reach %s: %s\n", where.c_str(),
                 httplib::to_string(res.error()).c_str());
    return false;
  }
  out = json::parse(res->body, nullptr, false);
  if (out.is_discarded()) {
    std::fprintf(stderr, "viopoolctl: %s answered HTTP %d with a body that is not JSON\n",
                 where.c_str(), res->status);
    return false;
  }
  if (res->status >= 400) {
    const auto& e = out.value("error", json::object());
    std::fprintf(stderr, "viopoolctl: %s failed (HTTP %d, %s): %s\n", op.c_str(), res->status,
                 e.value("code", "?").c_str(), e.value("message", "").c_str());
    return false;
  }
  return true;
}

bool call(const Ctx& c, const std::string& op, const json& body, json& out) {
  httplib::Client cli(c.socket);
  cli.set_address_family(AF_UNIX);
  return call_with(cli, c.socket, op, body, out);
}

// The appliance's API: ADDRESS:PORT over TCP.
bool call_appliance(const Ctx& c, const std::string& op, const json& body, json& out) {
  const auto colon = c.appliance.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(c.appliance.c_str() + colon + 1);
  if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
    std::fprintf(stderr, "viopoolctl: --appliance '%s': expected ADDRESS:PORT\n",
                 c.appliance.c_str());
    return false;
  }
  httplib::Client cli(c.appliance.substr(0, colon), port);
  return call_with(cli, c.appliance, op, body, out);
}

std::string human(std::uint64_t b) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
  return buf;
}

void print_inventory(const json& r) {
  std::printf("%-12s %-10s %9s %9s %9s %5s %s\n", "DEVICE", "KIND", "CAPACITY", "COMMITTED",
              "ALLOCATED", "FUNCS", "PATH");
  for (const auto& d : r.at("devices")) {
    std::printf("%-12s %-10s %9s %9s %9s %5d %s\n", d.value("name", "").c_str(),
                d.value("kind", "").c_str(), human(d.value("capacity", 0ull)).c_str(),
                human(d.value("committed", 0ull)).c_str(),
                d.contains("allocated") ? human(d.value("allocated", 0ull)).c_str() : "-",
                d.value("functions", 0), d.value("path", "").c_str());
  }
}

void print_functions(const json& r) {
  std::printf("%-12s %5s %-7s %-10s %17s %-5s %-11s %s\n", "NAME", "ID", "CLASS", "DEVICE",
              "SIZE/MAC", "THIN", "STATE", "HOLDERS");
  for (const auto& f : r.at("functions")) {
    std::string holders;
    for (const auto& l : f.value("leases", json::array())) {
      holders += (holders.empty() ? "" : ",") + l.value("host", "") + "#" +
                 std::to_string(l.value("lease", 0ull));
    }
    const bool vnic = f.value("class", "") == "vnic";
    std::printf("%-12s %5u %-7s %-10s %17s %-5s %-11s %s\n", f.value("name", "").c_str(),
                f.value("id", 0u), f.value("class", "").c_str(), f.value("device", "").c_str(),
                vnic ? f.value("mac", "").c_str() : human(f.value("size", 0ull)).c_str(),
                f.value("thin", false) ? "yes" : "no", f.value("state", "").c_str(),
                holders.c_str());
  }
}

void print_leases(const json& r) {
  std::printf("%6s %-12s %-16s %-9s %10s %12s\n", "LEASE", "FUNCTION", "HOST", "MODE", "TTL_MS",
              "EXPIRES_MS");
  for (const auto& l : r.at("leases")) {
    std::printf("%6llu %-12s %-16s %-9s %10lld %12lld\n", l.value("id", 0ull),
                l.value("function", "").c_str(), l.value("host", "").c_str(),
                l.value("mode", "").c_str(), l.value("ttl_ms", 0ll),
                l.value("expires_in_ms", 0ll));
  }
}

void print_offload(const json& r) {
  for (const auto& x : r.at("rules")) {
    std::printf("%-16s %s\n", x.value("state", "").c_str(), x.value("rule", "").c_str());
    for (const auto& why : x.value("reasons", json::array())) {
      std::printf("%-16s   why: %s\n", "", why.get<std::string>().c_str());
    }
    for (const auto& f : x.value("rte_flow", json::array())) {
      std::printf("%-16s   %s", "", f.value("flow", "").c_str());
      if (f.contains("packets")) {
        std::printf("   [%llu packets, %llu bytes]", f.value("packets", 0ull),
                    f.value("bytes", 0ull));
      }
      std::printf("\n");
    }
    if (x.contains("note")) {
      std::printf("%-16s   note: %s\n", "", x.value("note", "").c_str());
    }
  }
}

void print_devices(const json& r) {
  std::printf("%-12s %-6s %-8s %-7s %-9s %-4s %s\n", "NAME", "TYPE", "STATE", "MODE", "BACKEND",
              "QPS", "SOCKET");
  for (const auto& d : r.at("devices")) {
    const bool blk = d.value("type", "") != "net";  // blk and crypto count queues
    std::string qps = blk ? std::to_string(d.value("active_queues", 0)) + "/" +
                                std::to_string(d.value("queues", 0))
                          : std::to_string(d.value("active_queue_pairs", 0)) + "/" +
                                std::to_string(d.value("queue_pairs", 0));
    std::printf("%-12s %-6s %-8s %-7s %-9s %-4s %s\n", d.value("name", "").c_str(),
                d.value("type", "").c_str(), d.value("state", "").c_str(),
                d.value("mode", "").c_str(), d["backend"].value("kind", "").c_str(), qps.c_str(),
                d.value("socket", "").c_str());
  }
}

void print_blk_stats(const json& d) {
  std::printf("%-12s %-3s %12s %12s %8s %8s %14s %14s %6s %6s %8s %8s\n", "DEVICE", "Q", "READS",
              "WRITES", "FLUSHES", "DISCARDS", "READ_BYTES", "WRITE_BYTES", "IOERR", "REJECT",
              "P50_US", "P99_US");
  for (const auto& q : d.at("queues")) {
    const auto lat = q.value("latency_ns", json::object());
    std::printf("%-12s %-3d %12llu %12llu %8llu %8llu %14llu %14llu %6llu %6llu %8.1f %8.1f\n",
                d.value("name", "").c_str(), q.value("queue", 0), q.value("reads", 0ull),
                q.value("writes", 0ull), q.value("flushes", 0ull), q.value("discards", 0ull),
                q.value("read_bytes", 0ull), q.value("write_bytes", 0ull), q.value("io_errors", 0ull),
                q.value("rejected", 0ull), lat.value("p50", 0ull) / 1e3, lat.value("p99", 0ull) / 1e3);
  }
}

std::uint64_t crypto_ops(const json& q) {
  return q.value("cipher_ops", 0ull) + q.value("hash_ops", 0ull) + q.value("mac_ops", 0ull) +
         q.value("chain_ops", 0ull) + q.value("aead_ops", 0ull);
}

void print_crypto_stats(const json& d) {
  const auto ses = d.value("sessions", json::object());
  std::printf("%-12s sessions active=%llu max=%llu created=%llu closed=%llu refused=%llu\n",
              d.value("name", "").c_str(), ses.value("active", 0ull), ses.value("max", 0ull),
              ses.value("created", 0ull), ses.value("closed", 0ull), ses.value("refused", 0ull));
  std::printf("%-12s %-3s %12s %12s %12s %12s %12s %14s %8s %8s %8s %8s\n", "DEVICE", "Q",
              "CIPHER", "HASH+MAC", "CHAIN", "AEAD", "OPS", "BYTES", "BADREQ", "INVSESS",
              "AUTHFAIL", "P50_US");
  for (const auto& q : d.at("queues")) {
    const auto lat = q.value("latency_ns", json::object());
    std::printf("%-12s %-3d %12llu %12llu %12llu %12llu %12llu %14llu %8llu %8llu %8llu %8.1f\n",
                d.value("name", "").c_str(), q.value("queue", 0), q.value("cipher_ops", 0ull),
                q.value("hash_ops", 0ull) + q.value("mac_ops", 0ull), q.value("chain_ops", 0ull),
                q.value("aead_ops", 0ull), static_cast<unsigned long long>(crypto_ops(q)),
                q.value("bytes", 0ull), q.value("bad_requests", 0ull),
                q.value("invalid_session", 0ull), q.value("auth_failures", 0ull),
                lat.value("p50", 0ull) / 1e3);
  }
}

void print_stats(const json& r) {
  bool header = false;
  for (const auto& d : r.at("devices")) {
    if (d.value("type", "") == "blk") {
      print_blk_stats(d);
    } else if (d.value("type", "") == "crypto") {
      print_crypto_stats(d);
    }
  }
  for (const auto& d : r.at("devices")) {
    if (d.value("type", "") != "net") {
      continue;
    }
    if (!header) {
      header = true;
      std::printf("%-12s %-3s %14s %14s %10s %14s %14s %10s %10s %10s\n", "DEVICE", "QP", "RX_PKTS",
              "RX_BYTES", "RX_DROPS", "TX_PKTS", "TX_BYTES", "TX_DROPS", "KICKS", "NOTIFS");
    }
    for (const auto& q : d.at("queues")) {
      std::printf("%-12s %-3d %14llu %14llu %10llu %14llu %14llu %10llu %10llu %10llu\n",
                  d.value("name", "").c_str(), q.value("queue_pair", 0),
                  q.value("rx_packets", 0ull), q.value("rx_bytes", 0ull), q.value("rx_drops", 0ull),
                  q.value("tx_packets", 0ull), q.value("tx_bytes", 0ull), q.value("tx_drops", 0ull),
                  q.value("kicks", 0ull), q.value("notifications", 0ull));
    }
  }
}

// Prints per-queue rates between two stats replies.
void print_rates(const json& a, const json& b) {
  const double dt = static_cast<double>(b.value("timestamp_ns", 0ull) - a.value("timestamp_ns", 0ull)) / 1e9;
  if (dt <= 0) {
    return;
  }
  bool net_header = false;
  for (const auto& db : b.at("devices")) {
    const bool blk = db.value("type", "") == "blk";
    const bool crypto = db.value("type", "") == "crypto";
    const json* da = nullptr;
    for (const auto& d : a.at("devices")) {
      if (d.value("name", "") == db.value("name", "")) {
        da = &d;
      }
    }
    if (da == nullptr) {
      continue;
    }
    const auto& qa = da->at("queues");
    const auto& qb = db.at("queues");
    for (std::size_t i = 0; i < qb.size() && i < qa.size(); ++i) {
      auto rate = [&](const char* k) {
        return static_cast<double>(qb[i].value(k, 0ull) - qa[i].value(k, 0ull)) / dt;
      };
      if (crypto) {
        if (i == 0) {
          std::printf("%-12s %-3s %12s %10s %10s\n", "DEVICE", "Q", "OPS/s", "MB/s", "ERRORS/s");
        }
        const double ops = static_cast<double>(crypto_ops(qb[i]) - crypto_ops(qa[i])) / dt;
        std::printf("%-12s %-3zu %12.0f %10.1f %10.0f\n", db.value("name", "").c_str(), i, ops,
                    rate("bytes") / 1e6,
                    rate("bad_requests") + rate("invalid_session") + rate("engine_errors"));
        continue;
      }
      if (blk) {
        if (i == 0) {
          std::printf("%-12s %-3s %10s %10s %10s %10s %10s\n", "DEVICE", "Q", "READ_IOPS",
                      "WRITE_IOPS", "READ_MB/s", "WRITE_MB/s", "ERRORS/s");
        }
        std::printf("%-12s %-3zu %10.0f %10.0f %10.1f %10.1f %10.0f\n", db.value("name", "").c_str(),
                    i, rate("reads"), rate("writes"), rate("read_bytes") / 1e6,
                    rate("write_bytes") / 1e6, rate("io_errors") + rate("rejected"));
        continue;
      }
      if (!net_header) {
        net_header = true;
        std::printf("%-12s %-3s %10s %10s %10s %10s %10s %10s\n", "DEVICE", "QP", "RX_MPPS",
                    "RX_GBPS", "TX_MPPS", "TX_GBPS", "RX_DROP/s", "TX_DROP/s");
      }
      std::printf("%-12s %-3zu %10.3f %10.3f %10.3f %10.3f %10.0f %10.0f\n",
                  db.value("name", "").c_str(), i, rate("rx_packets") / 1e6,
                  rate("rx_bytes") * 8 / 1e9, rate("tx_packets") / 1e6,
                  rate("tx_bytes") * 8 / 1e9, rate("rx_drops"), rate("tx_drops"));
    }
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"viopoolctl: control viopool daemons through their JSON API", "viopoolctl"};
  app.require_subcommand(1);
  Ctx c;
  const char* env = std::getenv("VIOPOOL_HOST_SOCKET");
  c.socket = env ? env : "/run/viopool/host.sock";
  app.add_option("-s,--socket", c.socket,
                 "viopool-host control socket (default $VIOPOOL_HOST_SOCKET or "
                 "/run/viopool/host.sock)");
  app.add_flag("--json", c.json_out, "Print the API's JSON reply instead of a table");
  const char* aenv = std::getenv("VIOPOOL_APPLIANCE");
  c.appliance = aenv ? aenv : "127.0.0.1:7480";
  app.add_option("-a,--appliance", c.appliance,
                 "viopool-appliance control API, ADDRESS:PORT (default $VIOPOOL_APPLIANCE or "
                 "127.0.0.1:7480)");

  auto* dev = app.add_subcommand("device", "virtio devices of viopool-host");
  dev->require_subcommand(1);

  auto* list = dev->add_subcommand("list", "List devices with state and negotiated queues");

  std::string a_name, a_socket, a_mode = "server", a_backend = "loopback", a_devargs;
  std::string a_type = "net", a_path, a_size, a_serial, a_direct = "auto";
  bool a_ro = false;
  unsigned a_qps = 1, a_queues = 1;
  int a_lcore = -1;
  bool a_no_mrg = false;
  auto* add = dev->add_subcommand(
      "add",
      "Add a device: virtio-net (--type net), virtio-blk (--type blk) or virtio-crypto (--type "
      "crypto)");
  add->add_option("name", a_name, "Device name")->required();
  add->add_option("--type", a_type, "net, blk or crypto")
      ->check(CLI::IsMember({"net", "blk", "crypto"}));
  add->add_option("--socket", a_socket, "vhost-user socket path")->required();
  add->add_option("--mode", a_mode, "server (we listen) or client (we connect and reconnect)")
      ->check(CLI::IsMember({"server", "client"}));
  add->add_option("--queue-pairs", a_qps, "Queue pairs offered")->check(CLI::Range(1u, 16u));
  add->add_option("--backend", a_backend,
                  "net: loopback, null or ethdev; blk: uring, malloc, null or pool; crypto: "
                  "cryptodev")
      ->check(CLI::IsMember({"loopback", "null", "ethdev", "uring", "malloc", "pool", "cryptodev"}));
  add->add_option("--devargs", a_devargs,
                  "net ethdev backend: DPDK devargs, e.g. net_tap0,iface=vp0; crypto: the engine, "
                  "e.g. crypto_aesni_mb0");
  add->add_option("--queues", a_queues, "blk: request queues; crypto: data queues")
      ->check(CLI::Range(1u, 16u));
  unsigned a_max_sessions = 256;
  add->add_option("--max-sessions", a_max_sessions, "crypto: session cap of the device")
      ->check(CLI::Range(1u, 65536u));
  add->add_option("--path", a_path, "blk uring backend: file or block device");
  add->add_option("--size", a_size, "blk malloc/null backend: capacity (bytes, or 64M, 1G)");
  add->add_option("--direct", a_direct, "blk uring backend: O_DIRECT auto, on or off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  std::string a_uri, a_key;
  unsigned a_function = 0, a_mtu = 1472, a_timeout_ms = 30000;
  add->add_option("--uri", a_uri, "blk pool backend: the volume, pool://ADDRESS:PORT/VOLUME");
  add->add_option("--function-id", a_function, "blk pool backend: the volume's function id");
  add->add_option("--key", a_key, "blk pool backend: the function's fabric key (32 hex digits)");
  add->add_option("--mtu", a_mtu, "blk pool backend: fabric bytes per datagram (default 1472)")
      ->check(CLI::Range(512u, 65507u));
  add->add_option("--timeout-ms", a_timeout_ms,
                  "blk pool backend: a request not done by then fails with EIO (default 30000)");
  std::string a_appliance, a_volume, a_lease_size, a_lease_mode = "exclusive";
  long long a_lease_ttl = 0;
  add->add_option("--lease-from", a_appliance,
                  "pool backend: lease the volume (blk), slot (crypto) or vNIC (net) from this appliance API "
                  "(ADDRESS:PORT); blk without it takes --uri/--function-id/--key");
  add->add_option("--volume", a_volume, "blk pool backend with --lease-from: the volume's name");
  std::string a_slot;
  add->add_option("--slot", a_slot, "crypto pool backend with --lease-from: the slot's name");
  std::string a_vnic;
  add->add_option("--vnic", a_vnic,
                  "net pool backend with --lease-from: the vNIC's name (default: any free one)");
  add->add_option("--lease-size", a_lease_size,
                  "blk pool backend with --lease-from: any free volume at least this large");
  add->add_option("--lease-mode", a_lease_mode, "exclusive (default) or shared")
      ->check(CLI::IsMember({"exclusive", "shared"}));
  add->add_option("--lease-ttl-ms", a_lease_ttl, "lease TTL (default: the appliance's)");
  add->add_option("--serial", a_serial, "blk: GET_ID serial (<= 20 bytes; default: the name)");
  add->add_flag("--read-only", a_ro, "blk: read-only device");
  add->add_option("--lcore", a_lcore, "Worker lcore that polls the device");
  add->add_flag("--no-mrg-rxbuf", a_no_mrg, "Do not offer mergeable RX buffers");

  std::string d_name;
  auto* del = dev->add_subcommand("del", "Remove a device (its frontend is disconnected)");
  del->add_option("name", d_name, "Device name")->required();

  std::string s_name;
  double s_watch = 0;
  unsigned s_count = 0;
  auto* stats = dev->add_subcommand("stats", "Per-queue counters, or rates with --watch");
  stats->add_option("name", s_name, "Only this device");
  stats->add_option("--watch", s_watch, "Print rates every SECONDS")->check(CLI::Range(0.1, 3600.0));
  stats->add_option("--count", s_count, "With --watch: stop after N reports (0: until killed)");

  auto* metrics = app.add_subcommand("metrics", "Prometheus metrics of viopool-host");

  auto* offl = app.add_subcommand("offload", "viopool-offload: OVS rules and their offload state");
  offl->require_subcommand(1);
  const char* oenv = std::getenv("VIOPOOL_OFFLOAD_SOCKET");
  std::string offload_socket = oenv ? oenv : "/run/viopool/offload.sock";
  offl->add_option("--socket", offload_socket,
                   "viopool-offload control socket (default $VIOPOOL_OFFLOAD_SOCKET or "
                   "/run/viopool/offload.sock)");
  std::string offload_nic;
  offl->add_option("--nic", offload_nic,
                   "Ask the appliance (-a) about the agent of its NIC port NAME instead");
  auto* o_show = offl->add_subcommand(
      "show", "Every OpenFlow rule: offloaded (with its rte_flow rules and counters) or why not");
  bool o_no_counters = false;
  o_show->add_flag("--no-counters", o_no_counters, "Do not read hardware counters");
  auto* o_stats = offl->add_subcommand("stats", "Rules by state, NIC operations, follower");
  offl->add_subcommand("resync", "Read the bridge's table again now");

  auto* pool = app.add_subcommand("pool", "viopool-appliance: inventory, carving and leases");
  pool->require_subcommand(1);
  auto* p_inv = pool->add_subcommand("inventory", "Devices volumes are carved from");
  std::string p_name, p_device, p_size, p_host, p_function;
  bool p_thin = false, p_shared = false;
  unsigned p_bs = 512, p_queues = 4;
  unsigned long long p_iops = 0, p_bps = 0, p_lease = 0;
  long long p_ttl = 0;
  auto* p_carve = pool->add_subcommand("carve", "Carve a volume from an inventory device");
  p_carve->add_option("name", p_name, "Volume name")->required();
  p_carve->add_option("--device", p_device, "Inventory device")->required();
  p_carve->add_option("--size", p_size, "Size (bytes, or 64M, 10G)")->required();
  p_carve->add_flag("--thin", p_thin, "Thin (sparse; directory devices only)");
  p_carve->add_option("--block-size", p_bs, "Logical block size (default 512)");
  p_carve->add_option("--queues", p_queues, "Fabric queues (default 4)");
  p_carve->add_option("--iops-limit", p_iops, "Requests per second (0: none)");
  p_carve->add_option("--bps-limit", p_bps, "Bytes per second (0: none)");
  unsigned p_max_sessions = 64;
  unsigned long long p_ops = 0;
  auto* p_carve_crypto =
      pool->add_subcommand("carve-crypto", "Carve a crypto slot from an inventory crypto engine");
  p_carve_crypto->add_option("name", p_name, "Slot name")->required();
  p_carve_crypto->add_option("--device", p_device, "Inventory crypto engine")->required();
  p_carve_crypto->add_option("--queues", p_queues, "Data queues (default 4)");
  p_carve_crypto->add_option("--max-sessions", p_max_sessions, "Sessions at once (default 64)");
  p_carve_crypto->add_option("--ops-limit", p_ops, "Operations per second (0: none)");
  std::string p_mac;
  unsigned p_vlan = 0, p_mtu = 1500, p_rate = 0, p_peak = 0, p_vnic_queues = 1;
  auto* p_carve_vnic =
      pool->add_subcommand("carve-vnic", "Carve a vNIC (MAC, VLAN, rates) on an inventory NIC port");
  p_carve_vnic->add_option("name", p_name, "vNIC name")->required();
  p_carve_vnic->add_option("--device", p_device, "Inventory NIC port")->required();
  p_carve_vnic->add_option("--mac", p_mac, "Unicast MAC (default: one made from the function id)");
  p_carve_vnic->add_option("--vlan", p_vlan, "VLAN the appliance tags its frames with (0: none)");
  p_carve_vnic->add_option("--mtu", p_mtu, "MTU (default 1500, at most the port's)");
  p_carve_vnic->add_option("--queues", p_vnic_queues, "Queue pairs (default 1)");
  p_carve_vnic->add_option("--rate-mbps", p_rate, "Committed rate, Mb/s (0: none)");
  p_carve_vnic->add_option("--peak-mbps", p_peak, "Peak rate, Mb/s (0: none)");
  auto* p_list = pool->add_subcommand("list", "Carved functions with state and holders");
  auto* p_show = pool->add_subcommand("show", "One function, with its fabric counters");
  p_show->add_option("name", p_name, "Function name")->required();
  auto* p_delete = pool->add_subcommand("delete", "Delete a function (it must not be leased)");
  p_delete->add_option("name", p_name, "Function name")->required();
  auto* p_acquire = pool->add_subcommand("lease", "Lease a function to a host (prints its key)");
  p_acquire->add_option("--host", p_host, "The host's id")->required();
  p_acquire->add_option("--function", p_function, "By name");
  p_acquire->add_option("--size", p_size, "Or any free volume at least this large");
  std::string p_class;
  p_acquire->add_option("--class", p_class, "Or any free function of a class: volume, crypto, vnic");
  p_acquire->add_flag("--shared", p_shared, "A shared lease");
  p_acquire->add_option("--ttl-ms", p_ttl, "TTL (default: the appliance's)");
  auto* p_renew = pool->add_subcommand("renew", "Renew a lease, or every lease of --host");
  p_renew->add_option("lease", p_lease, "Lease id");
  p_renew->add_option("--host", p_host, "Every lease of this host");
  auto* p_release = pool->add_subcommand("release", "Release a lease");
  p_release->add_option("lease", p_lease, "Lease id")->required();
  auto* p_reassign = pool->add_subcommand("reassign", "Move a lease to another host (new key)");
  p_reassign->add_option("lease", p_lease, "Lease id")->required();
  p_reassign->add_option("--host", p_host, "The new holder")->required();
  auto* p_leases = pool->add_subcommand("leases", "Leases, optionally of one --host");
  p_leases->add_option("--host", p_host, "Only this host");
  auto* p_stats = pool->add_subcommand("stats", "Fabric counters of the appliance");

  CLI11_PARSE(app, argc, argv);

  json out;
  if (offl->parsed()) {
    Ctx oc = c;
    oc.socket = offload_socket;
    const std::string op = o_show->parsed()    ? "offload_show"
                           : o_stats->parsed() ? "offload_stats"
                                               : "offload_resync";
    json body = json::object();
    if (o_show->parsed()) {
      body["counters"] = !o_no_counters;
    }
    if (!offload_nic.empty()) {
      body["nic"] = offload_nic;
    }
    if (!(offload_nic.empty() ? call(oc, op, body, out) : call_appliance(c, op, body, out))) {
      return 1;
    }
    if (c.json_out || !o_show->parsed()) {
      std::cout << out.dump(2) << "\n";
    } else {
      print_offload(out);
    }
    return 0;
  }
  if (pool->parsed()) {
    std::string op;
    json body = json::object();
    void (*table)(const json&) = nullptr;
    if (p_inv->parsed()) {
      op = "inventory_list";
      table = print_inventory;
    } else if (p_carve->parsed()) {
      op = "volume_create";
      body = {{"name", p_name},     {"device", p_device},     {"size", p_size},
              {"thin", p_thin},     {"block_size", p_bs},     {"queues", p_queues},
              {"iops_limit", p_iops}, {"bps_limit", p_bps}};
    } else if (p_carve_crypto->parsed()) {
      op = "crypto_create";
      body = {{"name", p_name},
              {"device", p_device},
              {"queues", p_queues},
              {"max_sessions", p_max_sessions},
              {"ops_limit", p_ops}};
    } else if (p_carve_vnic->parsed()) {
      op = "vnic_create";
      body = {{"name", p_name},       {"device", p_device},    {"vlan", p_vlan},
              {"mtu", p_mtu},         {"queues", p_vnic_queues}, {"rate_mbps", p_rate},
              {"peak_mbps", p_peak}};
      if (!p_mac.empty()) {
        body["mac"] = p_mac;
      }
    } else if (p_list->parsed()) {
      op = "function_list";
      table = print_functions;
    } else if (p_show->parsed()) {
      op = "function_show";
      body = {{"name", p_name}};
    } else if (p_delete->parsed()) {
      op = "function_delete";
      body = {{"name", p_name}};
    } else if (p_acquire->parsed()) {
      op = "lease_acquire";
      body = {{"host", p_host}, {"mode", p_shared ? "shared" : "exclusive"}};
      if (!p_function.empty()) {
        body["function"] = p_function;
      } else if (!p_class.empty() && p_class != "volume") {
        body["class"] = p_class;
      } else {
        body["class"] = "volume";
        body["size"] = p_size.empty() ? std::string("0") : p_size;
      }
      if (p_ttl != 0) {
        body["ttl_ms"] = p_ttl;
      }
    } else if (p_renew->parsed()) {
      op = "lease_renew";
      if (p_lease != 0) {
        body["lease_id"] = p_lease;
      }
      if (!p_host.empty()) {
        body["host"] = p_host;
      }
    } else if (p_release->parsed()) {
      op = "lease_release";
      body = {{"lease_id", p_lease}};
    } else if (p_reassign->parsed()) {
      op = "lease_reassign";
      body = {{"lease_id", p_lease}, {"host", p_host}};
    } else if (p_leases->parsed()) {
      op = "lease_list";
      if (!p_host.empty()) {
        body["host"] = p_host;
      }
      table = print_leases;
    } else if (p_stats->parsed()) {
      op = "appliance_stats";
    }
    if (!call_appliance(c, op, body, out)) {
      return 1;
    }
    if (c.json_out || table == nullptr) {
      std::cout << out.dump(2) << "\n";
    } else {
      table(out);
    }
    return 0;
  }
  if (metrics->parsed()) {
    httplib::Client cli(c.socket);
    cli.set_address_family(AF_UNIX);
    auto res = cli.Get("/metrics");
    if (!res) {
      std::fprintf(stderr, "viopoolctl: cannot reach %s\n", c.socket.c_str());
      return 1;
    }
    std::fputs(res->body.c_str(), stdout);
    return 0;
  }
  if (list->parsed()) {
    if (!call(c, "device_list", json::object(), out)) {
      return 1;
    }
    if (c.json_out) {
      std::cout << out.dump(2) << "\n";
    } else {
      print_devices(out);
    }
    return 0;
  }
  if (add->parsed()) {
    json b = {{"kind", a_backend}};
    json body;
    if (a_type == "crypto") {
      body = {{"name", a_name},
              {"type", "crypto"},
              {"socket", a_socket},
              {"mode", a_mode},
              {"queues", a_queues},
              {"lcore", a_lcore},
              {"backend",
               {{"kind", "cryptodev"}, {"devargs", a_devargs}, {"max_sessions", a_max_sessions}}}};
      if (a_backend == "pool") {
        body["backend"] = {{"kind", "pool"},
                           {"appliance", a_appliance},
                           {"slot", a_slot},
                           {"max_sessions", a_max_sessions},
                           {"mtu", a_mtu},
                           {"timeout_ms", a_timeout_ms == 30000 ? 5000u : a_timeout_ms}};
      }
    } else if (a_type == "blk") {
      if (a_backend == "loopback" || a_backend == "ethdev") {
        b["kind"] = "uring";
      }
      if (!a_path.empty()) {
        b["path"] = a_path;
      }
      if (!a_size.empty()) {
        b["size"] = a_size;
      }
      if (b["kind"] == "uring") {
        b["direct"] = a_direct;
      }
      if (b["kind"] == "pool" && !a_appliance.empty()) {
        b["appliance"] = a_appliance;
        if (!a_volume.empty()) {
          b["volume"] = a_volume;
        }
        if (!a_lease_size.empty()) {
          b["lease_size"] = a_lease_size;
        }
        b["lease_mode"] = a_lease_mode;
        b["lease_ttl_ms"] = a_lease_ttl;
        b["mtu"] = a_mtu;
        b["timeout_ms"] = a_timeout_ms;
      } else if (b["kind"] == "pool") {
        b["uri"] = a_uri;
        b["function_id"] = a_function;
        b["key"] = a_key;
        b["mtu"] = a_mtu;
        b["timeout_ms"] = a_timeout_ms;
      }
      body = {{"name", a_name},   {"type", "blk"},      {"socket", a_socket},
              {"mode", a_mode},   {"queues", a_queues}, {"read_only", a_ro},
              {"lcore", a_lcore}, {"backend", b}};
      if (!a_serial.empty()) {
        body["serial"] = a_serial;
      }
    } else {
      if (!a_devargs.empty()) {
        b["devargs"] = a_devargs;
      }
      if (a_backend == "pool") {
        b["appliance"] = a_appliance;
        b["vnic"] = a_vnic;
        b["lease_ttl_ms"] = a_lease_ttl;
      }
      body = {{"name", a_name},     {"type", "net"},     {"socket", a_socket},
              {"mode", a_mode},     {"queue_pairs", a_qps}, {"lcore", a_lcore},
              {"mrg_rxbuf", !a_no_mrg}, {"backend", b}};
    }
    if (!call(c, "device_add", body, out)) {
      return 1;
    }
    if (c.json_out) {
      std::cout << out.dump(2) << "\n";
    } else {
      std::printf("added %s (socket %s, %s)\n", a_name.c_str(), a_socket.c_str(), a_mode.c_str());
      if (out.contains("vnic")) {
        std::printf("vNIC %s: MAC %s VLAN %d (give the guest this MAC)\n",
                    out["lease"].value("function", "").c_str(),
                    out["vnic"].value("mac", "").c_str(), out["vnic"].value("vlan", 0));
      }
    }
    return 0;
  }
  if (del->parsed()) {
    if (!call(c, "device_del", json{{"name", d_name}}, out)) {
      return 1;
    }
    if (c.json_out) {
      std::cout << out.dump(2) << "\n";
    } else {
      std::printf("deleted %s\n", d_name.c_str());
    }
    return 0;
  }
  if (stats->parsed()) {
    json body = json::object();
    if (!s_name.empty()) {
      body["name"] = s_name;
    }
    if (!call(c, "device_stats", body, out)) {
      return 1;
    }
    if (s_watch <= 0) {
      if (c.json_out) {
        std::cout << out.dump(2) << "\n";
      } else {
        print_stats(out);
      }
      return 0;
    }
    for (unsigned n = 0; s_count == 0 || n < s_count; ++n) {
      std::this_thread::sleep_for(std::chrono::duration<double>(s_watch));
      json next;
      if (!call(c, "device_stats", body, next)) {
        return 1;
      }
      if (c.json_out) {
        std::cout << next.dump() << "\n" << std::flush;
      } else {
        print_rates(out, next);
      }
      out = std::move(next);
    }
    return 0;
  }
  return 0;
}
