// Randomised guest input against the virtio-crypto parsers: requests with
// random opcodes, lengths and bytes, split over random descriptors, some
// pointing outside guest memory. Nothing may crash or touch memory outside
// the chain, every answer is one of the protocol's statuses, and whatever
// reaches the backend lies inside guest memory with the lengths it claims.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "tests/support/fake_guest_driver.h"
#include "vhost-backend/devices/crypto/crypto_device.h"
#include "vhost-backend/devices/crypto/crypto_request.h"

using namespace viopool;
using namespace viopool::crypto;
using viopool::testing::FakeBuf;
using viopool::testing::FakeGuestDriver;

namespace {

CryptoCapabilities caps() {
  CryptoCapabilities c;
  c.cipher[kCipherAesCbc] = AlgoCaps{{16, 32, 8}, {}, {16, 16, 0}, {}, 16};
  c.cipher[kCipherAesCtr] = AlgoCaps{{16, 32, 8}, {}, {12, 16, 4}, {}, 1};
  c.hash[kHashSha256] = AlgoCaps{{}, {1, 32, 1}, {}, {}, 1};
  c.mac[kMacHmacSha256] = AlgoCaps{{1, 128, 1}, {1, 32, 1}, {}, {}, 1};
  c.aead[kAeadGcm] = AlgoCaps{{16, 32, 8}, {8, 16, 4}, {12, 12, 0}, {0, 240, 1}, 1};
  return c;
}

bool valid_status(std::uint8_t s) { return s <= kStatusNoSpc; }

// True if every iovec lies inside the driver's guest memory and they add up.
bool inside(FakeGuestDriver& drv, const Iovs& v) {
  std::uint64_t total = 0;
  for (std::uint32_t i = 0; i < v.n; ++i) {
    const auto* p = static_cast<const std::byte*>(v.v[i].iov_base);
    bool ok = false;
    for (const auto& r : drv.memory().regions()) {
      if (p >= r.host && p + v.v[i].iov_len <= r.host + r.size) {
        ok = true;
      }
    }
    if (!ok) {
      return false;
    }
    total += v.v[i].iov_len;
  }
  return total == v.bytes;
}

const std::uint32_t kOpcodes[] = {kOpCipherEncrypt, kOpCipherDecrypt, kOpHash,   kOpMac,
                                  kOpAeadEncrypt,   kOpAeadDecrypt,   0x1234567u};
const std::uint32_t kCtrlOpcodes[] = {kOpCipherCreateSession,  kOpHashCreateSession,
                                      kOpMacCreateSession,     kOpAeadCreateSession,
                                      kOpCipherDestroySession, 0x777u};

struct Rig {
  testing::FakeGuestDriverOptions opts() {
    testing::FakeGuestDriverOptions o;
    o.region_bytes = 8u << 20;
    return o;
  }
  Rig() : drv(opts()), queue(*virtio::SplitQueue::create(drv.queue_config())) {}
  FakeGuestDriver drv;
  virtio::SplitQueue queue;
};

// Random bytes with a plausible header in front most of the time.
std::vector<std::uint8_t> random_request(std::mt19937& rng, bool control) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> b(std::uniform_int_distribution<std::size_t>(0, 400)(rng));
  for (auto& x : b) {
    x = static_cast<std::uint8_t>(byte(rng));
  }
  if (b.size() >= 72 && rng() % 4 != 0) {
    const std::uint32_t op = control ? kCtrlOpcodes[rng() % std::size(kCtrlOpcodes)]
                                     : kOpcodes[rng() % std::size(kOpcodes)];
    std::memcpy(b.data(), &op, 4);
    // Small lengths most of the time, so that some requests are well formed.
    for (std::size_t off = 24; off + 4 <= 72; off += 4) {
      if (rng() % 3 != 0) {
        const std::uint32_t v = static_cast<std::uint32_t>(rng() % 80);
        std::memcpy(b.data() + off, &v, 4);
      }
    }
    if (control && op == kOpHashCreateSession && rng() % 2 == 0) {
      // A SHA-256 session with a random result length: often acceptable.
      const std::uint32_t para[2] = {kHashSha256, 1 + static_cast<std::uint32_t>(rng() % 40)};
      std::memcpy(b.data() + 16, para, sizeof(para));
    }
  }
  return b;
}

