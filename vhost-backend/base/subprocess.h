// Running helper programs (ovs-ofctl, ovs-vsctl) without a shell: argv as
// given, environment overrides, stdout and stderr captured, every wait
// bounded, and only the child it started is ever signalled.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace viopool {

struct Child {
  pid_t pid = -1;
  int out = -1;  // stdout (read end)
  int err = -1;  // stderr (read end)
};

// Starts argv (looked up in PATH) with `env` ("KEY=VALUE", replacing the
// inherited KEY) added to our environment, stdin from /dev/null, stdout and
// stderr on pipes (one pipe, `out`, with `merge_stderr`), no other fd of
// ours. False (errno set) if it could not start.
bool spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, Child& c,
           bool merge_stderr = false);
// Waits for the child (SIGTERM first if `kill_it`) and closes its pipes.
void reap(Child& c, bool kill_it);
// Runs a command to completion within `timeout`: its exit status, output
// and error text. -1 if it could not start or ran out of time (killed).
int run_capture(const std::vector<std::string>& args, const std::vector<std::string>& env,
                std::chrono::milliseconds timeout, std::string& out, std::string& err);

}  // namespace viopool
