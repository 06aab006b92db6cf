// viopool-host serving virtio-blk to viopool-frontend (our vhost-user
// frontend) over real vhost-user sockets: integrity on every backend and with
// several queues, read-only devices, config space, runtime add/remove.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

json blk_device(const TempDir& dir, const std::string& name, json backend, unsigned queues = 1) {
  return json{{"name", name},
              {"type", "blk"},
              {"socket", dir.file(name + ".vhost")},
              {"queues", queues},
              {"backend", std::move(backend)}};
}

std::string make_image(const TempDir& dir, const std::string& name, off_t size) {
  const std::string path = dir.file(name);
  std::ofstream(path).close();
  BOOST_REQUIRE(::truncate(path.c_str(), size) == 0);
  return path;
}

struct BackendCase {
  const char* label;
  const char* kind;
  const char* direct;
  unsigned queues;
  bool packed = false;
};
std::ostream& operator<<(std::ostream& os, const BackendCase& c) { return os << c.label; }

const BackendCase kBackends[] = {
    {"uring auto 1 queue", "uring", "auto", 1},
    {"uring auto 2 queues", "uring", "auto", 2},
    {"uring buffered 2 queues", "uring", "off", 2},
    {"uring direct 1 queue", "uring", "on", 1},
    {"malloc 2 queues", "malloc", nullptr, 2},
    {"uring packed ring 2 queues", "uring", "auto", 2, true},
    {"malloc packed ring", "malloc", nullptr, 1, true},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(blk)

BOOST_DATA_TEST_CASE(data_written_through_the_device_reads_back_intact,
                     boost::unit_test::data::make(kBackends), c) {
  TempDir dir;
  json backend = {{"kind", c.kind}};
  if (std::string(c.kind) == "uring") {
    backend["path"] = make_image(dir, "disk.img", 64 << 20);
    backend["direct"] = c.direct;
  } else {
    backend["size"] = "64M";
  }
  HostProc host(dir, json{{"devices", {blk_device(dir, "vol0", backend, c.queues)}}});
  json report;
  std::vector<std::string> args = {"--socket", dir.file("vol0.vhost"), "--rw", "verify",
                                   "--runtime", "2", "--queues", std::to_string(c.queues),
                                   "--qd", "16"};
  if (c.packed) {
    args.push_back("--packed");
    args.push_back("--indirect");
  }
  const int rc = run_frontend(dir, args, report, "verify");
  BOOST_TEST(rc == 0);
  // The negotiated ring layout is the one asked for (bit 34: VIRTIO_F_RING_PACKED).
  BOOST_TEST(((host.device("vol0")["features"].value("negotiated", 0ull) >> 34) & 1u) ==
             (c.packed ? 1u : 0u));
  auto st = host.stats("vol0");
  BOOST_TEST(st["total"].value("writes", 0ull) > 0u);
  BOOST_TEST(st["total"].value("reads", 0ull) > 0u);
  BOOST_TEST(st["total"].value("io_errors", 1ull) == 0u);
  BOOST_TEST(st["total"].value("rejected", 1ull) == 0u);
  if (c.queues > 1) {
    for (const auto& q : st["queues"]) {
      BOOST_TEST(q.value("writes", 0ull) > 0u, "queue " << q.value("queue", -1));
    }
  }
}

BOOST_AUTO_TEST_CASE(config_space_reports_the_file_size_and_features) {
  TempDir dir;
  const auto img = make_image(dir, "disk.img", 48 << 20);
  HostProc host(dir, json{{"devices", {blk_device(dir, "vol0", {{"kind", "uring"}, {"path", img}}, 2)}}});
  json report;
  BOOST_TEST(run_frontend(dir,
                          {"--socket", dir.file("vol0.vhost"), "--rw", "randread", "--runtime",
                           "0.5", "--queues", "2"},
                          report, "read") == 0);
  const auto d = host.device("vol0");
  BOOST_TEST(d.value("capacity_bytes", 0ull) == (48ull << 20));
  BOOST_TEST(d.value("state", "") == "waiting");  // the frontend has gone again
  BOOST_TEST(d.value("connections", 0) == 1);
  const auto s = host.stats("vol0");
  BOOST_TEST(s["total"].value("reads", 0ull) > 0u);
  BOOST_TEST(s["total"].value("writes", 1ull) == 0u);
}

BOOST_AUTO_TEST_CASE(a_read_only_device_refuses_writes_and_keeps_the_file) {
  TempDir dir;
  const auto img = make_image(dir, "disk.img", 16 << 20);
  {
    std::fstream f(img, std::ios::in | std::ios::out | std::ios::binary);
    f.write("viopool-read-only", 17);
  }
  const std::string before = read_file(img);
  json dev = blk_device(dir, "ro0", {{"kind", "uring"}, {"path", img}});
  dev["read_only"] = true;
  HostProc host(dir, json{{"devices", {dev}}});
  json report;
  const int rc = run_frontend(
      dir, {"--socket", dir.file("ro0.vhost"), "--rw", "randwrite", "--runtime", "0.5"}, report,
      "write");
  BOOST_TEST(rc == 1);  // requests failed, reported by the frontend
  BOOST_TEST(read_file(img) == before);
  const auto s = host.stats("ro0");
  BOOST_TEST(s["total"].value("rejected", 0ull) > 0u);
  BOOST_TEST(s["total"].value("write_bytes", 1ull) == 0u);
  BOOST_TEST(host.device("ro0").value("effective_read_only", false));
  // Reads keep working.
  BOOST_TEST(run_frontend(dir, {"--socket", dir.file("ro0.vhost"), "--rw", "randread",
                                "--runtime", "0.5"},
                          report, "read") == 0);
}

BOOST_AUTO_TEST_CASE(blk_devices_are_added_and_removed_at_runtime) {
  TempDir dir;
  HostProc host(dir, json{{"devices", json::array()}});
  const auto img = make_image(dir, "disk.img", 8 << 20);
  auto add = host.api("device_add", blk_device(dir, "vol1", {{"kind", "uring"}, {"path", img}}));
  BOOST_TEST(add.status == 201, add.body.dump());
  // A second writable device on the same file is refused.
  auto dup = host.api("device_add", blk_device(dir, "vol2", {{"kind", "uring"}, {"path", img}}));
  BOOST_TEST(dup.status == 409);
  // A missing file is a clear error.
  auto missing = host.api(
      "device_add", blk_device(dir, "vol3", {{"kind", "uring"}, {"path", dir.file("nope.img")}}));
  BOOST_TEST(missing.status >= 400);
  BOOST_TEST(missing.body["error"].value("message", "").find("nope.img") != std::string::npos,
             missing.body.dump());
  json report;
  BOOST_TEST(run_frontend(dir, {"--socket", dir.file("vol1.vhost"), "--rw", "verify",
                                "--runtime", "0.5"},
                          report, "verify") == 0);
  BOOST_TEST(host.api("device_del", {{"name", "vol1"}}).status == 200);
  BOOST_TEST(host.api("device_list").body["devices"].empty());
  BOOST_TEST(host.process().running());
}

BOOST_AUTO_TEST_SUITE_END()
