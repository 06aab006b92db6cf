// spdlog-backed sink for the log facade: one stderr logger per process whose
// lines read "<time> <program> <level> [module] message key=value...".
#include "vhost-backend/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <memory>
#include <string>

namespace viopool::log {
namespace {

std::shared_ptr<spdlog::logger>& instance() {
  static std::shared_ptr<spdlog::logger> lg = [] {
    auto l = std::make_shared<spdlog::logger>(
        "viopool", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e viopool %l %v");
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return lg;
}

spdlog::level::level_enum to_spd(Level l) {
  switch (l) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

void init(std::string_view program, Level level) {
  auto& lg = instance();
  lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e " + std::string(program) + " %l %v");
  lg->set_level(to_spd(level));
}

Level parse_level(std::string_view name, Level fallback) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  return fallback;
}

spdlog::logger& logger() { return *instance(); }

bool RateLimiter::allow(std::uint64_t* suppressed) noexcept {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  const std::int64_t window = std::chrono::duration_cast<std::chrono::nanoseconds>(kWindow).count();
  std::int64_t start = window_start_ns_.load(std::memory_order_relaxed);
  if (now - start >= window &&
      window_start_ns_.compare_exchange_strong(start, now, std::memory_order_relaxed)) {
    used_.store(0, std::memory_order_relaxed);
  }
  if (used_.fetch_add(1, std::memory_order_relaxed) < kBurst) {
    *suppressed = dropped_.exchange(0, std::memory_order_relaxed);
    return true;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace viopool::log
