// viopool-host serving virtio-crypto to our vhost-user frontend: the whole
// path (control queue, data queues, cryptodev) checked with known-answer
// vectors (NIST SP 800-38A/38D, RFC 4231, FIPS 180) and against OpenSSL on
// random inputs; malformed requests get the right status and cost nothing to
// other sessions; the session cap holds; several data queues run at once.
#include <openssl/evp.h>
#include <unistd.h>
#include <csignal>
#include <openssl/hmac.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "integration/frontend/crypto_driver.h"
#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using namespace viopool;
using namespace viopool::frontend;
using namespace viopool::testing;
using namespace std::chrono_literals;
using nlohmann::json;
using Bytes = std::vector<std::byte>;

namespace {

Bytes hex(std::string_view h) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}
Bytes text(std::string_view s) {
  Bytes out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}
Bytes cat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}
std::string to_hex(const Bytes& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s += d[static_cast<unsigned>(x) >> 4];
    s += d[static_cast<unsigned>(x) & 15];
  }
  return s;
}
Bytes random_bytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) {
    x = static_cast<std::byte>(rng());
  }
  return b;
}

// ---- OpenSSL references ----
const EVP_CIPHER* evp_cipher(std::uint32_t algo, std::size_t key_len) {
  if (algo == crypto::kCipherAesCbc) {
    return key_len == 16   ? EVP_aes_128_cbc()
           : key_len == 24 ? EVP_aes_192_cbc()
                           : EVP_aes_256_cbc();
  }
  return key_len == 16 ? EVP_aes_128_ctr() : key_len == 24 ? EVP_aes_192_ctr() : EVP_aes_256_ctr();
}
Bytes ossl_cipher(std::uint32_t algo, const Bytes& key, const Bytes& iv, const Bytes& in,
                  bool enc) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  EVP_CipherInit_ex(c, evp_cipher(algo, key.size()), nullptr,
                    reinterpret_cast<const unsigned char*>(key.data()),
                    reinterpret_cast<const unsigned char*>(iv.data()), enc ? 1 : 0);
  EVP_CIPHER_CTX_set_padding(c, 0);
  Bytes out(in.size() + 32);
  int n = 0;
  int m = 0;
  EVP_CipherUpdate(c, reinterpret_cast<unsigned char*>(out.data()), &n,
                   reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  EVP_CipherFinal_ex(c, reinterpret_cast<unsigned char*>(out.data()) + n, &m);
  EVP_CIPHER_CTX_free(c);
  out.resize(static_cast<std::size_t>(n + m));
  return out;
}
// Ciphertext || tag.
Bytes ossl_gcm_encrypt(const Bytes& key, const Bytes& iv, const Bytes& aad, const Bytes& pt,
                       std::size_t tag_len) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(c, key.size() == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), nullptr, nullptr,
                     nullptr);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr);
  EVP_EncryptInit_ex(c, nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                     reinterpret_cast<const unsigned char*>(iv.data()));
  int n = 0;
  if (!aad.empty()) {
    EVP_EncryptUpdate(c, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                      static_cast<int>(aad.size()));
  }
  Bytes out(pt.size() + tag_len);
  EVP_EncryptUpdate(c, reinterpret_cast<unsigned char*>(out.data()), &n,
                    reinterpret_cast<const unsigned char*>(pt.data()), static_cast<int>(pt.size()));
  int m = 0;
  EVP_EncryptFinal_ex(c, reinterpret_cast<unsigned char*>(out.data()) + n, &m);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_len), out.data() + pt.size());
  EVP_CIPHER_CTX_free(c);
  return out;
}
Bytes ossl_hmac_sha256(const Bytes& key, const Bytes& data) {
  unsigned char md[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  Bytes out(len);
  std::memcpy(out.data(), md, len);
  return out;
}
Bytes ossl_sha256(const Bytes& data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  Bytes out(len);
  std::memcpy(out.data(), md, len);
  return out;
}

// ---- Fixture: viopool-host with one crypto device per engine ----
struct Engine {
  const char* label;
  const char* devargs;
  bool cpu_crypto = true;  // the backend's "cpu_crypto" (aesni_mb has the API, openssl not)
};
std::ostream& operator<<(std::ostream& os, const Engine& e) { return os << e.label; }
// "pool:<driver>": a crypto slot on viopool-appliance (loopback UDP), an
// instance of that driver, leased by viopool-host: the same checks through
// the fabric.
const Engine kEngines[] = {{"aesni_mb", "crypto_aesni_mb_t0"},
                           {"aesni_mb queue pairs", "crypto_aesni_mb_t6", false},
                           {"openssl", "crypto_openssl_t0"},
                           {"pooled openssl", "pool:crypto_openssl"}};

struct CryptoHost {
  // `timeout_ms`: a pooled backend's deadline per op (0: its default).
  explicit CryptoHost(const char* devargs, unsigned queues = 2, unsigned max_sessions = 64,
                      bool cpu_crypto = true, unsigned timeout_ms = 0) {
    json backend = {{"devargs", devargs}, {"max_sessions", max_sessions}};
    if (!cpu_crypto) {
      backend["cpu_crypto"] = false;
    }
    if (std::string(devargs).rfind("pool:", 0) == 0) {
      backend = start_pool(std::string(devargs).substr(5), queues, max_sessions);
      if (timeout_ms != 0) {
        backend["timeout_ms"] = timeout_ms;
      }
    }
    json dev = {{"name", "c0"},
                {"type", "crypto"},
                {"socket", dir.file("c0.vhost")},
                {"queues", queues},
                {"backend", backend}};
    host.emplace(dir, json{{"devices", {dev}}});
  }
  // Starts the appliance with one crypto engine, carves slot s0, and returns
  // the host's backend leasing it.
  json start_pool(const std::string& driver, unsigned queues, unsigned max_sessions) {
    const int base = 21000 + ::getpid() % 20000;
    const std::string api = "127.0.0.1:" + std::to_string(base + 1);
    json cfg = {{"listen", "127.0.0.1:" + std::to_string(base)},
                {"api", api},
                {"state", dir.file("appliance.db")},
                {"inventory",
                 {{{"name", "eng"}, {"kind", "crypto"}, {"driver", driver}, {"slots", 2}}}}};
    write_file(dir.file("appliance.json"), cfg.dump());
    appliance.emplace(std::vector<std::string>{build_path("pool-manager/appliance/viopool-appliance"),
                                               "--config", dir.file("appliance.json"), "--no-huge"},
                      SpawnOptions{dir.file("appliance.log")});
    BOOST_REQUIRE_MESSAGE(
        wait_until([&] { return appliance->log().find("control API listening") != std::string::npos; },
                   std::chrono::seconds(20)),
        "viopool-appliance did not start:\n" << appliance->log());
    BOOST_REQUIRE(run_shell(build_path("integration/viopoolctl/viopoolctl") + " -a " + api +
                            " pool carve-crypto s0 --device eng --queues " +
                            std::to_string(queues) + " --max-sessions " +
                            std::to_string(max_sessions) + " > " + dir.file("carve.out")) == 0);
    return json{{"kind", "pool"}, {"appliance", api}, {"slot", "s0"}, {"max_sessions", max_sessions}};
  }
  std::unique_ptr<CryptoDriver> connect(std::uint16_t queues = 1,
                                        RingLayout layout = RingLayout::kSplit) {
    CryptoDriverOptions o;
    o.socket_path = dir.file("c0.vhost");
    o.num_queues = queues;
    o.ring_layout = layout;
    o.arena.size = 32 << 20;
    std::string why;
    auto d = CryptoDriver::connect(o, &why);
    BOOST_REQUIRE_MESSAGE(d.has_value(), why);
    return std::move(*d);
  }
  TempDir dir;
  std::optional<Process> appliance;  // stopped after the host (declared first)
  std::optional<HostProc> host;
};

std::uint64_t create_ok(CryptoDriver& d, const CryptoSessionSpec& s) {
  auto r = d.create_session(s);
  BOOST_REQUIRE(r.has_value());
  BOOST_REQUIRE_MESSAGE(r->status == crypto::kStatusOk,
                        "create_session: " << crypto_status_name(r->status));
  return r->session_id;
}

CryptoResult run(CryptoDriver& d, std::uint16_t q, const CryptoOp& op, const Bytes& src,
                 std::uint32_t dst_len) {
  auto r = d.execute(q, op, src, dst_len);
  BOOST_REQUIRE_MESSAGE(r.has_value(), "execute failed");
  return std::move(*r);
}

CryptoOp cipher_op(std::uint64_t sid, bool enc, const Bytes& iv, std::uint32_t algo) {
  CryptoOp op;
  op.opcode = enc ? crypto::kOpCipherEncrypt : crypto::kOpCipherDecrypt;
  op.algo = algo;
  op.session_id = sid;
  op.op_type = crypto::kSymOpCipher;
  op.iv = iv;
  return op;
}

// NIST SP 800-38A F.2.1 / F.5.1 (AES-128).
const Bytes kAesKey = hex("2b7e151628aed2a6abf7158809cf4f3c");
const Bytes kPlain =
    hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
const Bytes kCbcIv = hex("000102030405060708090a0b0c0d0e0f");
const Bytes kCbcCipher =
    hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
const Bytes kCtrIv = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
const Bytes kCtrCipher =
    hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
        "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
// GCM specification test case 4 (in SP 800-38D's validation set).
const Bytes kGcmKey = hex("feffe9928665731c6d6a8f9467308308");
const Bytes kGcmIv = hex("cafebabefacedbaddecaf888");
const Bytes kGcmAad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
const Bytes kGcmPlain =
    hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
const Bytes kGcmCipher =
    hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091");
const Bytes kGcmTag = hex("5bc94fbc3221a5db94fae95ae7121a47");

}  // namespace

