// A real Linux guest (Debian's kernel, its own virtio drivers) on viopool-host's
// devices: the image carries nothing but virtio; net traffic reaches a peer
// through viopool's net_tap backend with counters agreeing on every hop; data
// the guest writes to its disk lands in the backing file; a read-only disk
// refuses writes; the guest's virtio_crypto driver passes the kernel's
// self-tests and an AF_ALG known answer through viopool.
#include <openssl/evp.h>
#include <sys/wait.h>

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

std::string source_path(const std::string& rel) { return std::string(VIOPOOL_SOURCE_DIR) + "/" + rel; }

std::string sha256_prefix(const std::string& path, std::size_t bytes) {
  std::ifstream f(path, std::ios::binary);
  std::string data(bytes, '\0');
  f.read(data.data(), static_cast<std::streamsize>(bytes));
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), static_cast<std::size_t>(f.gcount()), md, &len, EVP_sha256(), nullptr);
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += d[md[i] >> 4];
    s += d[md[i] & 15];
  }
  return s;
}

std::string make_image_file(const TempDir& dir, const std::string& name, std::size_t mib) {
  const std::string p = dir.file(name);
  BOOST_REQUIRE(run_shell("truncate -s " + std::to_string(mib) + "M " + p) == 0);
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(guest_image)

BOOST_AUTO_TEST_CASE(image_carries_only_virtio_and_generic_modules) {
  const std::string check = source_path("vm-images/check");
  BOOST_TEST(run_shell(check + " " + Guest::image_dir() + "/initramfs.img > /dev/null") == 0);
  // The check does fail an image with a hardware driver inside.
  TempDir dir;
  const std::string cmd =
      "set -e; cd " + dir.path() + "; mkdir -p root/lib/modules; "
      "cp $(modinfo -k $(cat " + Guest::image_dir() + "/kernel-version) -n e1000) root/lib/modules/ "
      "2>/dev/null || touch root/lib/modules/e1000.ko; "
      "(cd root && find . | cpio -o -H newc --quiet) | gzip > bad.img; " +
      "rc=0; " + check + " bad.img > check.out 2>&1 || rc=$?; echo $rc > rc";
  run_shell(cmd);
  BOOST_TEST(read_file(dir.file("rc")) == "1\n");
  BOOST_TEST(read_file(dir.file("check.out")).find("FORBIDDEN") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(guest_devices)

BOOST_AUTO_TEST_CASE(net_traffic_reaches_a_peer_and_counters_agree) {
  TempDir dir;
  NetNs ns("vpsys" + std::to_string(::getpid()));
  // The peer is the namespace's own kernel, on the tap viopool creates there.
  BOOST_REQUIRE(ns.exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                        "net.ipv6.conf.default.disable_ipv6=1") == 0);
  json dev = {{"name", "net0"},
              {"type", "net"},
              {"socket", dir.file("net0.vhost")},
              {"backend", {{"kind", "ethdev"}, {"devargs", "net_tap_sys0,iface=vpsys0"}}}};
  HostProc host(dir, json{{"devices", {dev}}}, "host", ns.name());
  BOOST_REQUIRE(ns.exec("ip addr add 10.99.0.1/24 dev vpsys0 && ip link set vpsys0 up") == 0);

  GuestOptions o;
  o.check = "net";
  o.kernel_args = {"viopool.ip=10.99.0.2/24", "viopool.peer=10.99.0.1", "viopool.count=5"};
  o.qemu_args = vhost_user_net_args(dir.file("net0.vhost"), "52:54:00:99:00:02");
  Guest g(dir, o);
  const json r = g.wait_result();
  BOOST_TEST(r.value("ok", false), "guest result: " << r.dump());
  BOOST_TEST(r.value("replies", 0) == 5);
  // Guest → viopool (virtio tx) → tap, and back: the same packets everywhere.
  const auto st = host.stats("net0")["total"];
  BOOST_TEST(st.value("tx_packets", 0ull) == r.value("tx_packets", 1ull));
  BOOST_TEST(st.value("rx_packets", 0ull) == r.value("rx_packets", 1ull));
  BOOST_TEST(st.value("tx_bytes", 0ull) == r.value("tx_bytes", 1ull));
  BOOST_TEST(st.value("rx_bytes", 0ull) == r.value("rx_bytes", 1ull));
  BOOST_TEST(ns.exec("test $(cat /sys/class/net/vpsys0/statistics/rx_packets) -eq " +
                     std::to_string(r.value("tx_packets", 0))) == 0);
}

BOOST_AUTO_TEST_CASE(blk_data_the_guest_writes_lands_in_the_backing_file) {
  TempDir dir;
  const std::string img = make_image_file(dir, "vol0.img", 64);
  json dev = {{"name", "vol0"},
              {"type", "blk"},
              {"socket", dir.file("vol0.vhost")},
              {"backend", {{"kind", "uring"}, {"path", img}}}};
  HostProc host(dir, json{{"devices", {dev}}});
  GuestOptions o;
  o.check = "blk";
  o.kernel_args = {"viopool.mb=4"};
  o.qemu_args = vhost_user_blk_args(dir.file("vol0.vhost"));
  Guest g(dir, o);
  const json r = g.wait_result();
  BOOST_TEST(r.value("ok", false), "guest result: " << r.dump());
  BOOST_TEST(r.value("size", 0ull) == 64u * 2048);  // 512-byte sectors
  // The bytes the guest wrote (it checked its read-back) are in the file.
  BOOST_TEST(sha256_prefix(img, 4u << 20) == r.value("written", std::string("?")));
  const auto st = host.stats("vol0")["total"];
  BOOST_TEST(st.value("write_bytes", 0ull) >= (4u << 20));
  BOOST_TEST(st.value("io_errors", 1ull) == 0u);
  BOOST_TEST(st.value("rejected", 1ull) == 0u);
}

BOOST_AUTO_TEST_CASE(blk_read_only_device_refuses_writes_in_the_guest) {
  TempDir dir;
  const std::string img = make_image_file(dir, "ro.img", 16);
  BOOST_REQUIRE(run_shell("printf viopool | dd of=" + img + " conv=notrunc status=none") == 0);
  const std::string before = sha256_prefix(img, 16u << 20);
  json dev = {{"name", "ro0"},
              {"type", "blk"},
              {"socket", dir.file("ro0.vhost")},
              {"read_only", true},
              {"backend", {{"kind", "uring"}, {"path", img}}}};
  HostProc host(dir, json{{"devices", {dev}}});
  GuestOptions o;
  o.check = "blk-ro";
  o.qemu_args = vhost_user_blk_args(dir.file("ro0.vhost"));
  Guest g(dir, o);
  const json r = g.wait_result();
  BOOST_TEST(r.value("ok", false), "guest result: " << r.dump());
  BOOST_TEST(r.value("ro", 0) == 1);
  BOOST_TEST(r.value("write_refused", false));
  BOOST_TEST(sha256_prefix(img, 16u << 20) == before);
}

BOOST_AUTO_TEST_CASE(crypto_guest_driver_runs_aes_cbc_through_viopool) {
  TempDir dir;
  json dev = {{"name", "cr0"},
              {"type", "crypto"},
              {"socket", dir.file("cr0.vhost")},
              {"backend", {{"devargs", "crypto_aesni_mb_sys0"}}}};
  HostProc host(dir, json{{"devices", {dev}}});
  GuestOptions o;
  o.check = "crypto";
  o.qemu_args = vhost_user_crypto_args(dir.file("cr0.vhost"));
  Guest g(dir, o);
  const json r = g.wait_result();
  BOOST_TEST(r.value("ok", false), "guest result: " << r.dump());
  BOOST_TEST(r.value("driver", false));
  // The kernel's own self-tests of virtio_crypto_aes_cbc ran through viopool.
  BOOST_TEST(r.value("selftest", std::string()) == "passed");
  BOOST_TEST(r.value("ciphertext", std::string()) ==
             "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2");
  const auto st = host.stats("cr0");
  BOOST_TEST(st["total"].value("cipher_ops", 0ull) > 1u);
  BOOST_TEST(st["total"].value("bad_requests", 1ull) == 0u);
  BOOST_TEST(st["sessions"].value("created", 0ull) > 0u);
}

BOOST_AUTO_TEST_SUITE_END()
