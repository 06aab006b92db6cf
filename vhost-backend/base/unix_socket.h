// Helpers for the unix socket paths viopool listens on (control API, vhost-user
// servers): refuse a path a live process serves, clear a stale one.
#pragma once

#include <string>

#include "vhost-backend/base/result.h"

namespace viopool {

// True if a process accepts connections on the unix socket at `path`.
bool unix_socket_is_live(const std::string& path) noexcept;

// Makes `path` ready for bind(): creates its directory, fails with
// kAlreadyExists if a live server or a non-socket file holds it, and unlinks a
// stale socket file left by a dead process. `why` explains a failure.
Result<void> prepare_unix_socket_path(const std::string& path, std::string& why);

}  // namespace viopool