BOOST_AUTO_TEST_SUITE(crypto_kat)

BOOST_DATA_TEST_CASE(known_answers_through_the_whole_path, boost::unit_test::data::make(kEngines),
                     e) {
  CryptoHost h(e.devargs, 2, 64, e.cpu_crypto);
  auto d = h.connect();
  const auto& cfg = d->config();
  BOOST_TEST(cfg.hw_ready());
  BOOST_TEST(cfg.max_dataqueues == 2u);
  BOOST_TEST(cfg.has_cipher(crypto::kCipherAesCbc));
  BOOST_TEST(cfg.has_aead(crypto::kAeadGcm));
  BOOST_TEST(cfg.has_mac(crypto::kMacHmacSha256));

  // AES-128-CBC both ways.
  auto enc = create_ok(
      *d, CryptoSessionSpec::make_cipher(crypto::kCipherAesCbc, kAesKey, crypto::kDirEncrypt));
  auto dec = create_ok(
      *d, CryptoSessionSpec::make_cipher(crypto::kCipherAesCbc, kAesKey, crypto::kDirDecrypt));
  auto r = run(*d, 0, cipher_op(enc, true, kCbcIv, crypto::kCipherAesCbc), kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.dst) == to_hex(kCbcCipher));
  r = run(*d, 0, cipher_op(dec, false, kCbcIv, crypto::kCipherAesCbc), kCbcCipher, 64);
  BOOST_TEST(to_hex(r.dst) == to_hex(kPlain));

  // AES-128-CTR.
  auto ctr = create_ok(
      *d, CryptoSessionSpec::make_cipher(crypto::kCipherAesCtr, kAesKey, crypto::kDirEncrypt));
  r = run(*d, 0, cipher_op(ctr, true, kCtrIv, crypto::kCipherAesCtr), kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.dst) == to_hex(kCtrCipher));

  // AES-128-GCM: ciphertext then tag in dst; decrypt verifies the tag.
  auto genc = create_ok(
      *d, CryptoSessionSpec::make_aead(crypto::kAeadGcm, kGcmKey, 16, 20, crypto::kDirEncrypt));
  CryptoOp g;
  g.opcode = crypto::kOpAeadEncrypt;
  g.algo = crypto::kAeadGcm;
  g.session_id = genc;
  g.iv = kGcmIv;
  g.aad = kGcmAad;
  r = run(*d, 0, g, kGcmPlain, 60 + 16);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.dst) == to_hex(cat(kGcmCipher, kGcmTag)));
  auto gdec = create_ok(
      *d, CryptoSessionSpec::make_aead(crypto::kAeadGcm, kGcmKey, 16, 20, crypto::kDirDecrypt));
  g.opcode = crypto::kOpAeadDecrypt;
  g.session_id = gdec;
  r = run(*d, 0, g, cat(kGcmCipher, kGcmTag), 60);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.dst) == to_hex(kGcmPlain));
  Bytes forged = cat(kGcmCipher, kGcmTag);
  forged.back() ^= std::byte{1};
  r = run(*d, 0, g, forged, 60);
  BOOST_TEST(r.status == crypto::kStatusBadMsg);

  // HMAC-SHA256, RFC 4231 test case 2.
  const Bytes jefe = text("Jefe");
  auto mac = create_ok(*d, CryptoSessionSpec::make_mac(crypto::kMacHmacSha256, 32, jefe));
  CryptoOp m;
  m.opcode = crypto::kOpMac;
  m.algo = crypto::kMacHmacSha256;
  m.session_id = mac;
  m.hash_result_len = 32;
  r = run(*d, 0, m, text("what do ya want for nothing?"), 0);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.hash_result) ==
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

  // SHA-256, FIPS 180-2 "abc".
  auto sha = create_ok(*d, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
  CryptoOp s;
  s.opcode = crypto::kOpHash;
  s.algo = crypto::kHashSha256;
  s.session_id = sha;
  s.hash_result_len = 32;
  r = run(*d, 0, s, text("abc"), 0);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.hash_result) ==
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  auto st = h.host->stats("c0");
  BOOST_TEST(st["total"].value("cipher_ops", 0ull) == 3u);
  BOOST_TEST(st["total"].value("aead_ops", 0ull) == 3u);
  BOOST_TEST(st["total"].value("auth_failures", 0ull) == 1u);
  BOOST_TEST(st["sessions"].value("active", 0ull) == 7u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(crypto_random)

Bytes concat(std::initializer_list<const Bytes*> parts) {
  Bytes out;
  for (const Bytes* p : parts) {
    out.insert(out.end(), p->begin(), p->end());
  }
  return out;
}

// GCM requests whose fields lie in guest buffers cut every way a driver may
// cut them: each field in its own buffer (what the CPU crypto path takes),
// AAD and tag split in two, the data split, and buffers shared by the end of
// one field and the start of the next. Every engine and path gathers and
// scatters them to what OpenSSL computes, and a tag split in two still
// verifies (or fails to) on decryption.
BOOST_DATA_TEST_CASE(gcm_fields_cut_across_buffers_match_openssl,
                     boost::unit_test::data::make(kEngines), e) {
  CryptoHost h(e.devargs, 2, 64, e.cpu_crypto);
  auto d = h.connect();
  std::mt19937_64 rng(20261125);
  const Bytes key = random_bytes(rng, 16);
  auto enc = create_ok(
      *d, CryptoSessionSpec::make_aead(crypto::kAeadGcm, key, 16, 20, crypto::kDirEncrypt));
  auto dec = create_ok(
      *d, CryptoSessionSpec::make_aead(crypto::kAeadGcm, key, 16, 20, crypto::kDirDecrypt));
  for (int layout = 0; layout < 5; ++layout) {
    const Bytes iv = random_bytes(rng, 12);
    const Bytes aad = random_bytes(rng, 20);
    const Bytes pt = random_bytes(rng, 100 + rng() % 1400);
    const Bytes ct_tag = ossl_gcm_encrypt(key, iv, aad, pt, 16);
    const std::size_t n = pt.size();
    // Readable stream iv | data | aad, writable stream data | tag (encrypt)
    // or data (decrypt); the cuts are offsets into each stream.
    std::vector<std::size_t> rcuts;
    std::vector<std::size_t> wcuts;
    switch (layout) {
      case 0: rcuts = {12, 12 + n}; wcuts = {n}; break;            // one buffer per field
      case 1: rcuts = {12, 12 + n, 12 + n + 7}; wcuts = {n, n + 9}; break;  // aad, tag in two
      case 2: rcuts = {12, 12 + n / 2, 12 + n}; wcuts = {n / 3, n}; break;  // data in two
      case 3: rcuts = {5, 12 + n - 3}; wcuts = {n - 1}; break;      // buffers shared by fields
      default: rcuts = {}; wcuts = {}; break;                        // one buffer per direction
    }
    auto cut_at = [](const Bytes& stream, const std::vector<std::size_t>& at) {
      std::vector<Bytes> out;
      std::size_t from = 0;
      for (std::size_t c : at) {
        if (c > from && c < stream.size()) {
          out.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(from),
                           stream.begin() + static_cast<std::ptrdiff_t>(c));
          from = c;
        }
      }
      out.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(from), stream.end());
      return out;
    };
    auto lens_of = [](const std::vector<Bytes>& parts) {
      std::vector<std::uint32_t> l;
      for (const auto& p : parts) {
        l.push_back(static_cast<std::uint32_t>(p.size()));
      }
      return l;
    };
    auto exec = [&](std::uint64_t sid, bool encrypt, const Bytes& data, const Bytes& out_stream) {
      CryptoOp op;
      op.opcode = encrypt ? crypto::kOpAeadEncrypt : crypto::kOpAeadDecrypt;
      op.algo = crypto::kAeadGcm;
      op.session_id = sid;
      op.iv = iv;
      op.aad = aad;
      const auto dst_len = static_cast<std::uint32_t>(encrypt ? n + 16 : n);
      const crypto::DataRequest hdr =
          encode_data_request(op, static_cast<std::uint32_t>(data.size()), dst_len);
      const auto readable = cut_at(concat({&iv, &data, &aad}), rcuts);
      const auto writable = lens_of(cut_at(out_stream, wcuts));
      std::vector<std::span<const std::byte>> rs(readable.begin(), readable.end());
      auto r = d->execute_raw(0, std::as_bytes(std::span(&hdr, 1)), rs, writable,
                              AppendStatus::kYes);
      BOOST_REQUIRE(r.has_value());
      Bytes got;
      for (const auto& w : r->writable) {
        got.insert(got.end(), w.begin(), w.end());
      }
      return std::make_pair(r->status, got);
    };
    auto [est, eout] = exec(enc, true, pt, ct_tag);
    BOOST_TEST(est == crypto::kStatusOk, "layout " << layout);
    BOOST_TEST(to_hex(eout) == to_hex(ct_tag), "layout " << layout);
    auto [dst_, dout] = exec(dec, false, ct_tag, pt);
    BOOST_TEST(dst_ == crypto::kStatusOk, "layout " << layout);
    BOOST_TEST(to_hex(dout) == to_hex(pt), "layout " << layout);
    Bytes forged = ct_tag;
    forged.back() ^= std::byte{1};
    BOOST_TEST(exec(dec, false, forged, pt).first == crypto::kStatusBadMsg, "layout " << layout);
  }
  if (std::string(e.devargs).rfind("crypto_aesni_mb", 0) == 0) {
    // The backend was set up for the path this case is about (CPU crypto
    // API or queue pairs); layouts 0, 1 and 4 qualify for the CPU path.
    const std::string log = read_file(h.dir.file("host.log"));
    BOOST_TEST(log.find(e.cpu_crypto ? "cpu_crypto=true" : "cpu_crypto=false") !=
               std::string::npos);
  }
  const auto stats = h.host->stats("c0");
  if (std::string(e.devargs).rfind("crypto_aesni_mb", 0) == 0) {
    // Layouts 0, 1 and 4 (each field or each direction in one buffer) are
    // the CPU path's; 2 and 3 (data cut) are not.
    const auto& b = stats["backend"];
    BOOST_TEST(b.value("cpu_ops", 0ull) == (e.cpu_crypto ? 9u : 0u));
    BOOST_TEST(b.value("queue_pair_ops", 0ull) == (e.cpu_crypto ? 6u : 15u));
  }
  const auto st = stats["total"];
  BOOST_TEST(st.value("aead_ops", 0ull) == 15u);
  BOOST_TEST(st.value("auth_failures", 0ull) == 5u);
}

