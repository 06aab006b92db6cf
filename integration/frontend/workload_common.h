// Pieces shared by the closed-loop workload engines (blk_workload.h,
// crypto_workload.h): the clock, thread pinning, sleeping on the call
// eventfds of a thread's queues, the per-thread loop (submit, kick, poll,
// stall detection, waits) and running the threads. Each engine keeps its own
// request logic: what to submit next and what a completion means.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "vhost-backend/base/result.h"

namespace viopool::frontend {

// kPoll busy-polls the used rings (interrupts off: measures the backend, not
// eventfd wake-ups); kInterrupt sleeps on the call eventfds.
enum class WaitMode : std::uint8_t { kPoll, kInterrupt };

// Monotonic nanoseconds (steady_clock).
std::uint64_t now_ns() noexcept;

// Pins the calling thread to `cpu`. kInvalidArgument if the kernel refuses
// (no such CPU, or outside the allowed set).
Result<void> pin_current_thread(int cpu) noexcept;

// Arms interrupts on every queue of `queues` and, unless one already has used
// entries, sleeps up to `limit` on their call eventfds (those of the first 64
// queues; the caller keeps polling the rest), draining whichever fired. Returns without error on
// timeout or EINTR; kIo if poll() fails. The queues' thread only.
Result<void> wait_for_interrupts(std::span<DriverQueue* const> queues,
                                 std::chrono::milliseconds limit) noexcept;

// One request buffer of `bytes` (4 KiB aligned) from `arena`. On failure
// `why` says what the run needs (`queues` x `queue_depth` such buffers) and
// that --mem should grow.
Result<ArenaBlock> alloc_request_buffer(GuestMemoryArena& arena, std::uint64_t bytes,
                                        std::uint16_t queues, std::uint32_t queue_depth,
                                        std::string* why);

// Threads a run uses: `threads` (at least 1), at most one per queue.
inline unsigned effective_threads(unsigned threads, std::size_t queues) noexcept {
  return std::min<unsigned>(std::max(1u, threads), static_cast<unsigned>(queues));
}

// What the shared loop needs of a run's options (WorkloadOptions and
// CryptoWorkloadOptions name these fields alike; see closed_loop_options()).
struct ClosedLoopOptions {
  WaitMode wait_mode = WaitMode::kPoll;
  unsigned threads = 1;
  std::span<const int> cpus;  // thread i runs on cpus[i % n]; empty: not pinned
  std::chrono::milliseconds io_timeout{10000};
  // What is in flight, for the stall message: "requests", "operations".
  const char* in_flight_noun = "requests";
};
template <typename WorkloadOptionsT>
ClosedLoopOptions closed_loop_options(const WorkloadOptionsT& o, const char* in_flight_noun) {
  return ClosedLoopOptions{o.wait_mode, o.threads, o.cpus, o.io_timeout, in_flight_noun};
}

// The per-queue state the loop reads and updates; each engine's QueueState
// derives from it and adds its own.
struct ClosedLoopQueue {
  std::uint16_t q = 0;
  std::vector<std::uint32_t> free;  // the engine's request indices not in flight
  std::uint32_t in_flight = 0;      // the engine counts it on submit and completion
  std::uint64_t last_progress_ns = 0;
};

// What every workload thread reports besides the engine's counters; each
// engine's ThreadOut derives from it.
struct ClosedLoopThreadOut {
  std::uint64_t main_done_ns = 0;  // end of the timed phase, drain included
  std::string first_error;         // first failed request, for people
  bool failed = false;             // the thread stopped the run:
  Error error{};                   //   why, for the Result
  std::string why;                 //   and for people
};

// One thread's closed loop over its share of a driver's queues (BlkDriver or
// CryptoDriver: kick(), poll() and queue()), driven the same way for every
// device so that blk and crypto numbers mean the same thing.
template <typename Driver, typename QueueState, typename Completion>
class ClosedLoopThread {
 public:
  ClosedLoopThread(Driver& d, ClosedLoopOptions o, std::atomic<bool>& abort,
                   ClosedLoopThreadOut& out) noexcept
      : d_(d), o_(o), abort_(abort), out_(out) {}

  // Pins thread `t` (if cpus were given), takes queues t, t + threads, ... of
  // `queues`, and sets their interrupts by the wait mode. False when the
  // thread could not be pinned (it has failed the run).
  bool start(unsigned t, std::vector<QueueState>& queues) {
    if (!o_.cpus.empty()) {
      const int cpu = o_.cpus[t % o_.cpus.size()];
      if (auto p = pin_current_thread(cpu); !p) {
        fail(p.error(),
             "cannot pin thread " + std::to_string(t) + " to CPU " + std::to_string(cpu));
        return false;
      }
    }
    const unsigned threads = effective_threads(o_.threads, queues.size());
    for (std::size_t q = t; q < queues.size(); q += threads) {
      mine_.push_back(&queues[q]);
      mine_vqs_.push_back(&d_.queue(static_cast<std::uint16_t>(q)));
    }
    const auto notif = o_.wait_mode == WaitMode::kInterrupt ? virtio::Notifications::kEnabled
                                                            : virtio::Notifications::kDisabled;
    for (QueueState* qs : mine_) {
      d_.queue(qs->q).set_interrupts(notif);
      qs->last_progress_ns = now_ns();
    }
    return true;
  }

  std::span<QueueState* const> queues() const noexcept { return mine_; }

