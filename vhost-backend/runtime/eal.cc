// EAL argument defaults and DPDK log redirection.
#include "vhost-backend/runtime/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <sched.h>

#include <cstdio>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("eal")

namespace viopool::runtime {
namespace {

// fopencookie() write hook: one DPDK log record → one line in our log.
ssize_t dpdk_log_write(void*, const char* buf, size_t size) {
  std::string_view line(buf, size);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (!line.empty()) {
    const auto lvl = rte_log_cur_msg_loglevel();
    auto& lg = viopool::log::logger();
    const auto spd = lvl <= static_cast<int>(RTE_LOG_ERR)       ? spdlog::level::err
                     : lvl == static_cast<int>(RTE_LOG_WARNING) ? spdlog::level::warn
                     : lvl <= static_cast<int>(RTE_LOG_INFO)    ? spdlog::level::info
                                                                : spdlog::level::debug;
    lg.log(spd, "[dpdk] {}", line);
  }
  return static_cast<ssize_t>(size);
}

}  // namespace

Result<EalInfo> init_eal(const EalOptions& o, std::string& why) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<unsigned> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) {
        cpus.push_back(c);
      }
    }
  }
  const bool huge = !o.force_no_huge && free_hugepage_mb() >= o.memory_mb / 2;
  EalInfo info;
  info.hugepages = huge;
  info.args = build_eal_args(o, huge, cpus);

  static cookie_io_functions_t kFns{nullptr, dpdk_log_write, nullptr, nullptr};
  if (FILE* f = fopencookie(nullptr, "w", kFns)) {
    setvbuf(f, nullptr, _IOLBF, 0);
    rte_openlog_stream(f);
  }

  std::vector<char*> argv;
  for (auto& s : info.args) {
    argv.push_back(s.data());
  }
  argv.push_back(nullptr);
  std::string joined;
  for (const auto& s : info.args) {
    joined += s + " ";
  }
  VIOPOOL_LOG_INFO("starting EAL args=\"{}\"", joined);
  const int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (rc < 0) {
    why = std::string("rte_eal_init failed: ") + rte_strerror(rte_errno) + " (args: " + joined + ")";
    return fail(Errc::kIo, "EAL initialisation failed", rte_errno);
  }
  return info;
}

void cleanup_eal() noexcept { rte_eal_cleanup(); }

}  // namespace viopool::runtime
