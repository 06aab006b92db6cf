#include "vhost-backend/base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace viopool {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

bool spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, Child& c,
           bool merge_stderr) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return false;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return false;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, merge_stderr ? out[1] : err[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  // Nothing else of ours (sockets, DPDK's memfds) leaks into the child.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    const std::size_t klen = eq == nullptr ? std::strlen(*e) : static_cast<std::size_t>(eq - *e) + 1;
    bool overridden = false;
    for (const auto& o : env) {
      overridden |= o.size() >= klen && std::strncmp(o.c_str(), *e, klen) == 0;
    }
    if (!overridden) {
      envp.push_back(*e);
    }
  }
  for (const auto& o : env) {
    envp.push_back(const_cast<char*>(o.c_str()));
  }
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    errno = rc;
    return false;
  }
  c.pid = pid;
  c.out = out[0];
  c.err = err[0];
  return true;
}

void reap(Child& c, bool kill_it) {
  if (c.pid > 0) {
    if (kill_it) {
      ::kill(c.pid, SIGTERM);
    }
    int st = 0;
    ::waitpid(c.pid, &st, 0);
    c.pid = -1;
  }
  for (int* fd : {&c.out, &c.err}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
}

int run_capture(const std::vector<std::string>& args, const std::vector<std::string>& env,
                std::chrono::milliseconds timeout, std::string& out, std::string& err) {
  Child c;
  if (!spawn(args, env, c)) {
    err = std::string("cannot run ") + args[0] + ": " + std::strerror(errno);
    return -1;
  }
  const auto deadline = Clock::now() + timeout;
  bool out_open = true;
  bool err_open = true;
  while ((out_open || err_open) && Clock::now() < deadline) {
    pollfd p[2] = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(p, 2, static_cast<int>(std::max<std::int64_t>(ms.count(), 1))) < 0 &&
        errno != EINTR) {
      break;
    }
    char buf[65536];
    for (int i = 0; i < 2; ++i) {
      bool& open = i == 0 ? out_open : err_open;
      if (open && (p[i].revents & (POLLIN | POLLHUP)) != 0) {
        const auto n = ::read(p[i].fd, buf, sizeof buf);
        if (n > 0) {
          (i == 0 ? out : err).append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          open = false;
        }
      }
    }
  }
  const bool timed_out = out_open || err_open;
  int st = 0;
  if (timed_out) {
    ::kill(c.pid, SIGKILL);
  }
  ::waitpid(c.pid, &st, 0);
  c.pid = -1;
  reap(c, false);
  if (timed_out) {
    err = args[0] + (args.size() > 1 ? " " + args[1] : std::string()) + " did not finish in time";
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace viopool
