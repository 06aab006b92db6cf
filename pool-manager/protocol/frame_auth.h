// Frame authentication (docs/fabric.md, "Authentication"): a 128-bit tag keyed
// per lease over the whole frame with the auth field zeroed: SipHash-2-4 for
// frames of at most kShortFrameBytes, GHASH then AES for longer ones, each
// under its own subkey of the lease key. OpenSSL's implementations; one
// object per key, not thread-safe (one per polling thread).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "vhost-backend/base/result.h"

namespace viopool::pool {

inline constexpr std::size_t kAuthKeyBytes = 16;
// Frames up to this size are tagged with SipHash (cheaper there), longer ones
// with GHASH then AES (faster per byte).
inline constexpr std::size_t kShortFrameBytes = 1024;
using AuthKey = std::array<std::uint8_t, kAuthKeyBytes>;

// A key written as 32 hex digits (config files, the API); kInvalidArgument
// otherwise.
Result<AuthKey> parse_auth_key(std::string_view hex);

class FrameAuthenticator {
 public:
  // kUnsupported if OpenSSL lacks SipHash or AES-128.
  static Result<std::unique_ptr<FrameAuthenticator>> create(const AuthKey& key);
  ~FrameAuthenticator();
  FrameAuthenticator(const FrameAuthenticator&) = delete;
  FrameAuthenticator& operator=(const FrameAuthenticator&) = delete;

  // Writes the tag into an encoded frame (at least a header long).
  Result<void> sign(std::span<std::byte> frame) noexcept;
  // True if the frame's tag is the one its key gives (constant-time compare).
  bool verify(std::span<const std::byte> frame) noexcept;

 private:
  FrameAuthenticator() = default;
  Result<void> tag_of(std::span<const std::byte> frame, std::uint8_t* out) noexcept;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace viopool::pool
