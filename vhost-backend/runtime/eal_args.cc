// Pure parts of EAL start-up (argument defaults, hugepage probe), kept free of
// DPDK so that unit tests cover them.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "vhost-backend/runtime/eal.h"

namespace viopool::runtime {
namespace {

bool has_any(const std::vector<std::string>& args, std::initializer_list<const char*> opts) {
  for (const auto& a : args) {
    for (const char* o : opts) {
      const std::string s(o);
      if (a == s || a.rfind(s + "=", 0) == 0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::uint64_t free_hugepage_mb() noexcept {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  bool mounted = false;
  while (std::getline(mounts, line)) {
    if (line.find(" hugetlbfs ") != std::string::npos) {
      mounted = true;
      break;
    }
  }
  if (!mounted) {
    return 0;
  }
  std::ifstream mi("/proc/meminfo");
  std::uint64_t free_pages = 0;
  std::uint64_t page_kb = 0;
  while (std::getline(mi, line)) {
    std::istringstream is(line);
    std::string key;
    std::uint64_t v = 0;
    is >> key >> v;
    if (key == "HugePages_Free:") {
      free_pages = v;
    } else if (key == "Hugepagesize:") {
      page_kb = v;
    }
  }
  return free_pages * page_kb / 1024;
}

std::string cpu_list(const std::vector<unsigned>& cpus) {
  std::vector<unsigned> c = cpus;
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  std::string out;
  for (std::size_t i = 0; i < c.size();) {
    std::size_t j = i;
    while (j + 1 < c.size() && c[j + 1] == c[j] + 1) {
      ++j;
    }
    if (!out.empty()) {
      out += ",";
    }
    out += std::to_string(c[i]);
    if (j > i) {
      out += "-" + std::to_string(c[j]);
    }
    i = j + 1;
  }
  return out;
}

std::vector<std::string> build_eal_args(const EalOptions& o, bool use_hugepages,
                                        const std::vector<unsigned>& allowed_cpus) {
  std::vector<std::string> a{o.program};
  const auto& u = o.user_args;
  if (!has_any(u, {"-l", "-c", "--lcores"})) {
    // Main lcore (control) plus worker lcores, all floating over every CPU the
    // process may use (its affinity: taskset, a cgroup's cpuset): on small
    // machines the kernel balances them with the guest's own threads. Pin
    // with --lcores for production.
    const std::string list = allowed_cpus.empty() ? "0" : cpu_list(allowed_cpus);
    const std::string cpus = list.find_first_of(",-") == std::string::npos ? list : "(" + list + ")";
    std::string l = "--lcores=0@" + cpus;
    for (unsigned i = 1; i <= o.worker_lcores; ++i) {
      l += "," + std::to_string(i) + "@" + cpus;
    }
    a.push_back(l);
  }
  if (!has_any(u, {"--no-huge", "--in-memory", "-m", "--socket-mem", "--file-prefix",
                   "--legacy-mem"})) {
    if (use_hugepages) {
      // In-memory: no hugepage files to leak and no shared config, so several
      // daemons run side by side; the limit keeps one from taking every page.
      a.push_back("--in-memory");
      a.push_back("--socket-limit=" + std::to_string(o.memory_mb));
    } else {
      a.push_back("--no-huge");
      a.push_back("-m");
      a.push_back(std::to_string(o.memory_mb));
      a.push_back("--no-shconf");
    }
  }
  if (!has_any(u, {"-a", "--allow", "-b", "--block", "--no-pci"})) {
    a.push_back("--no-pci");
  }
  a.insert(a.end(), u.begin(), u.end());
  return a;
}

}  // namespace viopool::runtime
