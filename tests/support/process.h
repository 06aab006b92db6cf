// Test harness for real processes: spawn with output to a log file, optional
// network namespace, stop by PID only (SIGTERM, then SIGKILL after a grace
// period). Every wait is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace viopool::testing {

struct SpawnOptions {
  std::string log_path;   // stdout+stderr; /dev/null if empty
  std::string netns;      // run inside `ip netns exec <netns>` if set
  bool stdin_pipe = false;  // keep a pipe to the child's stdin
};

class Process {
 public:
  Process() = default;
  Process(std::vector<std::string> argv, SpawnOptions o);  // aborts the test on failure
  ~Process();
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool running();
  // Exit status as from waitpid (WIFEXITED...), or -1 if still running.
  int wait_exit(std::chrono::milliseconds limit);
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the wait status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  void kill_hard();  // SIGKILL and reap
  bool write_stdin(const std::string& s);
  std::string log() const;  // whole log file so far
  const std::string& log_path() const noexcept { return log_path_; }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int status_ = -1;
  std::string log_path_;
};

// Polls `pred` every 10 ms until true or `limit` passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit);

// A fresh directory under /tmp with a short path (unix socket paths are
// limited to 107 bytes), removed with its contents at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

// CPU time (user + system) a process has used, in clock ticks
// (sysconf(_SC_CLK_TCK) a second), from /proc/<pid>/stat.
long cpu_ticks(pid_t pid);

// The build's binaries, and system tools.
std::string build_path(const std::string& rel);
std::string which(const std::string& tool);

// Network namespace created by the test, deleted (with its veths) at the end.
class NetNs {
 public:
  explicit NetNs(const std::string& name);
  ~NetNs();
  const std::string& name() const noexcept { return name_; }
  // Runs `ip netns exec <name> bash -c cmd` (bounded); returns its exit code.
  int exec(const std::string& cmd) const;

 private:
  std::string name_;
};

// Runs `bash -c cmd` for at most 60 s; returns its exit code (-1 on signal/timeout).
int run_shell(const std::string& cmd);

}  // namespace viopool::testing
