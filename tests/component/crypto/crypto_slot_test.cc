// A crypto slot of the appliance's fabric target on a real DPDK cryptodev
// (EAL in this process, --no-huge), driven over an in-process loopback
// transport by a raw ReliableChannel as a host that holds the slot's key
// would: ops whose lengths do not fit their session or their own buffers,
// which the engine would follow past the op's memory, are answered BADMSG
// and counted, and the slot goes on serving good ops.
#include <openssl/evp.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/protocol/frame_auth.h"
#include "pool-manager/target/volume_target.h"
#include "pool-manager/transport/loopback_transport.h"
#include "vhost-backend/devices/crypto/cryptodev_backend.h"
#include "vhost-backend/runtime/eal.h"

using namespace viopool;
using namespace viopool::pool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::byte>;

// Named, not anonymous: the data test's lambdas capture these types.
namespace slot_rig {

constexpr std::uint32_t kFunction = 7;

// EAL for this process, once, torn down with the test module.
struct Eal {
  Eal() = default;
  ~Eal() {
    if (up) {
      runtime::cleanup_eal();
    }
  }
  static bool ensure(std::string& why) {
    static Eal eal;
    if (!eal.up && eal.why.empty()) {
      runtime::EalOptions eo;
      eo.program = "component_crypto";
      eo.force_no_huge = true;
      eo.memory_mb = 256;
      eo.worker_lcores = 0;
      if (runtime::init_eal(eo, eal.why).has_value()) {
        eal.up = true;
      }
    }
    why = eal.why;
    return eal.up;
  }
  bool up = false;
  std::string why;
};

AuthKey slot_key() {
  AuthKey k{};
  for (std::uint8_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(0x40 + i);
  }
  return k;
}

Bytes filled(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = static_cast<std::byte>(i * 7 + seed);
  }
  return b;
}

Bytes gcm_reference(const crypto::SessionParams& p, const std::array<std::uint8_t, 16>& iv,
                    const Bytes& aad, const Bytes& pt) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(p.iv_len), nullptr);
  EVP_EncryptInit_ex(c, nullptr, nullptr, p.key.data(), iv.data());
  int n = 0;
  EVP_EncryptUpdate(c, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                    static_cast<int>(aad.size()));
  Bytes out(pt.size() + p.digest_len);
  EVP_EncryptUpdate(c, reinterpret_cast<unsigned char*>(out.data()), &n,
                    reinterpret_cast<const unsigned char*>(pt.data()), static_cast<int>(pt.size()));
  EVP_EncryptFinal_ex(c, reinterpret_cast<unsigned char*>(out.data()) + n, &n);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(p.digest_len),
                      out.data() + pt.size());
  EVP_CIPHER_CTX_free(c);
  return out;
}

struct Slot {
  explicit Slot(const std::string& devargs) {
    std::string why;
    BOOST_REQUIRE_MESSAGE(Eal::ensure(why), "EAL: " << why);
    auto [a, b] = LoopbackTransport::make_pair(9000);
    host_t = std::move(a);
    target_t = std::move(b);
    crypto::CryptodevBackendOptions co;
    co.devargs = devargs;
    co.log_id = "slot=test";
    TargetOptions o;
    VolumeExport v;
    v.name = "slot-a";
    v.function_id = kFunction;
    v.key = slot_key();
    v.queues = 1;
    v.crypto = crypto::make_cryptodev_backend(std::move(co));
    o.volumes.push_back(std::move(v));
    auto t = VolumeTarget::create(*target_t, std::move(o), why);
    BOOST_REQUIRE_MESSAGE(t.has_value(), why);
    target = std::move(*t);
    auth = std::move(*FrameAuthenticator::create(slot_key()));
    ChannelOptions cho;
    cho.function_id = kFunction;
    cho.queue_id = 0;
    ch = std::make_unique<ReliableChannel>(*host_t, target_t->local(), auth.get(), cho);
    Hello h;
    h.node_id = 5;
    h.mtu = 9000;
    h.window = 64;
    h.nonce.fill(3);
    std::byte buf[kHelloBytes];
    BOOST_REQUIRE(encode_hello(h, buf).has_value());
    BOOST_REQUIRE(ch->send(Opcode::kHello, 0, buf).has_value());
  }

  // Sends one REQUEST and returns its COMPLETION's status and body.
  std::pair<std::int32_t, Bytes> request(std::span<const std::byte> payload) {
    const std::uint32_t tag = ++last_tag;
    BOOST_REQUIRE(ch->send(Opcode::kRequest, tag, payload).has_value());
    const auto deadline = Clock::now() + 5s;
    std::vector<ChannelMessage> got;
    while (Clock::now() < deadline) {
      ch->poll(Clock::now(), got);
      target->poll(Clock::now());
      for (auto& m : got) {
        if (m.opcode == Opcode::kCompletion && m.tag == tag) {
          auto c = decode_completion(m.payload);
          BOOST_REQUIRE(c.has_value());
          return {c->status, Bytes(m.payload.begin() + kCompletionBytes, m.payload.end())};
        }
      }
      got.clear();
      std::this_thread::sleep_for(20us);
    }
    BOOST_FAIL("no completion for tag " << tag);
    return {};
  }

