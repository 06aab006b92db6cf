// Pieces shared by the closed-loop workload engines (blk_workload.h,
// crypto_workload.h): the clock, thread pinning and sleeping on the call
// eventfds of a thread's queues. Each engine keeps its own request logic.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "integration/frontend/driver_queue.h"
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

}  // namespace viopool::frontend
