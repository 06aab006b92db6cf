// Error values shared by every layer. An Error is trivially copyable and never
// allocates: a code, the errno that caused it (0 if none) and a static string.
// Result<T> (result.h) carries one on failure.
#pragma once

#include <cstdint>
#include <string>

namespace viopool {

enum class Errc : std::uint8_t {
  kOk = 0,
  kInvalidArgument,  // caller or peer passed something malformed
  kNotFound,
  kAlreadyExists,
  kOutOfRange,       // an address, index or length outside what is allowed
  kUnsupported,      // valid request we do not implement
  kResourceExhausted,
  kBusy,             // try again later (EAGAIN-like)
  kIo,               // system call or device failure; see sys_errno
  kProtocol,         // a peer broke the protocol (ring corruption, bad message)
  kTimeout,
  kInternal,
};

struct Error {
  Errc code = Errc::kInternal;
  int sys_errno = 0;
  const char* what = "";
};

constexpr Error make_error(Errc code, const char* what, int sys_errno = 0) noexcept {
  return Error{code, sys_errno, what};
}

// Stable lower-case name of an error code, for API replies and logs.
const char* errc_name(Errc code) noexcept;

// "<what>: <errno text>" when sys_errno is set, else "<what>". Allocates; control path only.
std::string to_string(const Error& e);

}  // namespace viopool