BOOST_AUTO_TEST_CASE(random_inputs_match_openssl) {
  CryptoHost h("crypto_aesni_mb_t1");
  auto d = h.connect();
  std::mt19937_64 rng(20261124);
  for (int round = 0; round < 24; ++round) {
    const std::size_t key_len = (round % 2) ? 32 : 16;
    const Bytes key = random_bytes(rng, key_len);
    const Bytes iv = random_bytes(rng, 16);
    const std::size_t blocks = 1 + rng() % 200;
    const Bytes pt = random_bytes(rng, blocks * 16);
    for (std::uint32_t algo : {crypto::kCipherAesCbc, crypto::kCipherAesCtr}) {
      auto enc = create_ok(*d, CryptoSessionSpec::make_cipher(algo, key, crypto::kDirEncrypt));
      auto dec = create_ok(*d, CryptoSessionSpec::make_cipher(algo, key, crypto::kDirDecrypt));
      auto r =
          run(*d, 0, cipher_op(enc, true, iv, algo), pt, static_cast<std::uint32_t>(pt.size()));
      BOOST_TEST(r.status == crypto::kStatusOk);
      BOOST_TEST(to_hex(r.dst) == to_hex(ossl_cipher(algo, key, iv, pt, true)));
      auto back =
          run(*d, 0, cipher_op(dec, false, iv, algo), r.dst, static_cast<std::uint32_t>(pt.size()));
      BOOST_TEST(to_hex(back.dst) == to_hex(pt));
      BOOST_TEST(d->destroy_session(crypto::kOpCipherDestroySession, enc).value() ==
                 crypto::kStatusOk);
      BOOST_TEST(d->destroy_session(crypto::kOpCipherDestroySession, dec).value() ==
                 crypto::kStatusOk);
    }
    // GCM with random AAD and an arbitrary length.
    const Bytes gkey = random_bytes(rng, 16);
    const Bytes giv = random_bytes(rng, 12);
    const Bytes aad = random_bytes(rng, rng() % 64);
    const Bytes gpt = random_bytes(rng, 1 + rng() % 3000);
    auto g = create_ok(*d, CryptoSessionSpec::make_aead(crypto::kAeadGcm, gkey, 16,
                                                        static_cast<std::uint32_t>(aad.size()),
                                                        crypto::kDirEncrypt));
    CryptoOp op;
    op.opcode = crypto::kOpAeadEncrypt;
    op.algo = crypto::kAeadGcm;
    op.session_id = g;
    op.iv = giv;
    op.aad = aad;
    auto r = run(*d, 0, op, gpt, static_cast<std::uint32_t>(gpt.size() + 16));
    BOOST_TEST(r.status == crypto::kStatusOk);
    BOOST_TEST(to_hex(r.dst) == to_hex(ossl_gcm_encrypt(gkey, giv, aad, gpt, 16)));
    BOOST_TEST(d->destroy_session(crypto::kOpAeadDestroySession, g).value() == crypto::kStatusOk);
    // HMAC-SHA256 and SHA-256 of random data and keys.
    const Bytes mkey = random_bytes(rng, 1 + rng() % 100);
    const Bytes data = random_bytes(rng, rng() % 5000);
    auto m = create_ok(*d, CryptoSessionSpec::make_mac(crypto::kMacHmacSha256, 32, mkey));
    CryptoOp mo;
    mo.opcode = crypto::kOpMac;
    mo.algo = crypto::kMacHmacSha256;
    mo.session_id = m;
    mo.hash_result_len = 32;
    r = run(*d, 0, mo, data, 0);
    BOOST_TEST(to_hex(r.hash_result) == to_hex(ossl_hmac_sha256(mkey, data)));
    BOOST_TEST(d->destroy_session(crypto::kOpMacDestroySession, m).value() == crypto::kStatusOk);
    auto s = create_ok(*d, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
    mo.opcode = crypto::kOpHash;
    mo.algo = crypto::kHashSha256;
    mo.session_id = s;
    r = run(*d, 0, mo, data, 0);
    BOOST_TEST(to_hex(r.hash_result) == to_hex(ossl_sha256(data)));
    BOOST_TEST(d->destroy_session(crypto::kOpHashDestroySession, s).value() == crypto::kStatusOk);
  }
  BOOST_TEST(h.host->stats("c0")["sessions"].value("active", 1ull) == 0u);
}

BOOST_AUTO_TEST_CASE(chaining_both_orders_matches_openssl) {
  CryptoHost h("crypto_openssl_t1");
  auto d = h.connect();
  std::mt19937_64 rng(7);
  const Bytes key = random_bytes(rng, 16);
  const Bytes akey = random_bytes(rng, 32);
  const Bytes iv = random_bytes(rng, 16);
  const Bytes pt = random_bytes(rng, 512);
  CipherSessionParams ce{crypto::kCipherAesCbc, key, crypto::kDirEncrypt};
  CipherSessionParams cd{crypto::kCipherAesCbc, key, crypto::kDirDecrypt};
  MacSessionParams mac{crypto::kMacHmacSha256, 32, akey};
  // Encrypt then MAC: the MAC covers the ciphertext.
  auto s1 = create_ok(*d, CryptoSessionSpec::make_chain(crypto::kChainCipherThenHash, ce, mac));
  CryptoOp op = cipher_op(s1, true, iv, crypto::kCipherAesCbc);
  op.op_type = crypto::kSymOpChain;
  op.hash_result_len = 32;
  op.len_to_cipher = 512;
  op.len_to_hash = 512;
  auto r = run(*d, 0, op, pt, 512);
  BOOST_REQUIRE(r.status == crypto::kStatusOk);
  const Bytes ct = ossl_cipher(crypto::kCipherAesCbc, key, iv, pt, true);
  BOOST_TEST(to_hex(r.dst) == to_hex(ct));
  BOOST_TEST(to_hex(r.hash_result) == to_hex(ossl_hmac_sha256(akey, ct)));
  // MAC then decrypt: the MAC covers the ciphertext it is given.
  auto s2 = create_ok(*d, CryptoSessionSpec::make_chain(crypto::kChainHashThenCipher, cd, mac));
  op = cipher_op(s2, false, iv, crypto::kCipherAesCbc);
  op.op_type = crypto::kSymOpChain;
  op.hash_result_len = 32;
  op.len_to_cipher = 512;
  op.len_to_hash = 512;
  r = run(*d, 0, op, ct, 512);
  BOOST_REQUIRE(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.dst) == to_hex(pt));
  BOOST_TEST(to_hex(r.hash_result) == to_hex(ossl_hmac_sha256(akey, ct)));
}

