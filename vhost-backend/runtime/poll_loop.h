// The polling engine of a worker lcore: calls every registered Poller in turn,
// spins while they do work and, once idle, lets them arm wake-up sources (guest
// kick eventfds, timers) and sleeps in ppoll(). No DPDK here: the app launches
// run() on an EAL lcore, tests on a std::thread.
#pragma once

#include <poll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace viopool::runtime {

// File descriptors and a deadline an idle loop sleeps on.
class WaitSet {
 public:
  static constexpr std::size_t kMaxFds = 256;
  // Adds fd for POLLIN; returns its slot, or -1 if full (the caller must then
  // ask for a timer wake instead).
  int add(int fd) noexcept;
  // Wake up no later than `us` microseconds from now.
  void wake_within_us(std::uint64_t us) noexcept;
  // True if the fd in `slot` became readable during the sleep.
  bool readable(int slot) const noexcept;

  void reset(std::uint64_t max_sleep_us) noexcept;
  int sleep() noexcept;  // ppoll(); returns its result
  std::uint64_t timeout_us() const noexcept { return timeout_us_; }
  std::size_t size() const noexcept { return n_; }

 private:
  std::array<pollfd, kMaxFds> fds_{};
  std::size_t n_ = 0;
  std::uint64_t timeout_us_ = 0;
};

class Poller {
 public:
  virtual ~Poller() = default;
  // Polling lcore only. Does a bounded amount of work (one burst per queue);
  // returns true if it moved anything. Never blocks.
  virtual bool poll() noexcept = 0;
  // Polling lcore, before the loop sleeps: arm wake-up sources (add fds, ask
  // for a timer). Returns false if work is already pending, so the loop must
  // not sleep. disarm() is called after every arm(), slept or not.
  virtual bool arm(WaitSet& ws) noexcept = 0;
  virtual void disarm(const WaitSet& ws) noexcept = 0;
  // Polling lcore: false when what this poller waits for arrives slowly
  // (over a network: tens of microseconds or more), so spinning for it only
  // takes the CPU from others. An idle loop whose pollers all say false
  // sleeps after kShortIdleSpins empty polls instead of spinning kIdleTime.
  virtual bool spin_when_idle() const noexcept { return true; }
};

struct PollLoopStats {
  std::uint64_t iterations = 0;
  std::uint64_t busy_iterations = 0;
  std::uint64_t sleeps = 0;
};

class PollLoop {
 public:
  // The loop sleeps only after kIdleSpins empty polls in a row *and* kIdleTime
  // without work: a device whose guest pauses for a few microseconds between
  // bursts (the usual case under load) keeps being polled and never pays a
  // wake-up, while an idle one still sleeps within a fraction of a millisecond.
  static constexpr std::uint32_t kIdleSpins = 512;
  static constexpr std::chrono::microseconds kIdleTime{200};
  static constexpr std::uint32_t kShortIdleSpins = 16;

  // Busy: never sleep (a core dedicated to polling, lowest latency). Adaptive:
  // sleep on wake-up sources when idle (shared cores, idle daemons cost nothing).
  enum class IdleMode : std::uint8_t { kAdaptive, kBusy };

  PollLoop(std::string name, std::chrono::microseconds max_sleep,
           IdleMode mode = IdleMode::kAdaptive);
  ~PollLoop();
  PollLoop(const PollLoop&) = delete;
  PollLoop& operator=(const PollLoop&) = delete;

  // Control thread. add() takes effect at the loop's next iteration; remove()
  // returns only once the loop can no longer call `p`.
  void add(Poller* p);
  void remove(Poller* p);
  // Control or vhost thread: returns once an iteration that started after the
  // call has finished (or at once if the loop is not running), so state
  // published before the call is visible to the loop from then on.
  void quiesce();
  std::size_t size() const;

  // Runs on the polling lcore until stop(). Returns 0.
  int run() noexcept;
  void stop();

  const std::string& name() const noexcept { return name_; }
  PollLoopStats stats() const noexcept;

 private:
  void wake() noexcept;

  const std::string name_;
  const std::uint64_t max_sleep_us_;
  const IdleMode mode_;
  int wake_fd_ = -1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Poller*> pollers_;          // guarded by mu_
  std::atomic<std::uint64_t> version_{1};  // bumped on every change and quiesce()
  std::atomic<std::uint64_t> seen_version_{0};
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};

  std::atomic<std::uint64_t> iterations_{0};
  std::atomic<std::uint64_t> busy_iterations_{0};
  std::atomic<std::uint64_t> sleeps_{0};
};

}  // namespace viopool::runtime
