// viopoolctl: the command line of viopool's control API. Talks JSON over HTTP
// to viopool-host's unix socket; prints tables for people and --json for tools.
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
  bool json_out = false;
};

// Performs one API call; prints the error and returns false on failure.
bool call(const Ctx& c, const std::string& op, const json& body, json& out) {
  httplib::Client cli(c.socket);
  cli.set_address_family(AF_UNIX);
  cli.set_connection_timeout(std::chrono::seconds(5));
  cli.set_read_timeout(std::chrono::seconds(30));
  auto res = cli.Post("/v1/" + op, body.dump(), "application/json");
  if (!res) {
    std::fprintf(stderr, "viopoolctl: cannot reach %s: %s\n", c.socket.c_str(),
                 httplib::to_string(res.error()).c_str());
    return false;
  }
  out = json::parse(res->body, nullptr, false);
  if (out.is_discarded()) {
    std::fprintf(stderr, "viopoolctl: %s answered HTTP %d with a body that is not JSON\n",
                 c.socket.c_str(), res->status);
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

void print_devices(const json& r) {
  std::printf("%-12s %-6s %-8s %-7s %-9s %-4s %s\n", "NAME", "TYPE", "STATE", "MODE", "BACKEND",
              "QPS", "SOCKET");
  for (const auto& d : r.at("devices")) {
    std::string qps = std::to_string(d.value("active_queue_pairs", 0)) + "/" +
                      std::to_string(d.value("queue_pairs", 0));
    std::printf("%-12s %-6s %-8s %-7s %-9s %-4s %s\n", d.value("name", "").c_str(),
                d.value("type", "").c_str(), d.value("state", "").c_str(),
                d.value("mode", "").c_str(), d["backend"].value("kind", "").c_str(), qps.c_str(),
                d.value("socket", "").c_str());
  }
}

void print_stats(const json& r) {
  std::printf("%-12s %-3s %14s %14s %10s %14s %14s %10s %10s %10s\n", "DEVICE", "QP", "RX_PKTS",
              "RX_BYTES", "RX_DROPS", "TX_PKTS", "TX_BYTES", "TX_DROPS", "KICKS", "NOTIFS");
  for (const auto& d : r.at("devices")) {
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
  std::printf("%-12s %-3s %10s %10s %10s %10s %10s %10s\n", "DEVICE", "QP", "RX_MPPS", "RX_GBPS",
              "TX_MPPS", "TX_GBPS", "RX_DROP/s", "TX_DROP/s");
  for (const auto& db : b.at("devices")) {
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

  auto* dev = app.add_subcommand("device", "virtio devices of viopool-host");
  dev->require_subcommand(1);

  auto* list = dev->add_subcommand("list", "List devices with state and negotiated queues");

  std::string a_name, a_socket, a_mode = "server", a_backend = "loopback", a_devargs;
  unsigned a_qps = 1;
  int a_lcore = -1;
  bool a_no_mrg = false;
  auto* add = dev->add_subcommand("add", "Add a virtio-net device");
  add->add_option("name", a_name, "Device name")->required();
  add->add_option("--socket", a_socket, "vhost-user socket path")->required();
  add->add_option("--mode", a_mode, "server (we listen) or client (we connect and reconnect)")
      ->check(CLI::IsMember({"server", "client"}));
  add->add_option("--queue-pairs", a_qps, "Queue pairs offered")->check(CLI::Range(1u, 16u));
  add->add_option("--backend", a_backend, "loopback, null or ethdev")
      ->check(CLI::IsMember({"loopback", "null", "ethdev"}));
  add->add_option("--devargs", a_devargs, "ethdev backend: DPDK devargs, e.g. net_tap0,iface=vp0");
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

  CLI11_PARSE(app, argc, argv);

  json out;
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
    if (!a_devargs.empty()) {
      b["devargs"] = a_devargs;
    }
    json body = {{"name", a_name},     {"type", "net"},     {"socket", a_socket},
                 {"mode", a_mode},     {"queue_pairs", a_qps}, {"lcore", a_lcore},
                 {"mrg_rxbuf", !a_no_mrg}, {"backend", b}};
    if (!call(c, "device_add", body, out)) {
      return 1;
    }
    if (c.json_out) {
      std::cout << out.dump(2) << "\n";
    } else {
      std::printf("added %s (socket %s, %s)\n", a_name.c_str(), a_socket.c_str(), a_mode.c_str());
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