BOOST_AUTO_TEST_CASE(packed_rings_and_several_queues_at_once) {
  CryptoHost h("crypto_aesni_mb_t2", 2);
  auto d = h.connect(2, RingLayout::kPacked);
  const Bytes key = hex("000102030405060708090a0b0c0d0e0f");
  auto s = create_ok(
      *d, CryptoSessionSpec::make_aead(crypto::kAeadGcm, key, 16, 8, crypto::kDirEncrypt));
  // The session was served, so the device is running with what was negotiated.
  BOOST_TEST(((h.host->device("c0")["features"].value("negotiated", 0ull) >> 34) & 1u) == 1u);
  std::atomic<int> bad{0};
  auto worker = [&](std::uint16_t q) {
    std::mt19937_64 rng(q + 1);
    for (int i = 0; i < 300; ++i) {
      const Bytes iv = random_bytes(rng, 12);
      const Bytes aad = random_bytes(rng, 8);
      const Bytes pt = random_bytes(rng, 1 + rng() % 2048);
      CryptoOp op;
      op.opcode = crypto::kOpAeadEncrypt;
      op.algo = crypto::kAeadGcm;
      op.session_id = s;
      op.iv = iv;
      op.aad = aad;
      auto r = d->execute(q, op, pt, static_cast<std::uint32_t>(pt.size() + 16));
      if (!r || r->status != crypto::kStatusOk ||
          r->dst != ossl_gcm_encrypt(key, iv, aad, pt, 16)) {
        ++bad;
      }
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  BOOST_TEST(bad.load() == 0);
  auto st = h.host->stats("c0");
  for (const auto& q : st["queues"]) {
    BOOST_TEST(q.value("aead_ops", 0ull) == 300u, "queue " << q.value("queue", -1));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(crypto_bad_input)

BOOST_AUTO_TEST_CASE(malformed_requests_get_their_status_and_others_go_on) {
  CryptoHost h("crypto_aesni_mb_t3");
  auto d = h.connect();
  auto good = create_ok(
      *d, CryptoSessionSpec::make_cipher(crypto::kCipherAesCbc, kAesKey, crypto::kDirEncrypt));
  auto check_good = [&] {
    auto r = run(*d, 0, cipher_op(good, true, kCbcIv, crypto::kCipherAesCbc), kPlain, 64);
    BOOST_TEST(r.status == crypto::kStatusOk);
    BOOST_TEST(to_hex(r.dst) == to_hex(kCbcCipher));
  };
  // Sessions the engine cannot or must not take.
  auto bad_key = d->create_session(CryptoSessionSpec::make_cipher(
      crypto::kCipherAesCbc, hex("0011223344"), crypto::kDirEncrypt));
  BOOST_REQUIRE(bad_key.has_value());
  BOOST_TEST(bad_key->status == crypto::kStatusBadMsg);
  auto unsupported = d->create_session(CryptoSessionSpec::make_cipher(
      crypto::kCipherAesXts + 1, kAesKey, crypto::kDirEncrypt));  // ZUC: no engine here has it
  BOOST_TEST(unsupported->status == crypto::kStatusNotSupp);
  auto bad_digest = d->create_session(CryptoSessionSpec::make_hash(crypto::kHashSha256, 64));
  BOOST_TEST(bad_digest->status == crypto::kStatusBadMsg);
  check_good();

  // Wrong IV length, unknown session, dst too short, wrong direction.
  auto r =
      run(*d, 0, cipher_op(good, true, hex("0001020304050607"), crypto::kCipherAesCbc), kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusBadMsg);
  r = run(*d, 0, cipher_op(good + 12345, true, kCbcIv, crypto::kCipherAesCbc), kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusInvSess);
  r = run(*d, 0, cipher_op(good, true, kCbcIv, crypto::kCipherAesCbc), kPlain, 32);
  BOOST_TEST(r.status == crypto::kStatusBadMsg);
  r = run(*d, 0, cipher_op(good, false, kCbcIv, crypto::kCipherAesCbc), kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusBadMsg);
  // Not a whole number of AES blocks for CBC.
  r = run(*d, 0, cipher_op(good, true, kCbcIv, crypto::kCipherAesCbc),
          Bytes(kPlain.begin(), kPlain.end() - 3), 61);
  BOOST_TEST(r.status == crypto::kStatusBadMsg);
  // A raw request with a truncated header and one with an unknown opcode.
  crypto::DataRequest raw{};
  raw.header.opcode = 0x4242;
  const auto* rb = reinterpret_cast<const std::byte*>(&raw);
  const std::uint32_t none[] = {0};
  auto rr = d->execute_raw(0, std::span<const std::byte>(rb, 40), {}, {}, AppendStatus::kYes);
  BOOST_REQUIRE(rr.has_value());
  BOOST_TEST(rr->status == crypto::kStatusBadMsg);
  rr = d->execute_raw(0, std::span<const std::byte>(rb, sizeof(raw)), {}, {}, AppendStatus::kYes);
  BOOST_TEST(rr->status == crypto::kStatusNotSupp);
  (void)none;
  // Destroying twice: the second is INVSESS; the session is gone for data too.
  auto tmp = create_ok(*d, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
  BOOST_TEST(d->destroy_session(crypto::kOpHashDestroySession, tmp).value() == crypto::kStatusOk);
  BOOST_TEST(d->destroy_session(crypto::kOpHashDestroySession, tmp).value() ==
             crypto::kStatusInvSess);
  CryptoOp s;
  s.opcode = crypto::kOpHash;
  s.session_id = tmp;
  s.hash_result_len = 32;
  BOOST_TEST(run(*d, 0, s, text("abc"), 0).status == crypto::kStatusInvSess);
  // A hash request on a cipher session.
  s.session_id = good;
  BOOST_TEST(run(*d, 0, s, text("abc"), 0).status == crypto::kStatusInvSess);
  // A malformed control request.
  const std::byte junk[10] = {};
  const std::span<const std::byte> segs[] = {junk};
  const std::uint32_t wl[] = {16};
  auto cr = d->control_raw(segs, wl);
  BOOST_REQUIRE(cr.has_value());
  std::uint32_t st = 0;
  std::memcpy(&st, cr->writable[0].data() + 8, 4);
  BOOST_TEST(st == crypto::kStatusBadMsg);
  check_good();
  auto stats = h.host->stats("c0");
  BOOST_TEST(stats["total"].value("bad_requests", 0ull) >= 6u);
  BOOST_TEST(stats["total"].value("invalid_session", 0ull) == 3u);
  BOOST_TEST(h.host->device("c0").value("state", "") == "running");
}

BOOST_AUTO_TEST_CASE(sessions_are_capped_per_device) {
  CryptoHost h("crypto_aesni_mb_t4", 1, 4);
  auto d = h.connect();
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(create_ok(*d, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32)));
  }
  auto over = d->create_session(CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
  BOOST_REQUIRE(over.has_value());
  BOOST_TEST(over->status == crypto::kStatusNoSpc);
  // Existing sessions keep working; closing one makes room.
  CryptoOp s;
  s.opcode = crypto::kOpHash;
  s.session_id = ids[3];
  s.hash_result_len = 32;
  BOOST_TEST(run(*d, 0, s, text("abc"), 0).status == crypto::kStatusOk);
  BOOST_TEST(d->destroy_session(crypto::kOpHashDestroySession, ids[0]).value() ==
             crypto::kStatusOk);
  create_ok(*d, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
  auto st = h.host->stats("c0")["sessions"];
  BOOST_TEST(st.value("exhausted", 0ull) == 1u);
  BOOST_TEST(st.value("active", 0ull) == 4u);
  // A reconnecting driver starts with no sessions.
  d.reset();
  auto d2 = h.connect();
  BOOST_TEST(
      wait_until([&] { return h.host->stats("c0")["sessions"].value("active", 9ull) == 0u; }, 5s));
  create_ok(*d2, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
}

BOOST_AUTO_TEST_CASE(a_stalled_appliance_fails_pooled_ops_at_their_deadline) {
  // The appliance stops answering: an op in flight fails with ERR at its
  // deadline (nothing hangs), and once the appliance runs again so do the
  // ops, on the same session.
  CryptoHost h("pool:crypto_openssl", 1, 8, true, 400);
  auto d = h.connect();
  const auto sid = create_ok(
      *d, CryptoSessionSpec::make_cipher(crypto::kCipherAesCtr, kAesKey, crypto::kDirEncrypt));
  const auto op = cipher_op(sid, true, kCtrIv, crypto::kCipherAesCtr);
  BOOST_TEST(to_hex(run(*d, 0, op, kPlain, 64).dst) == to_hex(kCtrCipher));

  const pid_t pid = h.appliance->pid();
  BOOST_REQUIRE(::kill(pid, SIGSTOP) == 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{pid};
  const auto wall0 = std::chrono::steady_clock::now();
  const long cpu0 = cpu_ticks(h.host->process().pid());
  for (int i = 0; i < 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run(*d, 0, op, kPlain, 64);
    const auto took = std::chrono::steady_clock::now() - t0;
    BOOST_TEST(r.status == crypto::kStatusErr);
    BOOST_TEST(took >= 350ms);
    BOOST_TEST(took < 5s);
  }
  // While its ops wait, the host spins (yielding) only between sleeps on
  // the fabric's timers: well under the CPU a spinning loop would take.
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double cpu = static_cast<double>(cpu_ticks(h.host->process().pid()) - cpu0) /
                     static_cast<double>(::sysconf(_SC_CLK_TCK));
  BOOST_TEST(cpu < 0.5 * wall, "viopool-host used " << cpu << " s of CPU in " << wall << " s");
  BOOST_TEST(h.host->stats("c0")["total"].value("engine_errors", 0ull) == 2u);

  BOOST_REQUIRE(::kill(pid, SIGCONT) == 0);
  BOOST_TEST(wait_until([&] { return run(*d, 0, op, kPlain, 64).status == crypto::kStatusOk; },
                        10s));
  BOOST_TEST(to_hex(run(*d, 0, op, kPlain, 64).dst) == to_hex(kCtrCipher));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(crypto_vhost_user_sessions)

namespace {

// A CREATE_CRYPTO_SESSION payload as QEMU 7.2's cryptodev-vhost-user builds it
// (CryptoDevBackendSymSessionInfo at 8, keys at 56 and 120).
Bytes qemu_cipher_session(std::uint32_t algo, const Bytes& key, std::uint8_t dir) {
  Bytes p(vhost_user::kCryptoSessionBytes);
  auto put32 = [&](std::size_t off, std::uint32_t v) { std::memcpy(p.data() + off, &v, 4); };
  put32(8, algo);
  put32(12, static_cast<std::uint32_t>(key.size()));
  p[32] = std::byte{crypto::kSymOpCipher};
  p[33] = std::byte{dir};
  std::memcpy(p.data() + 56, key.data(), key.size());
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(qemu_style_sessions_serve_the_data_queues) {
  CryptoHost h("crypto_aesni_mb_t5", 1, 8);
  auto d = h.connect();
  BOOST_REQUIRE(((d->protocol_features() >> vhost_user::kProtocolCryptoSession) & 1) == 1);
  auto& fe = d->frontend();
  auto id = fe.create_crypto_session(
      qemu_cipher_session(crypto::kCipherAesCbc, kAesKey, crypto::kDirEncrypt));
  BOOST_REQUIRE(id.has_value());
  BOOST_REQUIRE(*id > 0);
  auto r =
      run(*d, 0, cipher_op(static_cast<std::uint64_t>(*id), true, kCbcIv, crypto::kCipherAesCbc),
          kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusOk);
  BOOST_TEST(to_hex(r.dst) == to_hex(kCbcCipher));
  // Refusals come back as a negative id; the connection stays up.
  auto bad = fe.create_crypto_session(
      qemu_cipher_session(crypto::kCipherAesCbc, hex("00112233"), crypto::kDirEncrypt));
  BOOST_REQUIRE(bad.has_value());
  BOOST_TEST(*bad == -static_cast<std::int64_t>(crypto::kStatusBadMsg));
  // Close: no answer; the id is dead for the data queue afterwards, and
  // closing an unknown id costs nothing.
  BOOST_REQUIRE(fe.close_crypto_session(static_cast<std::uint64_t>(*id)).has_value());
  BOOST_REQUIRE(fe.close_crypto_session(0xdeadbeef).has_value());
  // Close has no answer: a round trip makes sure the backend has taken it.
  BOOST_REQUIRE(fe.sync().has_value());
  r = run(*d, 0, cipher_op(static_cast<std::uint64_t>(*id), true, kCbcIv, crypto::kCipherAesCbc),
          kPlain, 64);
  BOOST_TEST(r.status == crypto::kStatusInvSess);
  // Control-queue sessions and message sessions share the table.
  create_ok(*d, CryptoSessionSpec::make_hash(crypto::kHashSha256, 32));
  BOOST_TEST(h.host->stats("c0")["sessions"].value("created", 0ull) == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
