// A QEMU guest for system tests: Debian's kernel with the tiny viopool image
// (vm-images/tiny), guest RAM in a shared memfd so vhost-user backends can
// map it, viopool's devices attached as QEMU arguments, the serial console in
// a file. The guest agent runs the check named on the kernel command line and
// prints `VIOPOOL-RESULT {json}`; wait_result() returns that object. KVM is
// used where it boots, TCG otherwise (probed once per process). QEMU is
// stopped by PID, always within the timeout.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace viopool::testing {

struct GuestOptions {
  std::string check;                    // viopool.check=<check>
  std::vector<std::string> kernel_args;  // more of the command line ("viopool.ip=...")
  std::vector<std::string> qemu_args;    // the devices
  unsigned memory_mb = 256;
  std::chrono::seconds timeout{120};
};

class Guest {
 public:
  // build/vm-images/tiny (vmlinuz, initramfs.img), made by `make images`.
  static std::string image_dir();
  // "kvm" if a KVM guest boots here, else "tcg"; VIOPOOL_GUEST_ACCEL overrides.
  static const std::string& accel();

  Guest(const TempDir& dir, GuestOptions o, const std::string& tag = "guest");
  // Waits (bounded) for the guest to power off, then returns the agent's
  // result object; an empty object if there is none (the console is in the
  // test log).
  nlohmann::json wait_result();
  const std::string& console_path() const noexcept { return console_; }

 private:
  GuestOptions o_;
  std::string console_;
  Process proc_;
};

// Every VIOPOOL-RESULT object of a console log, in order.
std::vector<nlohmann::json> parse_results(const std::string& console_text);

// The kernel arguments and QEMU arguments of a vhost-user device.
std::vector<std::string> vhost_user_net_args(const std::string& socket, const std::string& mac);
std::vector<std::string> vhost_user_blk_args(const std::string& socket);
std::vector<std::string> vhost_user_crypto_args(const std::string& socket);

}  // namespace viopool::testing
