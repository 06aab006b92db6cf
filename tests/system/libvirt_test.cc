// The same guest through libvirt, as OpenStack would attach it: libvirtd
// without systemd (started here unless one already runs), a transient domain
// from integration/libvirt/guest-domain.xml.in with <interface
// type='vhostuser'> and <disk type='vhostuser'> on viopool-host's sockets,
// and the guest's net and blk checks in one boot.
#include <openssl/evp.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"
#include "tests/system/guest.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

const std::string kUri = "qemu:///system";

bool libvirt_answers() {
  return run_shell("virsh -c " + kUri + " version > /dev/null 2>&1") == 0;
}

// virtlogd and libvirtd in the foreground, as our children; none started if
// a libvirtd already answers (then it is not ours to stop).
class Libvirtd {
 public:
  explicit Libvirtd(const TempDir& dir) {
    if (libvirt_answers()) {
      BOOST_TEST_MESSAGE("using the libvirtd already running");
      return;
    }
    virtlogd_ = Process({which("virtlogd")}, SpawnOptions{dir.file("virtlogd.log")});
    libvirtd_ = Process({which("libvirtd")}, SpawnOptions{dir.file("libvirtd.log")});
    BOOST_REQUIRE_MESSAGE(wait_until(libvirt_answers, 30s),
                          "libvirtd did not come up:\n" << libvirtd_->log());
  }
  ~Libvirtd() {
    if (libvirtd_) {
      libvirtd_->stop(10s);
    }
    if (virtlogd_) {
      virtlogd_->stop(5s);
    }
  }

 private:
  std::optional<Process> virtlogd_;
  std::optional<Process> libvirtd_;
};

std::string fill(std::string t, const std::vector<std::pair<std::string, std::string>>& kv) {
  for (const auto& [k, v] : kv) {
    for (std::size_t p; (p = t.find(k)) != std::string::npos;) {
      t.replace(p, k.size(), v);
    }
  }
  return t;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(libvirt)

BOOST_AUTO_TEST_CASE(net_and_blk_through_a_libvirt_domain) {
  TempDir dir;
  NetNs ns("vplv" + std::to_string(::getpid()));
  BOOST_REQUIRE(ns.exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                        "net.ipv6.conf.default.disable_ipv6=1") == 0);
  const std::string img = dir.file("vol0.img");
  BOOST_REQUIRE(run_shell("truncate -s 64M " + img) == 0);
  json devs = json::array();
  devs.push_back({{"name", "net0"},
                  {"type", "net"},
                  {"socket", dir.file("net0.vhost")},
                  {"backend", {{"kind", "ethdev"}, {"devargs", "net_tap_lv0,iface=vplv0"}}}});
  devs.push_back({{"name", "vol0"},
                  {"type", "blk"},
                  {"socket", dir.file("vol0.vhost")},
                  {"backend", {{"kind", "uring"}, {"path", img}}}});
  HostProc host(dir, json{{"devices", devs}}, "host", ns.name());
  BOOST_REQUIRE(ns.exec("ip addr add 10.99.0.1/24 dev vplv0 && ip link set vplv0 up") == 0);

  Libvirtd libvirtd(dir);
  const std::string name = "viopool-systest-" + std::to_string(::getpid());
  const std::string console = dir.file("console.txt");
  const std::string xml = fill(
      read_file(std::string(VIOPOOL_SOURCE_DIR) + "/integration/libvirt/guest-domain.xml.in"),
      {{"@NAME@", name},
       {"@KERNEL@", Guest::image_dir() + "/vmlinuz"},
       {"@INITRD@", Guest::image_dir() + "/initramfs.img"},
       {"@CMDLINE@",
        "console=ttyS0 quiet edd=off ipv6.disable=1 panic=-1 viopool.check=net,blk "
        "viopool.ip=10.99.0.2/24 viopool.peer=10.99.0.1 viopool.count=3 viopool.mb=4"},
       {"@CONSOLE@", console},
       {"@NET_SOCKET@", dir.file("net0.vhost")},
       {"@MAC@", "52:54:00:99:00:03"},
       {"@BLK_SOCKET@", dir.file("vol0.vhost")},
       {"@QEMU_ARGS@", ""}});
  write_file(dir.file("domain.xml"), xml);
  BOOST_REQUIRE_MESSAGE(
      run_shell("virsh -c " + kUri + " create " + dir.file("domain.xml") + " > " +
                dir.file("virsh.out") + " 2>&1") == 0,
      "virsh create failed: " << read_file(dir.file("virsh.out")));
  // The transient domain ends when the guest powers off; bounded.
  const bool ended = wait_until(
      [&] {
        return run_shell("virsh -c " + kUri + " domstate " + name + " > /dev/null 2>&1") != 0;
      },
      120s);
  if (!ended) {
    run_shell("virsh -c " + kUri + " destroy " + name + " > /dev/null 2>&1");
  }
  BOOST_TEST(ended);
  const auto results = parse_results(read_file(console));
  BOOST_REQUIRE_MESSAGE(results.size() == 2, "console:\n" << read_file(console));
  BOOST_TEST(results[0].value("check", "") == "net");
  BOOST_TEST(results[0].value("ok", false), results[0].dump());
  BOOST_TEST(results[1].value("check", "") == "blk");
  BOOST_TEST(results[1].value("ok", false), results[1].dump());
  const auto net = host.stats("net0")["total"];
  BOOST_TEST(net.value("tx_packets", 0ull) == results[0].value("tx_packets", 1ull));
  BOOST_TEST(net.value("rx_packets", 0ull) == results[0].value("rx_packets", 1ull));
  BOOST_TEST(host.stats("vol0")["total"].value("write_bytes", 0ull) >= (4u << 20));
}

BOOST_AUTO_TEST_SUITE_END()