  // Keeps every queue for which generating(const QueueState&, now_ns) holds
  // full (submit(QueueState&, now_ns) -> Result<bool> adds one request; false:
  // none now, wait for completions), kicks, and hands each completion to
  // complete(QueueState&, const Completion&, done_ns), until no queue generates and
  // none has requests in flight. A queue with requests in flight and no
  // completion for io_timeout fails the run (kTimeout). False when this
  // thread failed or another one aborted the run.
  template <typename Generating, typename Submit, typename Complete>
  bool run(Generating&& generating, Submit&& submit, Complete&& complete) {
    const std::uint64_t io_timeout_ns =
        static_cast<std::uint64_t>(std::chrono::nanoseconds(o_.io_timeout).count());
    std::array<Completion, 64> comps;
    for (;;) {
      if (abort_.load(std::memory_order_relaxed)) {
        return false;
      }
      const std::uint64_t now = now_ns();
      bool generating_any = false;
      bool active = false;
      bool progressed = false;
      for (QueueState* qs : mine_) {
        const bool gen = generating(static_cast<const QueueState&>(*qs), now);
        generating_any |= gen;
        while (gen && !qs->free.empty()) {
          auto s = submit(*qs, now);
          if (!s) {
            fail(s.error(),
                 "submitting on queue " + std::to_string(qs->q) + ": " + to_string(s.error()));
            return false;
          }
          if (!*s) {
            break;
          }
        }
        if (auto k = d_.kick(qs->q); !k) {
          fail(k.error(), "kick on queue " + std::to_string(qs->q) + ": " + to_string(k.error()));
          return false;
        }
        for (;;) {
          auto n = d_.poll(qs->q, comps);
          if (!n) {
            fail(n.error(), "queue " + std::to_string(qs->q) + ": " + to_string(n.error()));
            return false;
          }
          // One clock read per round and per reaped batch, not two per
          // request: at millions of requests a second the clock would cost
          // the guest more than the requests. A request is stamped with its
          // round's start, so its latency may include up to one round of
          // this loop (the submissions before it, other queues of the
          // thread): overstated by that much, never understated.
          const std::uint64_t done = *n > 0 ? now_ns() : now;
          for (std::size_t i = 0; i < *n; ++i) {
            complete(*qs, comps[i], done);
          }
          if (*n > 0) {
            progressed = true;
            qs->last_progress_ns = now;
          }
          if (*n < comps.size()) {
            break;
          }
        }
        active |= qs->in_flight > 0;
      }
      if (!active && !generating_any) {
        return true;
      }
      if (!progressed) {
        const std::uint64_t t_check = now_ns();
        for (QueueState* qs : mine_) {
          // last_progress_ns may be later than `now` (set at a submission).
          if (qs->in_flight > 0 && t_check > qs->last_progress_ns &&
              t_check - qs->last_progress_ns > io_timeout_ns) {
            fail(make_error(Errc::kTimeout, "backend stalled"),
                 "backend stalled: queue " + std::to_string(qs->q) + " has " +
                     std::to_string(qs->in_flight) + " " + o_.in_flight_noun +
                     " in flight and no completion for " + std::to_string(o_.io_timeout.count()) +
                     " ms");
            return false;
          }
        }
        if (o_.wait_mode == WaitMode::kInterrupt && active) {
          if (auto w = wait_for_interrupts(mine_vqs_, std::chrono::milliseconds(50)); !w) {
            fail(w.error(), to_string(w.error()));
            return false;
          }
        }
      }
    }
  }

  // Records the thread's failure and tells the other threads to stop.
  void fail(const Error& e, std::string why) {
    out_.failed = true;
    out_.error = e;
    out_.why = std::move(why);
    abort_.store(true);
  }

 private:
  Driver& d_;
  const ClosedLoopOptions o_;
  std::atomic<bool>& abort_;
  ClosedLoopThreadOut& out_;
  std::vector<QueueState*> mine_;
  std::vector<DriverQueue*> mine_vqs_;  // the same queues, for wait_for_interrupts()
};

// Runs runner.run_thread(t, end_ns, outs[t]) on effective_threads() threads
// (thread 0 on the caller's), where end_ns is options.runtime from now, and
// joins them. Returns the timed phase's length in seconds (start to the
// latest main_done_ns), or the first failed thread's error with its message
// in `why`. `outs` gets one ThreadOut per thread.
template <typename ThreadOut, typename Runner, typename WorkloadOptionsT>
Result<double> run_closed_loop_threads(Runner& runner, const WorkloadOptionsT& options,
                                       std::vector<ThreadOut>& outs, std::string* why) {
  outs.resize(effective_threads(options.threads, runner.queues().size()));
  const std::uint64_t start = now_ns();
  const std::uint64_t end =
      start + static_cast<std::uint64_t>(std::chrono::nanoseconds(options.runtime).count());
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < outs.size(); ++t) {
    pool.emplace_back([&, t] { runner.run_thread(t, end, outs[t]); });
  }
  runner.run_thread(0, end, outs[0]);
  for (auto& th : pool) {
    th.join();
  }
  std::uint64_t main_done = start;
  for (const ClosedLoopThreadOut& o : outs) {
    if (o.failed) {
      if (why) *why = o.why;
      return unexpected(o.error);
    }
    main_done = std::max(main_done, o.main_done_ns);
  }
  return static_cast<double>(main_done - start) / 1e9;
}

// Adds the kicks of every queue of `driver` to a report's kicks and
// kicks_suppressed.
template <typename Driver, typename Report>
void add_kick_counts(Driver& driver, Report& rep) {
  for (std::uint16_t q = 0; q < driver.num_queues(); ++q) {
    rep.kicks += driver.queue(q).kicks();
    rep.kicks_suppressed += driver.queue(q).kicks_suppressed();
  }
}

}  // namespace viopool::frontend
