// Frame tags (docs/fabric.md "Authentication") through OpenSSL: SipHash-2-4-128
// for short frames, GHASH then AES for longer ones.
#include "pool-manager/protocol/frame_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/modes.h>
#include <openssl/provider.h>
#include <openssl/params.h>

#include <cstring>

#include "pool-manager/protocol/fabric_codec.h"

namespace viopool::pool {
namespace {

// No frame exceeds an IP datagram (and EVP takes int lengths).
constexpr std::size_t kMaxFrameBytes = 65536;
// The fixed GCM IV of long frames' tags (docs/fabric.md "Authentication").
constexpr unsigned char kGcmIv[12] = {};

// Our own reference to OpenSSL's default provider, taken when the program
// starts and never dropped: DPDK's crypto_openssl loads the providers when an
// instance is made and unloads them when it is removed, which would
// otherwise leave no provider (so no SipHash) for every frame after it.
OSSL_PROVIDER* const g_default_provider = OSSL_PROVIDER_load(nullptr, "default");

// AES-128 under K_g, as the block function of OpenSSL's GCM mode: it runs
// once when the context is made (H) and once per tag, on the fixed IV's
// counter block, whose image it keeps. Its failure, which its signature
// cannot return, is kept for tag_of() to see.
struct GcmBlock {
  EVP_CIPHER_CTX* ecb = nullptr;
  bool failed = false;
  bool have_last = false;
  unsigned char last_in[16]{};
  unsigned char last_out[16]{};
};

void gcm_block(const unsigned char in[16], unsigned char out[16], const void* key) {
  auto* b = static_cast<GcmBlock*>(const_cast<void*>(key));
  // The input is public (a zero block or the fixed IV's counter block).
  if (b->have_last && std::memcmp(in, b->last_in, 16) == 0) {
    std::memcpy(out, b->last_out, 16);
    return;
  }
  unsigned char block[16];  // `out` may be `in` (OpenSSL makes H in place)
  std::memcpy(block, in, 16);
  int len = 0;
  if (EVP_EncryptUpdate(b->ecb, out, &len, block, 16) != 1 || len != 16) {
    b->failed = true;
    return;
  }
  std::memcpy(b->last_in, block, 16);
  std::memcpy(b->last_out, out, 16);
  b->have_last = true;
}

}  // namespace

struct FrameAuthenticator::Impl {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* sip = nullptr;  // SipHash-2-4-128, key K_s
  // GCM's GHASH under K_g with the fixed IV, through OpenSSL's mode layer:
  // the EVP cipher interface costs twice as much per tag in parameter
  // handling as the hashing itself does on a 1 KiB frame.
  GcmBlock gcm_block;             // AES-128-ECB, key K_g
  GCM128_CONTEXT* gcm = nullptr;
  EVP_CIPHER_CTX* prp = nullptr;  // AES-128-ECB, key K_p
  AuthKey k_s{};
  ~Impl() {
    OPENSSL_cleanse(k_s.data(), k_s.size());
    if (gcm != nullptr) {
      CRYPTO_gcm128_release(gcm);  // cleanses the context
    }
    EVP_CIPHER_CTX_free(gcm_block.ecb);
    OPENSSL_cleanse(gcm_block.last_in, sizeof(gcm_block.last_in));
    OPENSSL_cleanse(gcm_block.last_out, sizeof(gcm_block.last_out));
    EVP_CIPHER_CTX_free(prp);
    EVP_MAC_CTX_free(sip);
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
  a->impl_ = std::make_unique<Impl>();
  Impl& m = *a->impl_;
  // The three subkeys: AES-128 under the lease key of the blocks 01 00..00,
  // 02 00..00 and 03 00..00 (K_s, K_g, K_p).
  AuthKey sub[3]{};
  struct Cleanse {
    AuthKey* k;
    ~Cleanse() { OPENSSL_cleanse(k, 3 * sizeof(AuthKey)); }
  } cleanse{sub};
  {
    EVP_CIPHER_CTX* ecb = EVP_CIPHER_CTX_new();
    unsigned char in[3 * kAuthKeyBytes] = {};
    unsigned char out[3 * kAuthKeyBytes + 16];
    in[0] = 1;
    in[kAuthKeyBytes] = 2;
    in[2 * kAuthKeyBytes] = 3;
    int len = 0;
    const bool ok = ecb != nullptr &&
                    EVP_EncryptInit_ex(ecb, EVP_aes_128_ecb(), nullptr, key.data(), nullptr) == 1 &&
                    EVP_CIPHER_CTX_set_padding(ecb, 0) == 1 &&
                    EVP_EncryptUpdate(ecb, out, &len, in, sizeof(in)) == 1 && len == sizeof(in);
    EVP_CIPHER_CTX_free(ecb);
    if (!ok) {
      return fail(Errc::kUnsupported, "fabric: OpenSSL has no AES-128");
    }
    for (int i = 0; i < 3; ++i) {
      std::memcpy(sub[i].data(), out + i * kAuthKeyBytes, kAuthKeyBytes);
    }
    OPENSSL_cleanse(out, sizeof(out));
  }
  m.k_s = sub[0];
  m.mac = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
  if (m.mac == nullptr) {
    return fail(Errc::kUnsupported, "fabric: OpenSSL has no SipHash");
  }
  m.sip = EVP_MAC_CTX_new(m.mac);
  m.gcm_block.ecb = EVP_CIPHER_CTX_new();
  m.prp = EVP_CIPHER_CTX_new();
  if (m.sip == nullptr || m.gcm_block.ecb == nullptr || m.prp == nullptr) {
    return fail(Errc::kResourceExhausted, "fabric: cannot create MAC contexts");
  }
  std::size_t size = kAuthBytes;
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                               OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(m.sip, params) != 1 ||
      EVP_EncryptInit_ex(m.gcm_block.ecb, EVP_aes_128_ecb(), nullptr, sub[1].data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(m.gcm_block.ecb, 0) != 1 ||
      EVP_EncryptInit_ex(m.prp, EVP_aes_128_ecb(), nullptr, sub[2].data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(m.prp, 0) != 1) {
    return fail(Errc::kUnsupported, "fabric: OpenSSL refuses the MAC set-up");
  }
  m.gcm = CRYPTO_gcm128_new(&m.gcm_block, gcm_block);
  if (m.gcm == nullptr || m.gcm_block.failed) {
    return fail(Errc::kUnsupported, "fabric: OpenSSL refuses the MAC set-up");
  }
  return a;
}

FrameAuthenticator::~FrameAuthenticator() = default;

Result<void> FrameAuthenticator::tag_of(std::span<const std::byte> frame,
                                        std::uint8_t* out) noexcept {
  if (frame.size() < kHeaderBytes) {
    return fail(Errc::kInvalidArgument, "fabric: frame shorter than its header");
  }
  if (frame.size() > kMaxFrameBytes) {
    return fail(Errc::kInvalidArgument, "fabric: frame longer than a datagram");
  }
  // The header with its auth field zeroed, then the payload.
  static_assert(kAuthOffset + kAuthBytes == kHeaderBytes);
  unsigned char head[kHeaderBytes];
  std::memcpy(head, frame.data(), kAuthOffset);
  std::memset(head + kAuthOffset, 0, kAuthBytes);
  const auto* body = reinterpret_cast<const unsigned char*>(frame.data()) + kHeaderBytes;
  const std::size_t body_len = frame.size() - kHeaderBytes;
  Impl& m = *impl_;
  if (frame.size() <= kShortFrameBytes) {
    std::size_t got = 0;
    if (EVP_MAC_init(m.sip, m.k_s.data(), m.k_s.size(), nullptr) != 1 ||
        EVP_MAC_update(m.sip, head, kHeaderBytes) != 1 ||
        EVP_MAC_update(m.sip, body, body_len) != 1 ||
        EVP_MAC_final(m.sip, out, &got, kAuthBytes) != 1 || got != kAuthBytes) {
      return fail(Errc::kInternal, "fabric: SipHash failed");
    }
    return {};
  }
  // GHASH of the frame (as GCM's AAD under the fixed IV; nothing is
  // encrypted), then that tag through AES under K_p.
  unsigned char ghash[kAuthBytes];
  int len = 0;
  m.gcm_block.failed = false;  // this tag's own failure only
  CRYPTO_gcm128_setiv(m.gcm, kGcmIv, sizeof(kGcmIv));
  const bool ok = CRYPTO_gcm128_aad(m.gcm, head, kHeaderBytes) == 0 &&
                  CRYPTO_gcm128_aad(m.gcm, body, body_len) == 0;
  CRYPTO_gcm128_tag(m.gcm, ghash, kAuthBytes);
  if (!ok || m.gcm_block.failed ||
      EVP_EncryptUpdate(m.prp, out, &len, ghash, kAuthBytes) != 1 || len != kAuthBytes) {
    return fail(Errc::kInternal, "fabric: frame MAC failed");
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
