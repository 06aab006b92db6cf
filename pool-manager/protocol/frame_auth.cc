// SipHash-2-4-128 frame tags through OpenSSL's EVP_MAC.
#include "pool-manager/protocol/frame_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/params.h>

#include <cstring>

#include "pool-manager/protocol/fabric_codec.h"

namespace viopool::pool {
namespace {

// Our own reference to OpenSSL's default provider, taken when the program
// starts and never dropped: DPDK's crypto_openssl loads the providers when an
// instance is made and unloads them when it is removed, which would
// otherwise leave no provider (so no SipHash) for every frame after it.
OSSL_PROVIDER* const g_default_provider = OSSL_PROVIDER_load(nullptr, "default");

}  // namespace

struct FrameAuthenticator::Impl {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;
  ~Impl() {
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
};

Result<AuthKey> parse_auth_key(std::string_view hex) {
  if (hex.size() != 2 * kAuthKeyBytes) {
    return fail(Errc::kInvalidArgument, "fabric key: expected 32 hex digits");
  }
  AuthKey k{};
  for (std::size_t i = 0; i < hex.size(); ++i) {
    const char c = hex[i];
    int v = -1;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    }
    if (v < 0) {
      return fail(Errc::kInvalidArgument, "fabric key: expected 32 hex digits");
    }
    k[i / 2] = static_cast<std::uint8_t>(k[i / 2] << 4 | v);
  }
  return k;
}

Result<std::unique_ptr<FrameAuthenticator>> FrameAuthenticator::create(const AuthKey& key) {
  std::unique_ptr<FrameAuthenticator> a(new FrameAuthenticator());
  a->key_ = key;
  a->impl_ = std::make_unique<Impl>();
  a->impl_->mac = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
  if (a->impl_->mac == nullptr) {
    return fail(Errc::kUnsupported, "fabric: OpenSSL has no SipHash");
  }
  a->impl_->ctx = EVP_MAC_CTX_new(a->impl_->mac);
  if (a->impl_->ctx == nullptr) {
    return fail(Errc::kResourceExhausted, "fabric: cannot create a MAC context");
  }
  return a;
}

FrameAuthenticator::~FrameAuthenticator() = default;

Result<void> FrameAuthenticator::tag_of(std::span<const std::byte> frame,
                                        std::uint8_t* out) noexcept {
  if (frame.size() < kHeaderBytes) {
    return fail(Errc::kInvalidArgument, "fabric: frame shorter than its header");
  }
  std::size_t size = kAuthBytes;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                         OSSL_PARAM_construct_end()};
  static const std::uint8_t kZero[kAuthBytes] = {};
  const auto* p = reinterpret_cast<const unsigned char*>(frame.data());
  std::size_t got = 0;
  if (EVP_MAC_init(impl_->ctx, key_.data(), key_.size(), params) != 1 ||
      EVP_MAC_update(impl_->ctx, p, kAuthOffset) != 1 ||
      EVP_MAC_update(impl_->ctx, kZero, kAuthBytes) != 1 ||
      EVP_MAC_update(impl_->ctx, p + kAuthOffset + kAuthBytes,
                     frame.size() - kAuthOffset - kAuthBytes) != 1 ||
      EVP_MAC_final(impl_->ctx, out, &got, kAuthBytes) != 1 || got != kAuthBytes) {
    return fail(Errc::kInternal, "fabric: SipHash failed");
  }
  return {};
}

Result<void> FrameAuthenticator::sign(std::span<std::byte> frame) noexcept {
  std::uint8_t tag[kAuthBytes];
  VIOPOOL_TRY(tag_of(frame, tag));
  std::memcpy(frame.data() + kAuthOffset, tag, kAuthBytes);
  return {};
}

bool FrameAuthenticator::verify(std::span<const std::byte> frame) noexcept {
  std::uint8_t tag[kAuthBytes];
  if (!tag_of(frame, tag)) {
    return false;
  }
  return CRYPTO_memcmp(tag, frame.data() + kAuthOffset, kAuthBytes) == 0;
}

}  // namespace viopool::pool
