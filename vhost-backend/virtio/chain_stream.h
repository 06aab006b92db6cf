// ChainStream: a cursor over the device-readable or device-writable buffers of
// a descriptor chain viewed as one byte stream. virtio requests must not assume
// any particular buffer boundaries (virtio 1.2, 2.6.4 "Message Framing"), so
// devices read headers and locate payload fields through this, never through
// the descriptor layout. Every address is translated (bounds-checked) before use.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "vhost-backend/virtio/guest_memory.h"
#include "vhost-backend/virtio/split_queue.h"

namespace viopool::virtio {

class ChainStream {
 public:
  ChainStream(std::span<const ChainBuffer> bufs, const GuestMemory& mem) noexcept
      : bufs_(bufs), mem_(mem) {}

  // Copies n bytes out of guest memory and advances. False if the stream is
  // too short or an address does not translate (the position is then unspecified).
  bool copy_out(void* dst, std::size_t n) noexcept {
    auto* out = static_cast<std::byte*>(dst);
    while (n > 0) {
      if (i_ >= bufs_.size()) {
        return false;
      }
      const auto& b = bufs_[i_];
      const std::uint64_t take = std::min<std::uint64_t>(b.len - off_, n);
      if (take > 0) {
        auto span = mem_.translate(GuestAddr(b.addr.value + off_), take);
        if (!span) {
          return false;
        }
        std::memcpy(out, span->data(), take);
        out += take;
        n -= take;
      }
      advance(take);
    }
    return true;
  }

  // Copies n bytes into guest memory and advances (writable streams). False
  // as copy_out.
  bool copy_in(const void* src, std::size_t n) noexcept {
    const auto* in = static_cast<const std::byte*>(src);
    while (n > 0) {
      if (i_ >= bufs_.size()) {
        return false;
      }
      const auto& b = bufs_[i_];
      const std::uint64_t take = std::min<std::uint64_t>(b.len - off_, n);
      if (take > 0) {
        auto span = mem_.translate(GuestAddr(b.addr.value + off_), take);
        if (!span) {
          return false;
        }
        std::memcpy(span->data(), in, take);
        in += take;
        n -= take;
      }
      advance(take);
    }
    return true;
  }

  // Appends iovecs (host addresses) for the next n bytes and advances. False
  // on a bad address or when more than `max` iovecs would be needed
  // (`too_many` set), or a piece larger than `size_max` (0: no limit; `too_big` set).
  bool take_iov(std::uint64_t n, iovec* iov, std::uint32_t max, std::uint32_t& cnt,
                std::uint32_t size_max, bool& too_many, bool& too_big) noexcept {
    while (n > 0) {
      if (i_ >= bufs_.size()) {
        return false;
      }
      const auto& b = bufs_[i_];
      const std::uint64_t take = std::min<std::uint64_t>(b.len - off_, n);
      if (take > 0) {
        if (size_max != 0 && take > size_max) {
          too_big = true;
          return false;
        }
        if (cnt >= max) {
          too_many = true;
          return false;
        }
        auto r = mem_.translate_iov(GuestAddr(b.addr.value + off_), take,
                                    std::span<iovec>(iov + cnt, max - cnt));
        if (!r) {
          too_many = r.error().code == Errc::kResourceExhausted;
          return false;
        }
        cnt += static_cast<std::uint32_t>(*r);
        n -= take;
      }
      advance(take);
    }
    return true;
  }

  // Skips n bytes without touching them. False if the stream is too short.
  bool skip(std::uint64_t n) noexcept {
    while (n > 0) {
      if (i_ >= bufs_.size()) {
        return false;
      }
      const std::uint64_t take = std::min<std::uint64_t>(bufs_[i_].len - off_, n);
      n -= take;
      advance(take);
    }
    return true;
  }

  // Bytes left in the stream.
  std::uint64_t remaining() const noexcept {
    std::uint64_t r = 0;
    for (std::size_t j = i_; j < bufs_.size(); ++j) {
      r += bufs_[j].len;
    }
    return r - off_;
  }

 private:
  void advance(std::uint64_t n) noexcept {
    off_ += n;
    while (i_ < bufs_.size() && off_ == bufs_[i_].len) {
      ++i_;
      off_ = 0;
    }
  }

  std::span<const ChainBuffer> bufs_;
  const GuestMemory& mem_;
  std::size_t i_ = 0;
  std::uint64_t off_ = 0;
};

}  // namespace viopool::virtio
