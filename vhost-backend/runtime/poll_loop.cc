// PollLoop: spin while busy, sleep on armed fds when idle, and publish the
// poller list to the loop with a version handshake so removal is synchronous.
#include "vhost-backend/runtime/poll_loop.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "vhost-backend/base/check.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("poll")

namespace viopool::runtime {

int WaitSet::add(int fd) noexcept {
  if (n_ >= kMaxFds || fd < 0) {
    return -1;
  }
  fds_[n_] = pollfd{fd, POLLIN, 0};
  return static_cast<int>(n_++);
}

void WaitSet::wake_within_us(std::uint64_t us) noexcept { timeout_us_ = std::min(timeout_us_, us); }

bool WaitSet::readable(int slot) const noexcept {
  return slot >= 0 && static_cast<std::size_t>(slot) < n_ &&
         (fds_[static_cast<std::size_t>(slot)].revents & POLLIN) != 0;
}

void WaitSet::reset(std::uint64_t max_sleep_us) noexcept {
  n_ = 0;
  timeout_us_ = max_sleep_us;
}

int WaitSet::sleep() noexcept {
  timespec ts{static_cast<time_t>(timeout_us_ / 1000000),
              static_cast<long>((timeout_us_ % 1000000) * 1000)};
  for (std::size_t i = 0; i < n_; ++i) {
    fds_[i].revents = 0;
  }
  return ::ppoll(fds_.data(), n_, &ts, nullptr);
}

PollLoop::PollLoop(std::string name, std::chrono::microseconds max_sleep, IdleMode mode)
    : name_(std::move(name)),
      max_sleep_us_(static_cast<std::uint64_t>(max_sleep.count())),
      mode_(mode) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  VIOPOOL_CHECK(wake_fd_ >= 0);
}

PollLoop::~PollLoop() {
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
  }
}

void PollLoop::wake() noexcept {
  const std::uint64_t one = 1;
  // A full counter (EAGAIN) already means "wake up": nothing to do then.
  [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof(one));
}

void PollLoop::add(Poller* p) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pollers_.push_back(p);
    version_.fetch_add(1, std::memory_order_release);
  }
  wake();
}

void PollLoop::remove(Poller* p) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pollers_.erase(std::remove(pollers_.begin(), pollers_.end(), p), pollers_.end());
  }
  quiesce();
}

void PollLoop::quiesce() {
  std::unique_lock<std::mutex> lock(mu_);
  const std::uint64_t want = version_.fetch_add(1, std::memory_order_acq_rel) + 1;
  wake();
  // The loop acknowledges `want` at the top of its next iteration, after the
  // iteration in flight (which may use old state) has finished.
  while (running_.load(std::memory_order_acquire) &&
         seen_version_.load(std::memory_order_acquire) < want) {
    cv_.wait_for(lock, std::chrono::milliseconds(5));
  }
}

std::size_t PollLoop::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pollers_.size();
}

void PollLoop::stop() {
  stop_.store(true, std::memory_order_release);
  wake();
}

PollLoopStats PollLoop::stats() const noexcept {
  return PollLoopStats{iterations_.load(std::memory_order_relaxed),
                       busy_iterations_.load(std::memory_order_relaxed),
                       sleeps_.load(std::memory_order_relaxed)};
}

int PollLoop::run() noexcept {
  std::vector<Poller*> active;
  active.reserve(64);
  std::uint64_t local_version = 0;
  std::uint32_t idle = 0;
  std::chrono::steady_clock::time_point idle_since{};
  WaitSet ws;
  running_.store(true, std::memory_order_release);
  VIOPOOL_LOG_INFO("poll loop started loop={}", name_);

  while (!stop_.load(std::memory_order_acquire)) {
    const std::uint64_t v = version_.load(std::memory_order_acquire);
    if (v != local_version) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        active = pollers_;
        local_version = version_.load(std::memory_order_acquire);
        // Release: everything the loop did with the old list happened before
        // a waiter in quiesce() observes the new version.
        seen_version_.store(local_version, std::memory_order_release);
      }
      cv_.notify_all();
    }

    bool work = false;
    for (Poller* p : active) {
      work |= p->poll();
    }
    iterations_.store(iterations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (work) {
      busy_iterations_.store(busy_iterations_.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
      idle = 0;
      continue;
    }
    if (mode_ == IdleMode::kBusy) {
      continue;
    }
    ++idle;
    bool spin = false;
    if (idle == kShortIdleSpins) {
      for (Poller* p : active) {
        spin |= p->spin_when_idle();
      }
      if (spin) {
        continue;
      }
    } else {
      // Read the clock once per kIdleSpins empty polls, not per poll.
      if (idle < kShortIdleSpins || idle % kIdleSpins != 0) {
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (idle == kIdleSpins) {
        idle_since = now;
        continue;
      }
      if (now - idle_since < kIdleTime) {
        continue;
      }
    }
    idle = 0;

    ws.reset(max_sleep_us_);
    ws.add(wake_fd_);
    bool can_sleep = true;
    std::size_t armed = 0;
    for (Poller* p : active) {
      ++armed;
      if (!p->arm(ws)) {
        can_sleep = false;
        break;
      }
    }
    if (can_sleep && version_.load(std::memory_order_acquire) == local_version &&
        !stop_.load(std::memory_order_acquire)) {
      sleeps_.store(sleeps_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      ws.sleep();
    }
    for (std::size_t i = 0; i < armed; ++i) {
      active[i]->disarm(ws);
    }
    std::uint64_t drained;
    while (::read(wake_fd_, &drained, sizeof(drained)) > 0) {
    }
  }

  running_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    seen_version_.store(version_.load(std::memory_order_acquire), std::memory_order_release);
  }
  cv_.notify_all();
  VIOPOOL_LOG_INFO("poll loop stopped loop={}", name_);
  return 0;
}

}  // namespace viopool::runtime
