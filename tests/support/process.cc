// Process, TempDir and NetNs for integration tests.
#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace viopool::testing {

Process::Process(std::vector<std::string> argv, SpawnOptions o) : log_path_(o.log_path) {
  if (!o.netns.empty()) {
    argv.insert(argv.begin(), {"ip", "netns", "exec", o.netns});
  }
  int in[2] = {-1, -1};
  if (o.stdin_pipe) {
    BOOST_REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  }
  const std::string out = o.log_path.empty() ? "/dev/null" : o.log_path;
  pid_ = ::fork();
  BOOST_REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    // Child: own process group so a stop reaches helpers it may fork, and
    // killed with the test if the test itself dies before stopping it.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (o.stdin_pipe) {
      ::dup2(in[0], 0);
    } else {
      int nul = ::open("/dev/null", O_RDONLY);
      ::dup2(nul, 0);
    }
    std::vector<char*> args;
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  if (o.stdin_pipe) {
    ::close(in[0]);
    stdin_fd_ = in[1];
  }
}

Process::~Process() {
  if (pid_ > 0) {
    stop(std::chrono::seconds(5));
  }
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
  }
}

Process::Process(Process&& o) noexcept
    : pid_(o.pid_), stdin_fd_(o.stdin_fd_), status_(o.status_), log_path_(std::move(o.log_path_)) {
  o.pid_ = -1;
  o.stdin_fd_ = -1;
}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      stop(std::chrono::seconds(5));
    }
    if (stdin_fd_ >= 0) {
      ::close(stdin_fd_);
    }
    pid_ = o.pid_;
    stdin_fd_ = o.stdin_fd_;
    status_ = o.status_;
    log_path_ = std::move(o.log_path_);
    o.pid_ = -1;
    o.stdin_fd_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0) {
    return false;
  }
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    pid_ = -1;
    return false;
  }
  return true;
}

int Process::wait_exit(std::chrono::milliseconds limit) {
  wait_until([this] { return !running(); }, limit);
  return pid_ > 0 ? -1 : status_;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) {
    return status_;
  }
  ::kill(pid_, SIGTERM);
  if (wait_exit(grace) == -1 && pid_ > 0) {
    kill_hard();
  }
  return status_;
}

void Process::kill_hard() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  status_ = st;
  pid_ = -1;
}

bool Process::write_stdin(const std::string& s) {
  if (stdin_fd_ < 0) {
    return false;
  }
  return ::write(stdin_fd_, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

std::string Process::log() const { return log_path_.empty() ? "" : read_file(log_path_); }

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/vpt.XXXXXX";
  char* p = ::mkdtemp(tmpl);
  BOOST_REQUIRE(p != nullptr);
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long cpu_ticks(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) {
    return 0;
  }
  std::istringstream is(stat.substr(close + 2));  // from field 3 (state) on
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && is >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::string build_path(const std::string& rel) { return std::string(VIOPOOL_BUILD_DIR) + "/" + rel; }

std::string which(const std::string& tool) {
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"}) {
    std::string p = std::string(dir) + "/" + tool;
    if (::access(p.c_str(), X_OK) == 0) {
      return p;
    }
  }
  return "";
}

namespace {
// Runs argv to completion (bounded); returns its exit code, -1 on signal or timeout.
int run_bounded(std::vector<std::string> argv) {
  Process p(std::move(argv), SpawnOptions{});
  const int st = p.wait_exit(std::chrono::seconds(60));
  if (st == -1) {
    p.kill_hard();
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

int run_shell(const std::string& cmd) { return run_bounded({"bash", "-c", cmd}); }

NetNs::NetNs(const std::string& name) : name_(name) {
  run_shell("ip netns del " + name_ + " 2>/dev/null");
  BOOST_REQUIRE_MESSAGE(run_shell("ip netns add " + name_) == 0, "cannot create netns " + name_);
  run_shell("ip -n " + name_ + " link set lo up");
}

NetNs::~NetNs() { run_shell("ip netns del " + name_ + " 2>/dev/null"); }

int NetNs::exec(const std::string& cmd) const {
  return run_bounded({"ip", "netns", "exec", name_, "bash", "-c", cmd});
}

}  // namespace viopool::testing
