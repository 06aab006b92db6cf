// Unix socket path checks shared by the control API and vhost-user servers.
#include "vhost-backend/base/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace viopool {

bool unix_socket_is_live(const std::string& path) noexcept {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return false;
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

Result<void> prepare_unix_socket_path(const std::string& path, std::string& why) {
  namespace fs = std::filesystem;
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    why = "socket path '" + path + "' must be 1-107 bytes";
    return fail(Errc::kInvalidArgument, "socket path length");
  }
  std::error_code ec;
  const fs::path p(path);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
    if (ec) {
      why = "cannot create directory " + p.parent_path().string() + ": " + ec.message();
      return fail(Errc::kIo, "cannot create socket directory");
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      why = path + " exists and is not a socket";
      return fail(Errc::kAlreadyExists, "socket path taken by a file");
    }
    if (unix_socket_is_live(path)) {
      why = path + " is in use by another process";
      return fail(Errc::kAlreadyExists, "socket in use");
    }
    ::unlink(path.c_str());
  }
  return {};
}

}  // namespace viopool
