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
#include "vhost-backend/base/subprocess.h"

VIOPOOL_LOG_MODULE("ovs-follower")

namespace viopool::offload {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> rundir_env(const std::string& rundir) {
  if (rundir.empty()) {
    return {};
  }
  return {"OVS_RUNDIR=" + rundir};
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
  const int rc = run_capture({o.ofctl, "-O", o.protocols, "dump-flows", o.target},
                             rundir_env(o.rundir), o.dump_timeout, out, err);
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
  // ovs-ofctl prints what it monitors on stderr, with its own chatter: read
  // both (only "event=" lines count).
  if (!spawn({o_.ofctl, "monitor", o_.target, "watch:"}, rundir_env(o_.rundir), c, true)) {
    return false;
  }
  ::close(c.err);
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
