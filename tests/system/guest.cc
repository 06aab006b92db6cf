// Guest: QEMU started with the tiny image and vhost-user devices.
#include "tests/system/guest.h"

#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <mutex>

namespace viopool::testing {
namespace {

constexpr const char* kResultTag = "VIOPOOL-RESULT ";

std::vector<std::string> base_args(const std::string& accel, unsigned memory_mb,
                                   const std::string& console, const std::string& append) {
  const std::string img = Guest::image_dir();
  std::vector<std::string> a = {which("qemu-system-x86_64")};
  if (accel == "kvm") {
    a.insert(a.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    a.insert(a.end(), {"-accel", "tcg", "-cpu", "max"});
  }
  const std::string mem = std::to_string(memory_mb) + "M";
  a.insert(a.end(),
           {"-m", mem, "-object", "memory-backend-memfd,id=mem0,size=" + mem + ",share=on",
            "-numa", "node,memdev=mem0", "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", "file:" + console, "-kernel", img + "/vmlinuz", "-initrd",
            img + "/initramfs.img", "-append", append});
  return a;
}

// The last VIOPOOL-RESULT line of a console log, parsed.
nlohmann::json parse_result(const std::string& text) {
  auto all = parse_results(text);
  return all.empty() ? nlohmann::json::object() : all.back();
}

}  // namespace

std::vector<nlohmann::json> parse_results(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::size_t pos = 0;
  while ((pos = text.find(kResultTag, pos)) != std::string::npos) {
    pos += std::string(kResultTag).size();
    const std::size_t end = text.find_first_of("\r\n", pos);
    auto j = nlohmann::json::parse(text.substr(pos, end == std::string::npos ? std::string::npos
                                                                               : end - pos),
                                   nullptr, false);
    if (j.is_object()) {
      out.push_back(std::move(j));
    }
  }
  return out;
}

std::string Guest::image_dir() { return build_path("vm-images/tiny"); }

const std::string& Guest::accel() {
  static std::once_flag once;
  static std::string chosen = "tcg";
  std::call_once(once, [] {
    if (const char* env = std::getenv("VIOPOOL_GUEST_ACCEL")) {
      chosen = env;
      return;
    }
    if (::access("/dev/kvm", R_OK | W_OK) != 0) {
      return;
    }
    // Some hosts expose a /dev/kvm that stock kernels hang on: boot once.
    TempDir probe;
    const std::string console = probe.file("probe.console");
    Process p(base_args("kvm", 128, console, "console=ttyS0 quiet panic=-1 viopool.check=boot"),
              SpawnOptions{probe.file("probe.log")});
    const int st = p.wait_exit(std::chrono::seconds(15));
    if (st < 0) {
      p.stop(std::chrono::seconds(2));
    }
    if (parse_result(read_file(console)).value("ok", false)) {
      chosen = "kvm";
    }
  });
  return chosen;
}

Guest::Guest(const TempDir& dir, GuestOptions o, const std::string& tag) : o_(std::move(o)) {
  console_ = dir.file(tag + ".console");
  std::string append = "console=ttyS0 quiet edd=off ipv6.disable=1 panic=-1 viopool.check=" +
                       o_.check;
  for (const auto& k : o_.kernel_args) {
    append += " " + k;
  }
  auto argv = base_args(accel(), o_.memory_mb, console_, append);
  argv.insert(argv.end(), o_.qemu_args.begin(), o_.qemu_args.end());
  proc_ = Process(argv, SpawnOptions{dir.file(tag + ".qemu.log")});
}

nlohmann::json Guest::wait_result() {
  const int st = proc_.wait_exit(o_.timeout);
  if (st < 0) {
    BOOST_TEST_MESSAGE("guest did not power off within " << o_.timeout.count() << " s: stopped");
    proc_.stop(std::chrono::seconds(5));
  }
  const std::string console = read_file(console_);
  auto r = parse_result(console);
  if (r.empty() || !r.value("ok", false)) {
    BOOST_TEST_MESSAGE("guest console:\n" << console << "\nqemu: " << proc_.log());
  }
  return r;
}

std::vector<std::string> vhost_user_net_args(const std::string& socket, const std::string& mac) {
  // vectors=0: QEMU 7.2 under TCG crashes with MSI-X on vhost-user net.
  return {"-chardev", "socket,id=vpnet,path=" + socket, "-netdev",
          "vhost-user,id=vpn0,chardev=vpnet", "-device",
          "virtio-net-pci,netdev=vpn0,vectors=0,mac=" + mac};
}

std::vector<std::string> vhost_user_blk_args(const std::string& socket) {
  return {"-chardev", "socket,id=vpblk,path=" + socket, "-device",
          "vhost-user-blk-pci,chardev=vpblk,num-queues=1"};
}

std::vector<std::string> vhost_user_crypto_args(const std::string& socket) {
  return {"-chardev", "socket,id=vpcr,path=" + socket, "-object",
          "cryptodev-vhost-user,id=vpcd0,chardev=vpcr", "-device",
          "virtio-crypto-pci,cryptodev=vpcd0,vectors=0"};
}

}  // namespace viopool::testing
