// HostProc and testpmd launchers.
#include "tests/support/viopool_harness.h"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>

namespace viopool::testing {
namespace {
std::atomic<int> g_seq{0};
}

ApiResult api_call(const std::string& socket, const std::string& op, const nlohmann::json& body) {
  httplib::Client c(socket);
  c.set_address_family(AF_UNIX);
  c.set_connection_timeout(std::chrono::seconds(2));
  c.set_read_timeout(std::chrono::seconds(20));
  auto r = c.Post("/v1/" + op, body.dump(), "application/json");
  if (!r) {
    return ApiResult{0, nlohmann::json::object()};
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return ApiResult{r->status, j.is_object() ? j : nlohmann::json::object()};
}

HostProc::HostProc(const TempDir& dir, nlohmann::json config, const std::string& tag,
                   const std::string& netns) {
  socket_ = dir.file(tag + ".sock");
  config["control_socket"] = socket_;
  const std::string cfg = dir.file(tag + ".json");
  write_file(cfg, config.dump(2));
  proc_ = Process({build_path("vhost-backend/app/viopool-host"), "--config", cfg, "--no-huge",
                   "--memory", "256"},
                  SpawnOptions{dir.file(tag + ".log"), netns});
  const bool up = wait_until(
      [&] { return api_call(socket_, "device_list", nlohmann::json::object()).status == 200; },
      std::chrono::seconds(20));
  BOOST_REQUIRE_MESSAGE(up, "viopool-host did not come up; log:\n" << proc_.log());
}

ApiResult HostProc::api(const std::string& op, const nlohmann::json& body) const {
  return api_call(socket_, op, body);
}

nlohmann::json HostProc::device(const std::string& name) const {
  auto r = api("device_list");
  for (const auto& d : r.body.value("devices", nlohmann::json::array())) {
    if (d.value("name", "") == name) {
      return d;
    }
  }
  return nlohmann::json::object();
}

nlohmann::json HostProc::stats(const std::string& name) const {
  auto r = api("device_stats", {{"name", name}});
  auto devs = r.body.value("devices", nlohmann::json::array());
  return devs.empty() || !devs[0].is_object() ? nlohmann::json::object() : devs[0];
}

std::uint64_t HostProc::total(const std::string& name, const char* counter) const {
  auto s = stats(name);
  if (!s.contains("total")) {
    return 0;
  }
  return s["total"].value(counter, std::uint64_t{0});
}

int viopoolctl(const TempDir& dir, const NetNs& ns, const std::string& args, nlohmann::json& out,
               std::string* err) {
  const std::string o = dir.file("ctl" + std::to_string(g_seq.fetch_add(1)) + ".out");
  const std::string e = o + ".err";
  const int rc = ns.exec(build_path("integration/viopoolctl/viopoolctl") + " --json " + args +
                         " > " + o + " 2> " + e);
  out = nlohmann::json::parse(read_file(o), nullptr, false);
  if (err != nullptr) {
    *err = read_file(e);
  }
  return rc;
}

Process start_testpmd(const TempDir& dir, const TestpmdOptions& o) {
  const int n = g_seq.fetch_add(1);
  std::string vdev = "--vdev=net_virtio_user0,path=" + o.vhost_socket +
                     ",queues=" + std::to_string(o.queues) + ",queue_size=1024";
  if (o.virtio_server) {
    vdev += ",server=1";
  }
  if (!o.mac.empty()) {
    vdev += ",mac=" + o.mac;
  }
  std::vector<std::string> args = {"dpdk-testpmd", "--no-huge", "-m", "256", "--no-pci",
                                   "--no-shconf", "--file-prefix=" + o.tag + std::to_string(n) + "-" +
                                                      std::to_string(::getpid()),
                                   "--lcores=0@(0-1),1@(0-1)", vdev};
  for (const auto& v : o.extra_vdevs) {
    args.push_back("--vdev=" + v);
  }
  args.insert(args.end(), {"--", "--nb-cores=1", "--total-num-mbufs=8192",
                           "--rxq=" + std::to_string(o.queues), "--txq=" + std::to_string(o.queues),
                           "--forward-mode=" + o.forward_mode, "--port-topology=" + o.topology,
                           "--stats-period=1", "--no-flush-rx"});
  if (o.tx_first) {
    args.push_back("--tx-first");
  }
  return Process(args, SpawnOptions{dir.file(o.tag + std::to_string(n) + ".log")});
}

int run_frontend(const TempDir& dir, const std::vector<std::string>& args,
                 nlohmann::json& report, const std::string& tag) {
  using nlohmann::json;
  std::vector<std::string> argv = {build_path("integration/frontend/viopool-frontend"), "blk",
                                   "--json", "--connect-timeout", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = dir.file(tag + ".out");
  Process p(argv, SpawnOptions{out});
  const int st = p.wait_exit(std::chrono::seconds(120));
  const std::string text = read_file(out);
  // The JSON report: the last block from a line "{" to a line "}" that
  // parses as an object (stderr lines may surround it).
  report = json::object();
  std::string block;
  bool in_block = false;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t nl = std::min(text.find('\n', pos), text.size());
    const std::string line = text.substr(pos, nl - pos);
    if (line == "{") {
      in_block = true;
      block.clear();
    }
    if (in_block) {
      block += line + "\n";
      if (line == "}") {
        in_block = false;
        auto j = json::parse(block, nullptr, false);
        if (j.is_object()) {
          report = j;
        }
      }
    }
    pos = nl + 1;
  }
  BOOST_TEST_MESSAGE("viopool-frontend " << tag << ": " << text);
  return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace viopool::testing
