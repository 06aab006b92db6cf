// Shared workload helpers; see workload_common.h.
#include "integration/frontend/workload_common.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <string>

namespace viopool::frontend {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

Result<void> pin_current_thread(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    return fail(Errc::kInvalidArgument, "no such CPU");
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (const int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); e != 0) {
    return fail(Errc::kInvalidArgument, "cannot pin the thread", e);
  }
  return {};
}

Result<ArenaBlock> alloc_request_buffer(GuestMemoryArena& arena, std::uint64_t bytes,
                                        std::uint16_t queues, std::uint32_t queue_depth,
                                        std::string* why) {
  auto b = arena.alloc(bytes, 4096);
  if (!b && why != nullptr) {
    *why = "guest memory too small for " + std::to_string(queues) + " x " +
           std::to_string(queue_depth) + " buffers of " + std::to_string(bytes) +
           " bytes: raise --mem";
  }
  return b;
}

Result<void> wait_for_interrupts(std::span<DriverQueue* const> queues,
                                 std::chrono::milliseconds limit) noexcept {
  std::array<pollfd, 64> fds{};
  std::size_t n = 0;
  for (DriverQueue* q : queues) {
    // Re-arms used_event (EVENT_IDX) or clears NO_INTERRUPT.
    q->set_interrupts(virtio::Notifications::kEnabled);
  }
  // Orders the arming stores before the used->idx loads below (store->load).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (DriverQueue* q : queues) {
    if (q->has_used()) {
      return {};
    }
    if (n < fds.size()) {  // more than 64 queues per thread: the rest are only polled
      fds[n++] = pollfd{q->call_fd(), POLLIN, 0};
    }
  }
  const int r = ::poll(fds.data(), n, static_cast<int>(limit.count()));
  if (r < 0 && errno != EINTR) {
    return fail(Errc::kIo, "poll on the call eventfds failed", errno);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (fds[i].revents & POLLIN) {
      std::uint64_t v = 0;
      (void)!::read(fds[i].fd, &v, sizeof(v));
    }
  }
  return {};
}

}  // namespace viopool::frontend
