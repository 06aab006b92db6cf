// Result<T>: the subset of C++23 std::expected<T, Error> that viopool uses, so a
// later move to std::expected is a rename. Never allocates by itself and never
// throws on the data path; value() on an error is a bug and aborts.
#pragma once

#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>

#include "vhost-backend/base/error.h"

namespace viopool {

class unexpected {
 public:
  constexpr explicit unexpected(Error e) noexcept : error_(e) {}
  constexpr const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result() requires std::is_default_constructible_v<T> : has_(true) { new (&value_) T(); }
  Result(const T& v) : has_(true) { new (&value_) T(v); }  // NOLINT: implicit like expected
  Result(T&& v) : has_(true) { new (&value_) T(std::move(v)); }  // NOLINT
  Result(unexpected u) noexcept : has_(false) { error_ = u.error(); }  // NOLINT

  Result(const Result& o) : has_(o.has_) {
    if (has_) {
      new (&value_) T(o.value_);
    } else {
      error_ = o.error_;
    }
  }
  Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : has_(o.has_) {
    if (has_) {
      new (&value_) T(std::move(o.value_));
    } else {
      error_ = o.error_;
    }
  }
  Result& operator=(Result o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    destroy();
    has_ = o.has_;
    if (has_) {
      new (&value_) T(std::move(o.value_));
    } else {
      error_ = o.error_;
    }
    return *this;
  }
  ~Result() { destroy(); }

  bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }

  T& value() & {
    check();
    return value_;
  }
  const T& value() const& {
    check();
    return value_;
  }
  T&& value() && {
    check();
    return std::move(value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const noexcept { return error_; }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_ ? value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!has_) {
      std::abort();  // value() of an error: a programming bug, never input-driven
    }
  }
  void destroy() noexcept {
    if (has_) {
      value_.~T();
    }
  }

  bool has_;
  union {
    T value_;
    Error error_;
  };
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  Result() noexcept : has_(true) {}
  Result(unexpected u) noexcept : has_(false), error_(u.error()) {}  // NOLINT

  bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }
  void value() const {
    if (!has_) {
      std::abort();
    }
  }
  const Error& error() const noexcept { return error_; }

 private:
  bool has_;
  Error error_{};
};

// Shorthand for `return viopool::unexpected(make_error(...))`.
inline unexpected fail(Errc code, const char* what, int sys_errno = 0) noexcept {
  return unexpected(make_error(code, what, sys_errno));
}

}  // namespace viopool

// Propagates an error from an expression yielding Result<...>.
#define VIOPOOL_TRY(expr)                                   \
  do {                                                      \
    auto&& viopool_try_r_ = (expr);                         \
    if (!viopool_try_r_.has_value()) {                      \
      return ::viopool::unexpected(viopool_try_r_.error()); \
    }                                                       \
  } while (0)
