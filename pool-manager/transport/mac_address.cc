#include "pool-manager/transport/mac_address.h"

#include <cstring>

namespace viopool::pool {

PeerAddress mac_address(std::span<const std::uint8_t, kMacBytes> mac) noexcept {
  PeerAddress a;
  std::memcpy(a.bytes.data(), mac.data(), kMacBytes);
  a.len = kMacBytes;
  return a;
}

Result<PeerAddress> parse_mac(const std::string& text) {
  // Exactly six two-digit hex groups separated by ':'.
  if (text.size() != 17) {
    return fail(Errc::kInvalidArgument, "mac: expected xx:xx:xx:xx:xx:xx");
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  };
  std::uint8_t mac[kMacBytes];
  for (std::size_t i = 0; i < kMacBytes; ++i) {
    const int hi = nibble(text[i * 3]);
    const int lo = nibble(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i + 1 < kMacBytes && text[i * 3 + 2] != ':')) {
      return fail(Errc::kInvalidArgument, "mac: expected xx:xx:xx:xx:xx:xx");
    }
    mac[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return mac_address(mac);
}

std::string mac_to_string(const PeerAddress& a) {
  if (a.len != kMacBytes) {
    return "?";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < kMacBytes; ++i) {
    if (i != 0) {
      s += ':';
    }
    s += kHex[a.bytes[i] >> 4];
    s += kHex[a.bytes[i] & 0xf];
  }
  return s;
}

}  // namespace viopool::pool
