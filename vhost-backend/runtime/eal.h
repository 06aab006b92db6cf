// DPDK EAL start-up for viopool daemons: builds the EAL argument list from our
// defaults (hugepages if free, else --no-huge; floating lcores; no PCI scan
// unless devices are allowed explicitly) plus the operator's passthrough, and
// routes DPDK's log into ours.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vhost-backend/base/result.h"

namespace viopool::runtime {

struct EalOptions {
  std::string program = "viopool";
  std::vector<std::string> user_args;  // appended last: they win over defaults
  bool force_no_huge = false;
  std::uint32_t memory_mb = 512;       // cap (hugepages) or size (--no-huge)
  unsigned worker_lcores = 1;          // default lcore layout when the user gives none
};

struct EalInfo {
  bool hugepages = false;
  std::vector<std::string> args;  // what rte_eal_init got
};

// Free hugepage memory in MiB on a mounted hugetlbfs, 0 if none.
std::uint64_t free_hugepage_mb() noexcept;

// "0-2,5": CPU ids, sorted, ranges joined (unit-tested).
std::string cpu_list(const std::vector<unsigned>& cpus);

// Pure: the argument vector for rte_eal_init (unit-tested). Without lcore
// arguments from the user, the lcores float over `allowed_cpus` (the
// process's affinity).
std::vector<std::string> build_eal_args(const EalOptions& o, bool use_hugepages,
                                        const std::vector<unsigned>& allowed_cpus);

// Calls rte_eal_init once per process. `why` explains a failure.
Result<EalInfo> init_eal(const EalOptions& o, std::string& why);
void cleanup_eal() noexcept;

}  // namespace viopool::runtime
