#include "offload/ovs/bridge_follower.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "offload/ovs/ofctl_flow.h"
#include "vhost-backend/base/log.h"

extern char** environ;

VIOPOOL_LOG_MODULE("ovs-follower")

namespace viopool::offload {

namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = -1;
  int out = -1;  // stdout
  int err = -1;  // stderr
};

// Starts argv with OVS_RUNDIR set (if given), stdout and stderr on pipes.
bool spawn(const std::vector<std::string>& args, const std::string& rundir, Child& c) {
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
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!rundir.empty() && std::strncmp(*e, "OVS_RUNDIR=", 11) == 0) {
      continue;
    }
    envp.push_back(*e);
  }
  if (!rundir.empty()) {
    env_store.push_back("OVS_RUNDIR=" + rundir);
    envp.push_back(env_store.back().data());
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

// Runs a command to completion within `timeout`; its exit status, output
// and error text. -1 if it could not start or ran out of time (killed).
int run_capture(const std::vector<std::string>& args, const std::string& rundir,
                std::chrono::milliseconds timeout, std::string& out, std::string& err) {
  Child c;
  if (!spawn(args, rundir, c)) {
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
    err = args[0] + " " + args[1] + " did not finish in time";
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return s.substr(0, nl);
}

}  // namespace

BridgeFollower::BridgeFollower(FollowerOptions o, OnTable on_table)
    : o_(std::move(o)), on_table_(std::move(on_table)) {}

BridgeFollower::~BridgeFollower() { stop(); }

Result<std::vector<FlowSpec>> BridgeFollower::dump(const FollowerOptions& o, std::string& why) {
  std::string out;
  std::string err;
  const int rc = run_capture({o.ofctl, "-O", o.protocols, "dump-flows", o.target}, o.rundir,
                             o.dump_timeout, out, err);
  if (rc != 0) {
    why = "ovs-ofctl dump-flows " + o.target + ": " +
          (err.empty() ? "exit status " + std::to_string(rc) : first_line(err));
    return fail(Errc::kIo, "offload: dump-flows failed");
  }
  auto t = parse_ofctl_dump(out, why);
  if (!t) {
    why = "ovs-ofctl dump-flows " + o.target + ": " + why;
  }
  return t;
}

Result<void> BridgeFollower::start(std::string& why) {
  if (!start_monitor()) {
    why = "cannot start ovs-ofctl monitor: " + std::string(std::strerror(errno));
    return fail(Errc::kIo, "offload: monitor failed");
  }
  auto t = dump(o_, why);
  if (!t) {
    stop_monitor();
    return unexpected(t.error());
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.dumps;
  }
  on_table_(*t);
  thread_ = std::thread([this] { run(); });
  return {};
}

bool BridgeFollower::start_monitor() {
  Child c;
  if (!spawn({o_.ofctl, "monitor", o_.target, "watch:"}, o_.rundir, c)) {
    return false;
  }
  ::close(c.err);  // its stderr is only chatter about the control socket
  {
    std::lock_guard lock(mu_);
    monitor_pid_ = c.pid;
    monitor_fd_ = c.out;
    ++stats_.monitor_starts;
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  reader_ = std::thread([this] { read_monitor(); });
  return true;
}

void BridgeFollower::read_monitor() {
  int fd;
  {
    std::lock_guard lock(mu_);
    fd = monitor_fd_;
  }
  std::string pending;
  char buf[8192];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    bool changed = false;
    while ((nl = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.find("event=") != std::string::npos) {
        changed = true;
      }
    }
    if (changed) {
      std::lock_guard lock(mu_);
      ++stats_.events;
      if (!dirty_) {
        dirty_ = true;
        dirty_since_ = Clock::now();
      }
      cv_.notify_all();
    }
  }
  ::close(fd);
  std::lock_guard lock(mu_);
  monitor_fd_ = -1;  // the loop notices, reaps and restarts it
  cv_.notify_all();
}

void BridgeFollower::stop_monitor() {
  pid_t pid;
  {
    std::lock_guard lock(mu_);
    pid = monitor_pid_;
    monitor_pid_ = -1;
  }
  if (pid > 0) {
    ::kill(pid, SIGTERM);  // our own child, by PID
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
  if (reader_.joinable()) {
    reader_.join();  // EOF once the child is gone; the reader closes the pipe
  }
}

void BridgeFollower::run() {
  auto next_resync = Clock::now() + o_.resync;
  std::unique_lock lock(mu_);
  while (!stop_) {
    auto wake = next_resync;
    if (dirty_) {
      wake = std::min(wake, dirty_since_ + o_.debounce);
    }
    const bool monitor_dead = monitor_fd_ < 0;  // exited, or its restart failed
    if (monitor_dead) {
      wake = std::min(wake, Clock::now() + std::chrono::seconds(1));
    }
    cv_.wait_until(lock, wake);
    if (stop_) {
      break;
    }
    const auto now = Clock::now();
    if (monitor_fd_ < 0) {
      // The monitor exited (OVS restarted, the bridge went away) or could
      // not be restarted: start another (at most once a second), then read
      // the whole table.
      const pid_t pid = monitor_pid_;
      monitor_pid_ = -1;
      lock.unlock();
      if (pid > 0) {
        int st = 0;
        ::waitpid(pid, &st, 0);
        VIOPOOL_LOG_WARN("ovs-ofctl monitor of {} exited; restarting", o_.target);
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const bool ok = start_monitor();
      lock.lock();
      if (!ok) {
        ++stats_.errors;
      }
      dirty_ = true;
      dirty_since_ = Clock::now() - o_.debounce;
      continue;
    }
    const bool due = (dirty_ && now >= dirty_since_ + o_.debounce) || now >= next_resync;
    if (!due) {
      continue;
    }
    dirty_ = false;
    next_resync = now + o_.resync;
    lock.unlock();
    std::string why;
    auto t = dump(o_, why);
    if (t) {
      on_table_(*t);
    } else {
      VIOPOOL_LOG_WARN_RL("{}", why);
    }
    lock.lock();
    ++stats_.dumps;
    if (!t) {
      ++stats_.errors;
      last_error_ = why;
      // Try again soon rather than at the next resync.
      dirty_ = true;
      dirty_since_ = Clock::now() + std::chrono::milliseconds(500);
    } else {
      last_error_.clear();
    }
  }
}

void BridgeFollower::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  stop_monitor();
}

void BridgeFollower::resync() {
  std::lock_guard lock(mu_);
  dirty_ = true;
  dirty_since_ = Clock::now() - o_.debounce;
  cv_.notify_all();
}

FollowerStats BridgeFollower::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::string BridgeFollower::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

}  // namespace viopool::offload
