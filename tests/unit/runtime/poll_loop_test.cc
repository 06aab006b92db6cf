// PollLoop: busy spinning, sleeping on armed fds when idle, and synchronous
// removal. Pollers here are eventfd-driven doubles of a device.
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <thread>

#include "vhost-backend/runtime/poll_loop.h"

using namespace viopool::runtime;
using namespace std::chrono_literals;

namespace {

// Work arrives as eventfd increments ("kicks"); poll() consumes one unit.
class KickPoller : public Poller {
 public:
  KickPoller() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~KickPoller() override { ::close(fd_); }

  void post(std::uint64_t n) {
    pending_.fetch_add(n);
    if (armed_.load()) {
      ::write(fd_, &n, sizeof(n));
    }
  }
  bool poll() noexcept override {
    polls_.fetch_add(1);
    std::uint64_t p = pending_.load();
    while (p > 0 && !pending_.compare_exchange_weak(p, p - 1)) {
    }
    if (p > 0) {
      done_.fetch_add(1);
      return true;
    }
    return false;
  }
  bool arm(WaitSet& ws) noexcept override {
    armed_.store(true);
    slot_ = ws.add(fd_);
    arms_.fetch_add(1);
    return pending_.load() == 0;  // re-check after arming, like a real device
  }
  void disarm(const WaitSet& ws) noexcept override {
    armed_.store(false);
    if (ws.readable(slot_)) {
      std::uint64_t v;
      ::read(fd_, &v, sizeof(v));
      wakeups_.fetch_add(1);
    }
  }

  int fd_;
  int slot_ = -1;
  std::atomic<bool> armed_{false};
  std::atomic<std::uint64_t> pending_{0};
  std::atomic<std::uint64_t> done_{0};
  std::atomic<std::uint64_t> polls_{0};
  std::atomic<std::uint64_t> arms_{0};
  std::atomic<std::uint64_t> wakeups_{0};
};

template <typename Pred>
bool wait_until(Pred p, std::chrono::milliseconds limit = 2000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return p();
}

struct LoopFixture {
  LoopFixture() : loop("test", 1s), thread([this] { loop.run(); }) {}
  ~LoopFixture() {
    loop.stop();
    thread.join();
  }
  PollLoop loop;
  std::thread thread;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(poll_loop, LoopFixture)

BOOST_AUTO_TEST_CASE(does_all_posted_work) {
  KickPoller p;
  loop.add(&p);
  p.post(1000);
  BOOST_TEST(wait_until([&] { return p.done_.load() == 1000; }));
  loop.remove(&p);
}

BOOST_AUTO_TEST_CASE(idle_loop_sleeps_instead_of_spinning) {
  KickPoller p;
  loop.add(&p);
  BOOST_TEST(wait_until([&] { return loop.stats().sleeps >= 1; }));
  const auto polls_before = p.polls_.load();
  std::this_thread::sleep_for(200ms);
  // A spinning loop would poll millions of times in 200 ms; a sleeping one
  // polls a handful of times at most (its 1 s timer has not fired).
  BOOST_TEST(p.polls_.load() - polls_before < 2000u);
  loop.remove(&p);
}

BOOST_AUTO_TEST_CASE(kick_wakes_a_sleeping_loop) {
  KickPoller p;
  loop.add(&p);
  BOOST_TEST(wait_until([&] { return p.armed_.load(); }));
  const auto t0 = std::chrono::steady_clock::now();
  p.post(1);
  BOOST_TEST(wait_until([&] { return p.done_.load() == 1; }));
  // Well below the 1 s timer: it was the fd that woke the loop.
  BOOST_TEST((std::chrono::steady_clock::now() - t0) < 500ms);
  BOOST_TEST(wait_until([&] { return p.wakeups_.load() >= 1; }));
  loop.remove(&p);
}

BOOST_AUTO_TEST_CASE(remove_returns_only_when_the_loop_lets_go) {
  KickPoller a;
  KickPoller b;
  loop.add(&a);
  loop.add(&b);
  a.post(100000);
  loop.remove(&a);
  const auto polls = a.polls_.load();
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(a.polls_.load() == polls);
  b.post(10);
  BOOST_TEST(wait_until([&] { return b.done_.load() == 10; }));
  BOOST_TEST(loop.size() == 1u);
  loop.remove(&b);
  BOOST_TEST(loop.size() == 0u);
}

BOOST_AUTO_TEST_CASE(quiesce_without_pollers_returns) {
  loop.quiesce();
  loop.quiesce();
  BOOST_TEST(loop.size() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(quiesce_on_a_loop_that_never_ran_does_not_block) {
  PollLoop idle("never", 1s);
  KickPoller p;
  idle.add(&p);
  idle.remove(&p);
  idle.quiesce();
  BOOST_TEST(idle.size() == 0u);
}

BOOST_AUTO_TEST_CASE(wait_set_caps_fds_and_shortens_timeouts) {
  WaitSet ws;
  ws.reset(5000);
  ws.wake_within_us(7000);
  BOOST_TEST(ws.timeout_us() == 5000u);
  ws.wake_within_us(100);
  BOOST_TEST(ws.timeout_us() == 100u);
  BOOST_TEST(ws.add(-1) == -1);
  for (std::size_t i = 0; i < WaitSet::kMaxFds; ++i) {
    BOOST_TEST(ws.add(0) == static_cast<int>(i));
  }
  BOOST_TEST(ws.add(0) == -1);
  BOOST_TEST(!ws.readable(-1));
  BOOST_TEST(!ws.readable(static_cast<int>(WaitSet::kMaxFds)));
}