  std::uint64_t create_session(const crypto::SessionParams& p) {
    std::byte buf[1024];
    auto n = encode_crypto_session(p, buf);
    BOOST_REQUIRE(n.has_value());
    auto [st, body] = request(std::span<const std::byte>(buf, *n));
    BOOST_REQUIRE_EQUAL(st, 0);
    BOOST_REQUIRE_EQUAL(body.size(), 8u);
    std::uint64_t h = 0;
    for (std::byte b : body) {
      h = (h << 8) | static_cast<std::uint8_t>(b);
    }
    return h;
  }

  // An op: its head, then src, aad and an input digest as the head says.
  std::pair<std::int32_t, Bytes> op(const CryptoOpHead& h, const Bytes& src, const Bytes& aad,
                                    const Bytes& digest_in = {}) {
    Bytes p(kCryptoOpHeadBytes);
    BOOST_REQUIRE(encode_crypto_op(h, p).has_value());
    p.insert(p.end(), src.begin(), src.end());
    p.insert(p.end(), aad.begin(), aad.end());
    p.insert(p.end(), digest_in.begin(), digest_in.end());
    return request(p);
  }

  std::unique_ptr<LoopbackTransport> host_t;
  std::unique_ptr<LoopbackTransport> target_t;
  std::unique_ptr<VolumeTarget> target;
  std::unique_ptr<FrameAuthenticator> auth;
  std::unique_ptr<ReliableChannel> ch;
  std::uint32_t last_tag = 0;
};

const char* const kSlotEngines[] = {"crypto_aesni_mb_slot", "crypto_openssl_slot"};

}  // namespace slot_rig

using namespace slot_rig;

BOOST_AUTO_TEST_SUITE(crypto_slot)

BOOST_DATA_TEST_CASE(ops_that_do_not_fit_their_session_or_buffers_are_refused,
                     boost::unit_test::data::make(kSlotEngines), devargs) {
  Slot s(devargs);
  crypto::SessionParams p;
  p.kind = crypto::SessionKind::kAead;
  p.aead_algo = crypto::kAeadGcm;
  p.encrypt = true;
  p.iv_len = 12;
  p.key_len = 16;
  for (std::uint32_t i = 0; i < 16; ++i) {
    p.key[i] = static_cast<std::uint8_t>(0xa0 + i);
  }
  p.digest_len = 16;
  p.aad_len = 16;
  const std::uint64_t sess = s.create_session(p);

  const Bytes pt = filled(1024, 1);
  const Bytes aad = filled(16, 9);
  CryptoOpHead good;
  good.session = sess;
  good.encrypt = true;
  good.iv_len = 12;
  good.iv.fill(0x11);
  good.data_len = 1024;
  good.cipher_len = 1024;
  good.src_len = 1024;
  good.aad_len = 16;
  good.dst_len = 1024;
  good.digest_out_len = 16;
  const Bytes expect = gcm_reference(p, good.iv, aad, pt);
  auto check_good = [&] {
    auto [st, body] = s.op(good, pt, aad);
    BOOST_TEST(st == 0);
    BOOST_TEST((body == expect));
  };
  check_good();

  struct Bad {
    const char* what;
    CryptoOpHead h;
  };
  std::vector<Bad> bad;
  auto with = [&](const char* what, auto&& change) {
    Bad b{what, good};
    change(b.h);
    bad.push_back(b);
  };
  // More data than src carries: the engine would read past the op's buffer.
  with("data beyond src", [](CryptoOpHead& h) { h.data_len = 60000; });
  // More data than dst holds: it would write past it.
  with("data beyond dst", [](CryptoOpHead& h) { h.dst_len = 512; });
  // A tag slot shorter than the session's tag: 16 bytes written into 1.
  with("short tag room", [](CryptoOpHead& h) { h.digest_out_len = 1; });
  // Less AAD than the session's: the engine reads the session's 16 bytes.
  with("short aad", [](CryptoOpHead& h) { h.aad_len = 4; });
  with("other IV length", [](CryptoOpHead& h) { h.iv_len = 16; });
  with("other direction", [](CryptoOpHead& h) { h.encrypt = false; });
  // More src than dst: an engine without out-of-place copies all of src
  // into dst first.
  with("src beyond dst", [](CryptoOpHead& h) {
    h.data_len = 16;
    h.cipher_len = 16;
    h.dst_len = 16;
  });
  // Beyond the largest request the engine path takes.
  with("beyond max_size", [](CryptoOpHead& h) {
    h.src_len = 40000;
    h.data_len = 40000;
    h.dst_len = 40000;
  });
  for (const Bad& b : bad) {
    Bytes src(pt.begin(), pt.begin() + std::min<std::size_t>(pt.size(), b.h.src_len));
    src.resize(b.h.src_len);
    const Bytes a(aad.begin(), aad.begin() + std::min<std::size_t>(aad.size(), b.h.aad_len));
    auto [st, body] = s.op(b.h, src, a);
    BOOST_TEST(st == static_cast<std::int32_t>(crypto::kStatusBadMsg), b.what);
    BOOST_TEST(body.empty(), b.what);
  }
  check_good();
  BOOST_TEST(s.target->stats().malformed == bad.size());
}

BOOST_AUTO_TEST_SUITE_END()