// Splits `bytes` over 1-4 readable descriptors (some bogus) and adds 0-3
// writable ones; returns false if the chain could not be built.
void add_random_chain(Rig& r, std::mt19937& rng, const std::vector<std::uint8_t>& bytes) {
  std::vector<FakeBuf> rd;
  std::size_t off = 0;
  const std::size_t parts = 1 + rng() % 4;
  for (std::size_t i = 0; i < parts && off < bytes.size(); ++i) {
    const std::size_t n =
        i + 1 == parts ? bytes.size() - off : std::min(bytes.size() - off, 1 + rng() % 100);
    const GuestAddr a = r.drv.alloc(n);
    r.drv.write(a, std::span(reinterpret_cast<const std::byte*>(bytes.data() + off), n));
    rd.push_back({a, static_cast<std::uint32_t>(n)});
    off += n;
  }
  if (rng() % 10 == 0) {
    rd.push_back({GuestAddr{0xdead0000ull}, 64});  // outside guest memory
  }
  std::vector<FakeBuf> wr;
  const std::size_t wparts = rng() % 4;
  for (std::size_t i = 0; i < wparts; ++i) {
    const std::uint32_t n = 1 + static_cast<std::uint32_t>(rng() % 200);
    wr.push_back({r.drv.alloc(n), n});
  }
  if (rd.empty() && wr.empty()) {
    wr.push_back({r.drv.alloc(1), 1});
  }
  r.drv.add_chain(rd, wr);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(crypto_fuzz)

BOOST_AUTO_TEST_CASE(random_data_requests_are_answered_safely) {
  std::mt19937 rng(4242);
  const auto c = caps();
  int reached_backend = 0;
  for (int round = 0; round < 40; ++round) {
    Rig r;
    for (int i = 0; i < 100; ++i) {
      add_random_chain(r, rng, random_request(rng, false));
      virtio::DescChain chain;
      auto popped = r.queue.pop_into(chain);
      BOOST_REQUIRE(popped.has_value());
      BOOST_REQUIRE(*popped);
      CryptoRequest req;
      parse_data(chain, r.drv.memory(), req);
      std::uint8_t status = req.immediate_status;
      if (req.needs_op) {
        SessionInfo s;
        s.params.kind = req.kind;
        s.params.encrypt = req.encrypt;
        s.params.cipher_algo = kCipherAesCbc;
        s.params.aead_algo = kAeadGcm;
        s.params.iv_len = req.kind == SessionKind::kAead ? 12 : 16;
        s.params.digest_len = req.kind == SessionKind::kAead ? 16 : req.hash_len;
        s.params.aad_len = req.aad_len;
        const char* why = "";
        status = bind_session(req, s, c, why);
        if (status == kStatusOk) {
          ++reached_backend;
          BOOST_TEST(inside(r.drv, req.job.src));
          BOOST_TEST(inside(r.drv, req.job.dst));
          BOOST_TEST(inside(r.drv, req.job.aad));
          BOOST_TEST(inside(r.drv, req.job.digest));
          BOOST_TEST(req.job.iv_len <= kMaxIvBytes);
        }
      }
      BOOST_TEST(valid_status(status));
      BOOST_TEST(complete_data(req, status) <= chain.writable_bytes());
      r.queue.push_used(chain.id(), 0);
      (void)r.drv.pop_used();
    }
  }
  // The generator does produce well-formed requests too.
  BOOST_TEST(reached_backend > 20);
}

BOOST_AUTO_TEST_CASE(random_control_requests_are_answered_safely) {
  std::mt19937 rng(777);
  const auto c = caps();
  int valid = 0;
  for (int round = 0; round < 40; ++round) {
    Rig r;
    for (int i = 0; i < 100; ++i) {
      add_random_chain(r, rng, random_request(rng, true));
      virtio::DescChain chain;
      auto popped = r.queue.pop_into(chain);
      BOOST_REQUIRE(popped.has_value());
      BOOST_REQUIRE(*popped);
      CtrlCommand cmd;
      parse_ctrl(chain, r.drv.memory(), cmd);
      std::uint8_t status = cmd.status;
      if (cmd.kind == CtrlKind::kCreate) {
        const char* why = "";
        status = validate_session(cmd.params, c, why);
        BOOST_TEST(cmd.params.key_len <= kMaxKeyBytes);
        BOOST_TEST(cmd.params.auth_key_len <= kMaxAuthKeyBytes);
        valid += status == kStatusOk;
      }
      BOOST_TEST(valid_status(status));
      BOOST_TEST(complete_ctrl(chain, r.drv.memory(), cmd, status, 1) <= chain.writable_bytes());
      r.queue.push_used(chain.id(), 0);
      (void)r.drv.pop_used();
    }
  }
  // The generator does produce sessions the engine accepts too.
  BOOST_TEST(valid > 0);
}

BOOST_AUTO_TEST_SUITE_END()
