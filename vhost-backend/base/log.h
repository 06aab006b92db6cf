// Logging facade over spdlog. Each .cc declares VIOPOOL_LOG_MODULE(name) once;
// calls are fmt-style and carry identity in key=value form ("dev=net0 q=1").
// Poll loops use only the *_RL forms, which let a call site log a few lines a
// second and count what they suppress.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace viopool::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Configures the process-wide sink. Called once by main(); safe to skip in tests
// (spdlog's default stderr logger is used then).
void init(std::string_view program, Level level);
Level parse_level(std::string_view name, Level fallback);
spdlog::logger& logger();

// Per call-site limiter: at most kBurst lines per kWindow, counting the rest.
class RateLimiter {
 public:
  static constexpr int kBurst = 10;
  static constexpr std::chrono::seconds kWindow{1};
  // Returns true if this call may log; `suppressed` receives how many calls were
  // dropped since the last allowed one.
  bool allow(std::uint64_t* suppressed) noexcept;

 private:
  std::atomic<std::int64_t> window_start_ns_{0};
  std::atomic<int> used_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace viopool::log

#define VIOPOOL_LOG_MODULE(name) \
  namespace {                    \
  constexpr const char* kViopoolLogModule = name; \
  }

#define VIOPOOL_LOG_AT_(lvl, fmtstr, ...)                                              \
  do {                                                                                 \
    auto& viopool_lg_ = ::viopool::log::logger();                                      \
    if (viopool_lg_.should_log(lvl)) {                                                 \
      viopool_lg_.log(lvl, "[{}] " fmtstr, kViopoolLogModule __VA_OPT__(, ) __VA_ARGS__); \
    }                                                                                  \
  } while (0)

#define VIOPOOL_LOG_DEBUG(fmtstr, ...) VIOPOOL_LOG_AT_(spdlog::level::debug, fmtstr __VA_OPT__(, ) __VA_ARGS__)
#define VIOPOOL_LOG_INFO(fmtstr, ...) VIOPOOL_LOG_AT_(spdlog::level::info, fmtstr __VA_OPT__(, ) __VA_ARGS__)
#define VIOPOOL_LOG_WARN(fmtstr, ...) VIOPOOL_LOG_AT_(spdlog::level::warn, fmtstr __VA_OPT__(, ) __VA_ARGS__)
#define VIOPOOL_LOG_ERROR(fmtstr, ...) VIOPOOL_LOG_AT_(spdlog::level::err, fmtstr __VA_OPT__(, ) __VA_ARGS__)

#define VIOPOOL_LOG_RL_AT_(lvl, fmtstr, ...)                                            \
  do {                                                                                  \
    static ::viopool::log::RateLimiter viopool_rl_;                                     \
    std::uint64_t viopool_sup_ = 0;                                                     \
    if (viopool_rl_.allow(&viopool_sup_)) {                                             \
      VIOPOOL_LOG_AT_(lvl, fmtstr " (suppressed={})" __VA_OPT__(, ) __VA_ARGS__, viopool_sup_); \
    }                                                                                   \
  } while (0)

#define VIOPOOL_LOG_WARN_RL(fmtstr, ...) VIOPOOL_LOG_RL_AT_(spdlog::level::warn, fmtstr __VA_OPT__(, ) __VA_ARGS__)
#define VIOPOOL_LOG_ERROR_RL(fmtstr, ...) VIOPOOL_LOG_RL_AT_(spdlog::level::err, fmtstr __VA_OPT__(, ) __VA_ARGS__)
#define VIOPOOL_LOG_INFO_RL(fmtstr, ...) VIOPOOL_LOG_RL_AT_(spdlog::level::info, fmtstr __VA_OPT__(, ) __VA_ARGS__)
