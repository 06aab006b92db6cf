// virtio-crypto device model: the config space follows the engine's
// capabilities, the session table caps and tracks sessions, and QEMU's
// vhost-user session messages parse in both layouts.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <vector>

#include "vhost-backend/devices/crypto/crypto_device.h"
#include "vhost-backend/devices/crypto/crypto_request.h"

using namespace viopool::crypto;

BOOST_AUTO_TEST_SUITE(crypto_device)

BOOST_AUTO_TEST_CASE(config_space_advertises_exactly_the_engine) {
  CryptoCapabilities caps;
  caps.cipher[kCipherAesCbc] = AlgoCaps{{16, 32, 8}, {}, {16, 16, 0}, {}, 16};
  caps.mac[kMacCmacAes] = AlgoCaps{{16, 16, 0}, {4, 16, 4}, {}, {}, 1};
  caps.aead[kAeadGcm] = AlgoCaps{{16, 32, 8}, {8, 16, 4}, {12, 12, 0}, {0, 240, 1}, 1};
  const Config c = make_config(CryptoDeviceOptions{4, true}, caps);
  BOOST_TEST(c.status == kConfigStatusHwReady);
  BOOST_TEST(c.max_dataqueues == 4u);
  BOOST_TEST(c.crypto_services ==
             ((1u << kServiceCipher) | (1u << kServiceMac) | (1u << kServiceAead)));
  BOOST_TEST(c.cipher_algo_l == (1u << kCipherAesCbc));
  BOOST_TEST(c.hash_algo == 0u);
  BOOST_TEST(c.mac_algo_l == (1u << kMacCmacAes));
  BOOST_TEST(c.mac_algo_h == 0u);
  BOOST_TEST(c.aead_algo == (1u << kAeadGcm));
  BOOST_TEST(c.max_cipher_key_len == 32u);
  BOOST_TEST(c.max_auth_key_len == 16u);
  BOOST_TEST(c.max_size == kMaxRequestBytes);
  const auto raw = config_space(c);
  std::uint32_t services = 0;
  std::memcpy(&services, raw.data() + 8, 4);
  BOOST_TEST(services == c.crypto_services);
}

BOOST_AUTO_TEST_CASE(session_table_caps_and_defers_destroy_while_in_use) {
  SessionTable t(2);
  int a = 0;
  int b = 0;
  SessionInfo ia{{}, &a};
  SessionInfo ib{{}, &b};
  std::uint64_t id1 = 0;
  std::uint64_t id2 = 0;
  std::uint64_t id3 = 0;
  BOOST_TEST(t.insert(ia, id1) == kStatusOk);
  BOOST_TEST(t.insert(ib, id2) == kStatusOk);
  BOOST_TEST(t.insert(ia, id3) == kStatusNoSpc);
  BOOST_TEST(id1 != 0u);
  BOOST_TEST(id1 != id2);
  auto* e = t.acquire(id1);
  BOOST_REQUIRE(e != nullptr);
  BackendSession now = nullptr;
  BOOST_TEST(t.close(id1, now) == kStatusOk);
  BOOST_TEST(now == nullptr);             // still in use
  BOOST_TEST(t.acquire(id1) == nullptr);  // but no new requests
  BOOST_TEST(t.close(id1, now) == kStatusInvSess);
  BOOST_TEST(t.release(e) == static_cast<BackendSession>(&a));  // last user destroys
  BOOST_TEST(t.active() == 1u);
  // The slot is reused with a new id: the old one stays invalid.
  BOOST_TEST(t.insert(ia, id3) == kStatusOk);
  BOOST_TEST(id3 != id1);
  BOOST_TEST(t.acquire(id1) == nullptr);
  BOOST_TEST(t.close(0, now) == kStatusInvSess);
  BOOST_TEST(t.close(~0ull, now) == kStatusInvSess);
  BOOST_TEST(t.clear().size() == 2u);
  BOOST_TEST(t.active() == 0u);
}

