// Invariant checks. VIOPOOL_ASSERT: debug builds only. VIOPOOL_CHECK: always on
// and fatal, for our own invariants (never for guest or peer input). VIOPOOL_BUG:
// logs and counts in release, aborts in debug.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace viopool {

// Number of VIOPOOL_BUG hits since start (exported by the control API).
inline std::atomic<std::uint64_t>& bug_counter() noexcept {
  static std::atomic<std::uint64_t> n{0};
  return n;
}

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "viopool: check failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace viopool

#define VIOPOOL_CHECK(cond)                                \
  do {                                                     \
    if (!(cond)) [[unlikely]] {                            \
      ::viopool::check_failed(#cond, __FILE__, __LINE__);  \
    }                                                      \
  } while (0)

#ifndef NDEBUG
#define VIOPOOL_ASSERT(cond) VIOPOOL_CHECK(cond)
#define VIOPOOL_BUG(msg) ::viopool::check_failed(msg, __FILE__, __LINE__)
#else
#define VIOPOOL_ASSERT(cond) ((void)0)
#define VIOPOOL_BUG(msg)                                                              \
  do {                                                                                \
    ::viopool::bug_counter().fetch_add(1, std::memory_order_relaxed);                 \
    std::fprintf(stderr, "viopool: bug: %s at %s:%d\n", msg, __FILE__, __LINE__);     \
  } while (0)
#endif
