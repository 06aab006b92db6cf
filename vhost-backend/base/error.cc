// Names and formatting for viopool::Error.
#include "vhost-backend/base/error.h"

#include <cstring>

namespace viopool {

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kOutOfRange: return "out_of_range";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kResourceExhausted: return "resource_exhausted";
    case Errc::kBusy: return "busy";
    case Errc::kIo: return "io";
    case Errc::kProtocol: return "protocol";
    case Errc::kTimeout: return "timeout";
    case Errc::kInternal: return "internal";
  }
  return "unknown";
}

std::string to_string(const Error& e) {
  std::string s = e.what ? e.what : "";
  if (e.sys_errno != 0) {
    s += ": ";
    s += std::strerror(e.sys_errno);
  }
  return s;
}

}  // namespace viopool