BOOST_AUTO_TEST_CASE(session_table_bursts_count_every_reference) {
  SessionTable t(2);
  int a = 0;
  int b = 0;
  std::uint64_t id1 = 0;
  std::uint64_t id2 = 0;
  BOOST_TEST(t.insert(SessionInfo{{}, &a}, id1) == kStatusOk);
  BOOST_TEST(t.insert(SessionInfo{{}, &b}, id2) == kStatusOk);
  // A burst with the same session twice, an unknown id and the other session.
  const std::uint64_t ids[] = {id1, id1, 12345, id2};
  SessionTable::Entry* es[4] = {};
  t.acquire_burst(ids, es, 4);
  BOOST_TEST(es[0] != nullptr);
  BOOST_TEST(es[0] == es[1]);
  BOOST_TEST(es[2] == nullptr);
  BOOST_TEST(es[3] != nullptr);
  BOOST_TEST(es[0]->refs == 2u);
  // Both close while the burst holds them: neither is destroyed yet.
  BackendSession now = nullptr;
  BOOST_TEST(t.close(id1, now) == kStatusOk);
  BOOST_TEST(now == nullptr);
  BOOST_TEST(t.close(id2, now) == kStatusOk);
  BOOST_TEST(now == nullptr);
  // Releasing the first reference of id1 destroys nothing; the burst that
  // drops the last ones (the null entry skipped) hands both back.
  BackendSession dead[4] = {};
  BOOST_TEST(t.release_burst(es, 1, dead) == 0u);
  BOOST_TEST(t.release_burst(es + 1, 3, dead) == 2u);
  BOOST_TEST(dead[0] == static_cast<BackendSession>(&a));
  BOOST_TEST(dead[1] == static_cast<BackendSession>(&b));
  BOOST_TEST(t.active() == 0u);
}

namespace {

std::vector<std::uint8_t> qemu_session(bool old_layout, std::uint8_t op_type,
                                       std::uint8_t hash_mode) {
  std::vector<std::uint8_t> p(kVhostSessionBytes, 0);
  const std::size_t b = old_layout ? 12 : 8;
  auto put32 = [&](std::size_t off, std::uint32_t v) { std::memcpy(p.data() + off, &v, 4); };
  if (old_layout) {
    put32(8, 2);  // op_code (ignored)
  }
  put32(b, kCipherAesCbc);
  put32(b + 4, 16);
  put32(b + 8, kMacHmacSha1);
  put32(b + 12, 20);
  put32(b + 16, 20);
  p[b + 24] = op_type;
  p[b + 25] = kDirDecrypt;
  p[b + 26] = hash_mode;
  p[b + 27] = kChainHashThenCipher;
  std::memset(p.data() + kVhostSessionCipherKeyOffset, 0x5a, 16);
  std::memset(p.data() + kVhostSessionAuthKeyOffset, 0xa5, 20);
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(vhost_user_session_message_in_both_layouts) {
  for (bool old_layout : {false, true}) {
    SessionParams p;
    const char* why = "";
    auto cipher = qemu_session(old_layout, kSymOpCipher, 0);
    BOOST_TEST(parse_vhost_user_session(cipher.data(), cipher.size(), p, why) == kStatusOk);
    BOOST_TEST(static_cast<int>(p.kind) == static_cast<int>(SessionKind::kCipher));
    BOOST_TEST(p.cipher_algo == kCipherAesCbc);
    BOOST_TEST(!p.encrypt);
    BOOST_TEST(p.key_len == 16u);
    BOOST_TEST(p.key[0] == 0x5a);
    BOOST_TEST(p.iv_len == 16u);
    auto chain = qemu_session(old_layout, kSymOpChain, kHashModeAuth);
    BOOST_TEST(parse_vhost_user_session(chain.data(), chain.size(), p, why) == kStatusOk);
    BOOST_TEST(static_cast<int>(p.kind) == static_cast<int>(SessionKind::kChain));
    BOOST_TEST(!p.cipher_first);
    BOOST_TEST(p.auth_is_mac);
    BOOST_TEST(p.auth_algo == kMacHmacSha1);
    BOOST_TEST(p.digest_len == 20u);
    BOOST_TEST(p.auth_key_len == 20u);
    BOOST_TEST(p.auth_key[19] == 0xa5);
    auto nested = qemu_session(old_layout, kSymOpChain, kHashModeNested);
    BOOST_TEST(parse_vhost_user_session(nested.data(), nested.size(), p, why) == kStatusNotSupp);
  }
  SessionParams p;
  const char* why = "";
  auto bad = qemu_session(false, kSymOpCipher, 0);
  bad[8 + 4] = 200;  // key_len beyond 64
  BOOST_TEST(parse_vhost_user_session(bad.data(), bad.size(), p, why) == kStatusBadMsg);
  BOOST_TEST(parse_vhost_user_session(bad.data(), 100, p, why) == kStatusBadMsg);
}

BOOST_AUTO_TEST_SUITE_END()
