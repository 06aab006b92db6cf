// virtio-crypto request parsing against chains built by a fake guest driver:
// well-formed control and data requests become sessions and jobs with iovecs
// into guest memory; malformed ones get the right status and touch nothing.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <vector>

#include "tests/support/fake_guest_driver.h"
#include "vhost-backend/devices/crypto/crypto_device.h"
#include "vhost-backend/devices/crypto/crypto_request.h"

using namespace viopool;
using namespace viopool::crypto;
using viopool::testing::FakeBuf;
using viopool::testing::FakeGuestDriver;

namespace {

// An engine like crypto_aesni_mb: AES-CBC/CTR, SHA-256, HMAC-SHA256, GCM.
CryptoCapabilities test_caps() {
  CryptoCapabilities c;
  AlgoCaps cbc;
  cbc.key = {16, 32, 8};
  cbc.iv = {16, 16, 0};
  cbc.block_size = 16;
  c.cipher[kCipherAesCbc] = cbc;
  AlgoCaps ctr = cbc;
  ctr.iv = {12, 16, 4};
  ctr.block_size = 1;
  c.cipher[kCipherAesCtr] = ctr;
  AlgoCaps sha;
  sha.digest = {1, 32, 1};
  c.hash[kHashSha256] = sha;
  AlgoCaps hmac;
  hmac.key = {1, 128, 1};
  hmac.digest = {1, 32, 1};
  c.mac[kMacHmacSha256] = hmac;
  AlgoCaps gcm;
  gcm.key = {16, 32, 8};
  gcm.digest = {8, 16, 4};
  gcm.iv = {12, 12, 0};
  gcm.aad = {0, 240, 1};
  c.aead[kAeadGcm] = gcm;
  return c;
}

struct Fixture {
  Fixture() : queue(*virtio::SplitQueue::create(drv.queue_config())) {}

  GuestAddr put(const void* p, std::size_t n) {
    GuestAddr a = drv.alloc(n ? n : 1);
    if (n) {
      drv.write(a, std::span(static_cast<const std::byte*>(p), n));
    }
    return a;
  }
  GuestAddr filled(std::size_t n, std::uint8_t v) {
    std::vector<std::uint8_t> b(n, v);
    return put(b.data(), n);
  }
  void pop() {
    auto r = queue.pop_into(chain);
    BOOST_REQUIRE(r.has_value());
    BOOST_REQUIRE(*r);
  }
  CtrlCommand& ctrl(std::span<const FakeBuf> r, std::span<const FakeBuf> w) {
    drv.add_chain(r, w);
    pop();
    parse_ctrl(chain, drv.memory(), cmd);
    return cmd;
  }
  CryptoRequest& data(std::span<const FakeBuf> r, std::span<const FakeBuf> w) {
    drv.add_chain(r, w);
    pop();
    parse_data(chain, drv.memory(), req);
    return req;
  }
  std::uint8_t byte_at(GuestAddr a) { return static_cast<std::uint8_t>(drv.bytes(a, 1)[0]); }

  FakeGuestDriver drv;
  virtio::SplitQueue queue;
  virtio::DescChain chain;
  CtrlCommand cmd;
  CryptoRequest req;
};

CtrlRequest cipher_create(std::uint32_t algo, std::uint32_t keylen, std::uint32_t dir) {
  CtrlRequest r{};
  r.header.opcode = kOpCipherCreateSession;
  r.header.algo = algo;
  r.u.sym.op_type = kSymOpCipher;
  r.u.sym.u.cipher = CipherSessionPara{algo, keylen, dir, 0};
  return r;
}

DataRequest cipher_op(bool enc, std::uint64_t sid, std::uint32_t iv, std::uint32_t src,
                      std::uint32_t dst) {
  DataRequest r{};
  r.header.opcode = enc ? kOpCipherEncrypt : kOpCipherDecrypt;
  r.header.algo = kCipherAesCbc;
  r.header.session_id = sid;
  r.u.sym.op_type = kSymOpCipher;
  r.u.sym.u.cipher = CipherPara{iv, src, dst, 0};
  return r;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(crypto_ctrl, Fixture)

BOOST_AUTO_TEST_CASE(cipher_session_with_key_in_its_own_descriptor) {
  auto r = cipher_create(kCipherAesCbc, 16, kDirEncrypt);
  auto hdr = put(&r, sizeof(r));
  auto key = filled(16, 0xab);
  auto in = filled(16, 0xff);
  FakeBuf rd[] = {{hdr, 72}, {key, 16}};
  FakeBuf wr[] = {{in, 16}};
  auto& c = ctrl(rd, wr);
  BOOST_TEST(static_cast<int>(c.kind) == static_cast<int>(CtrlKind::kCreate));
  BOOST_TEST(static_cast<int>(c.params.kind) == static_cast<int>(SessionKind::kCipher));
  BOOST_TEST(c.params.encrypt);
  BOOST_TEST(c.params.key_len == 16u);
  BOOST_TEST(c.params.key[15] == 0xab);
  BOOST_TEST(c.params.iv_len == 16u);
  const char* why = "";
  BOOST_TEST(validate_session(c.params, test_caps(), why) == kStatusOk);
  BOOST_TEST(complete_ctrl(chain, drv.memory(), c, kStatusOk, 0x1234) == 16u);
  SessionInput out{};
  std::memcpy(&out, drv.bytes(in, 16).data(), 16);
  BOOST_TEST(out.session_id == 0x1234u);
  BOOST_TEST(out.status == kStatusOk);
}

BOOST_AUTO_TEST_CASE(chain_session_reads_cipher_then_auth_key_split_anywhere) {
  CtrlRequest r{};
  r.header.opcode = kOpCipherCreateSession;
  r.u.sym.op_type = kSymOpChain;
  auto& ch = r.u.sym.u.chain;
  ch.alg_chain_order = kChainCipherThenHash;
  ch.hash_mode = kHashModeAuth;
  ch.cipher = CipherSessionPara{kCipherAesCbc, 16, kDirEncrypt, 0};
  ch.u.mac = MacSessionPara{kMacHmacSha256, 32, 20, 0};
  std::vector<std::uint8_t> all(72 + 36);
  std::memcpy(all.data(), &r, 72);
  std::memset(all.data() + 72, 0x11, 16);
  std::memset(all.data() + 88, 0x22, 20);
  auto a = put(all.data(), 50);
  auto b = put(all.data() + 50, all.size() - 50);
  auto in = filled(16, 0);
  FakeBuf rd[] = {{a, 50}, {b, static_cast<std::uint32_t>(all.size() - 50)}};
  FakeBuf wr[] = {{in, 16}};
  auto& c = ctrl(rd, wr);
  BOOST_REQUIRE(static_cast<int>(c.kind) == static_cast<int>(CtrlKind::kCreate));
  BOOST_TEST(static_cast<int>(c.params.kind) == static_cast<int>(SessionKind::kChain));
  BOOST_TEST(c.params.cipher_first);
  BOOST_TEST(c.params.auth_is_mac);
  BOOST_TEST(c.params.key[0] == 0x11);
  BOOST_TEST(c.params.auth_key_len == 20u);
  BOOST_TEST(c.params.auth_key[19] == 0x22);
  BOOST_TEST(c.params.digest_len == 32u);
  const char* why = "";
  BOOST_TEST(validate_session(c.params, test_caps(), why) == kStatusOk);
}

BOOST_AUTO_TEST_CASE(bad_sessions_get_notsupp_or_badmsg) {
  const char* why = "";
  auto caps = test_caps();
  SessionParams p;
  p.kind = SessionKind::kCipher;
  p.cipher_algo = kCipherAesXts;  // not in the engine
  p.key_len = 32;
  p.iv_len = 16;
  BOOST_TEST(validate_session(p, caps, why) == kStatusNotSupp);
  p.cipher_algo = kCipherAesCbc;
  p.key_len = 17;
  BOOST_TEST(validate_session(p, caps, why) == kStatusBadMsg);
  SessionParams h;
  h.kind = SessionKind::kHash;
  h.auth_algo = kHashSha256;
  h.digest_len = 33;
  BOOST_TEST(validate_session(h, caps, why) == kStatusBadMsg);
  h.auth_algo = kHashSha1;
  h.digest_len = 20;
  BOOST_TEST(validate_session(h, caps, why) == kStatusNotSupp);
  SessionParams g;
  g.kind = SessionKind::kAead;
  g.aead_algo = kAeadGcm;
  g.key_len = 16;
  g.iv_len = 12;
  g.digest_len = 16;
  g.aad_len = 16;
  BOOST_TEST(validate_session(g, caps, why) == kStatusOk);
  g.digest_len = 5;
  BOOST_TEST(validate_session(g, caps, why) == kStatusBadMsg);
  g.digest_len = 16;
  g.aad_len = 241;
  BOOST_TEST(validate_session(g, caps, why) == kStatusBadMsg);
  g.aead_algo = kAeadChacha20Poly1305;
  g.aad_len = 0;
  BOOST_TEST(validate_session(g, caps, why) == kStatusNotSupp);
}

BOOST_AUTO_TEST_CASE(malformed_control_requests_are_answered_not_executed) {
  // Short request.
  auto r = cipher_create(kCipherAesCbc, 16, kDirEncrypt);
  auto hdr = put(&r, 40);
  auto in = filled(16, 0xff);
  FakeBuf rd[] = {{hdr, 40}};
  FakeBuf wr[] = {{in, 16}};
  auto& c = ctrl(rd, wr);
  BOOST_TEST(static_cast<int>(c.kind) == static_cast<int>(CtrlKind::kInvalid));
  BOOST_TEST(c.status == kStatusBadMsg);
  BOOST_TEST(complete_ctrl(chain, drv.memory(), c, c.status, 99) == 16u);
  SessionInput out{};
  std::memcpy(&out, drv.bytes(in, 16).data(), 16);
  BOOST_TEST(out.status == kStatusBadMsg);
  BOOST_TEST(out.session_id == 0u);

  // Key length beyond the request.
  auto r2 = cipher_create(kCipherAesCbc, 32, kDirEncrypt);
  auto hdr2 = put(&r2, 72);
  auto key2 = filled(16, 1);
  FakeBuf rd2[] = {{hdr2, 72}, {key2, 16}};
  BOOST_TEST(ctrl(rd2, wr).status == kStatusBadMsg);

  // Unknown opcode; bad direction; nested hash mode.
  CtrlRequest r3{};
  r3.header.opcode = 0x7777;
  auto hdr3 = put(&r3, 72);
  FakeBuf rd3[] = {{hdr3, 72}};
  BOOST_TEST(ctrl(rd3, wr).status == kStatusNotSupp);
  auto r4 = cipher_create(kCipherAesCbc, 0, 7);
  auto hdr4 = put(&r4, 72);
  FakeBuf rd4[] = {{hdr4, 72}};
  BOOST_TEST(ctrl(rd4, wr).status == kStatusBadMsg);

  // No room for the session input: one status byte instead.
  auto hdr5 = put(&r, 72);
  auto key5 = filled(16, 1);
  auto st5 = filled(1, 0xff);
  FakeBuf rd5[] = {{hdr5, 72}, {key5, 16}};
  FakeBuf wr5[] = {{st5, 1}};
  auto& c5 = ctrl(rd5, wr5);
  BOOST_TEST(c5.status == kStatusBadMsg);
  BOOST_TEST(complete_ctrl(chain, drv.memory(), c5, c5.status, 0) == 1u);
  BOOST_TEST(byte_at(st5) == kStatusBadMsg);
}

BOOST_AUTO_TEST_CASE(destroy_answers_one_status_byte) {
  CtrlRequest r{};
  r.header.opcode = kOpCipherDestroySession;
  r.u.destroy_session_id = 0x500000001ull;
  auto hdr = put(&r, 72);
  auto st = filled(1, 0xff);
  FakeBuf rd[] = {{hdr, 72}};
  FakeBuf wr[] = {{st, 1}};
  auto& c = ctrl(rd, wr);
  BOOST_TEST(static_cast<int>(c.kind) == static_cast<int>(CtrlKind::kDestroy));
  BOOST_TEST(c.session_id == 0x500000001ull);
  BOOST_TEST(complete_ctrl(chain, drv.memory(), c, kStatusInvSess, 0) == 1u);
  BOOST_TEST(byte_at(st) == kStatusInvSess);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(crypto_data, Fixture)

BOOST_AUTO_TEST_CASE(cipher_op_points_into_guest_memory) {
  auto r = cipher_op(true, 7, 16, 64, 64);
  auto hdr = put(&r, 72);
  auto iv = filled(16, 0x42);
  auto src = filled(64, 1);
  auto dst = filled(64, 0);
  auto st = filled(1, 0xff);
  FakeBuf rd[] = {{hdr, 72}, {iv, 16}, {src, 64}};
  FakeBuf wr[] = {{dst, 64}, {st, 1}};
  auto& q = data(rd, wr);
  BOOST_REQUIRE(q.needs_op);
  BOOST_TEST(q.session_id == 7u);
  BOOST_TEST(q.job.iv_len == 16u);
  BOOST_TEST(q.job.iv[0] == 0x42);
  BOOST_REQUIRE(q.job.src.n == 1u);
  BOOST_TEST(q.job.src.v[0].iov_base == drv.bytes(src, 64).data());
  BOOST_TEST(q.job.dst.v[0].iov_base == drv.bytes(dst, 64).data());
  BOOST_TEST(q.status == drv.bytes(st, 1).data());

  SessionInfo s;
  s.params.kind = SessionKind::kCipher;
  s.params.cipher_algo = kCipherAesCbc;
  s.params.encrypt = true;
  s.params.iv_len = 16;
  const char* why = "";
  BOOST_TEST(bind_session(q, s, test_caps(), why) == kStatusOk);
  BOOST_TEST(q.job.data_len == 64u);
  BOOST_TEST(complete_data(q, kStatusOk) == 65u);
  BOOST_TEST(byte_at(st) == kStatusOk);
}

BOOST_AUTO_TEST_CASE(binding_checks_kind_direction_iv_and_blocks) {
  SessionInfo s;
  s.params.kind = SessionKind::kCipher;
  s.params.cipher_algo = kCipherAesCbc;
  s.params.encrypt = true;
  s.params.iv_len = 16;
  const char* why = "";
  auto run = [&](DataRequest r, std::uint32_t iv, std::uint32_t src, std::uint32_t dst) {
    auto hdr = put(&r, 72);
    auto ivb = filled(iv, 0);
    auto sb = filled(src, 1);
    auto db = filled(dst, 0);
    auto st = filled(1, 0xff);
    FakeBuf rd[] = {{hdr, 72}, {ivb, iv}, {sb, src}};
    FakeBuf wr[] = {{db, dst}, {st, 1}};
    data(rd, wr);
    BOOST_REQUIRE(req.needs_op);
    return bind_session(req, s, test_caps(), why);
  };
  BOOST_TEST(run(cipher_op(false, 1, 16, 32, 32), 16, 32, 32) == kStatusBadMsg);  // direction
  BOOST_TEST(run(cipher_op(true, 1, 12, 32, 32), 12, 32, 32) == kStatusBadMsg);   // IV size
  BOOST_TEST(run(cipher_op(true, 1, 16, 33, 33), 16, 33, 33) == kStatusBadMsg);   // not a block
  BOOST_TEST(run(cipher_op(true, 1, 16, 32, 16), 16, 32, 16) == kStatusBadMsg);   // dst too short
  DataRequest h{};
  h.header.opcode = kOpHash;
  h.u.hash = HashPara{32, 32};
  auto hdr = put(&h, 72);
  auto sb = filled(32, 1);
  auto hb = filled(32, 0);
  auto st = filled(1, 0xff);
  FakeBuf rd[] = {{hdr, 72}, {sb, 32}};
  FakeBuf wr[] = {{hb, 32}, {st, 1}};
  data(rd, wr);
  BOOST_REQUIRE(req.needs_op);
  BOOST_TEST(bind_session(req, s, test_caps(), why) == kStatusInvSess);  // cipher session
}

BOOST_AUTO_TEST_CASE(aead_tag_follows_the_ciphertext_in_dst_and_src) {
  SessionInfo s;
  s.params.kind = SessionKind::kAead;
  s.params.aead_algo = kAeadGcm;
  s.params.iv_len = 12;
  s.params.digest_len = 16;
  s.params.aad_len = 8;
  const char* why = "";
  for (bool enc : {true, false}) {
    s.params.encrypt = enc;
    DataRequest r{};
    r.header.opcode = enc ? kOpAeadEncrypt : kOpAeadDecrypt;
    const std::uint32_t src = enc ? 64 : 80;
    const std::uint32_t dst = enc ? 80 : 64;
    r.u.aead = AeadPara{12, 8, src, dst};
    auto hdr = put(&r, 72);
    auto iv = filled(12, 3);
    auto sb = filled(src, 1);
    auto aad = filled(8, 2);
    auto db = filled(dst, 0);
    auto st = filled(1, 0xff);
    FakeBuf rd[] = {{hdr, 72}, {iv, 12}, {sb, src}, {aad, 8}};
    FakeBuf wr[] = {{db, dst}, {st, 1}};
    data(rd, wr);
    BOOST_REQUIRE(req.needs_op);
    BOOST_TEST(bind_session(req, s, test_caps(), why) == kStatusOk);
    BOOST_TEST(req.job.data_len == 64u);
    BOOST_TEST(req.job.aad.v[0].iov_base == drv.bytes(aad, 8).data());
    BOOST_REQUIRE(req.job.digest.n == 1u);
    const auto* tag = enc ? drv.bytes(db, dst).data() + 64 : drv.bytes(sb, src).data() + 64;
    BOOST_TEST(req.job.digest.v[0].iov_base == tag);
    BOOST_TEST(req.job.digest.v[0].iov_len == 16u);
  }
  // An AAD length other than the session's, even one the engine could take
  // in a session of its own: the engine would read the session's length.
  s.params.encrypt = true;
  for (std::uint32_t aad_len : {4u, 12u}) {
    DataRequest r{};
    r.header.opcode = kOpAeadEncrypt;
    r.u.aead = AeadPara{12, aad_len, 64, 80};
    auto hdr = put(&r, 72);
    auto iv = filled(12, 3);
    auto sb = filled(64, 1);
    auto aad = filled(aad_len, 2);
    auto db = filled(80, 0);
    auto st = filled(1, 0xff);
    FakeBuf rd[] = {{hdr, 72}, {iv, 12}, {sb, 64}, {aad, aad_len}};
    FakeBuf wr[] = {{db, 80}, {st, 1}};
    data(rd, wr);
    BOOST_REQUIRE(req.needs_op);
    BOOST_TEST(bind_session(req, s, test_caps(), why) == kStatusBadMsg);
    BOOST_TEST(std::string(why) == "AAD length differs from the session's");
  }
}

BOOST_AUTO_TEST_CASE(malformed_data_requests) {
  auto st_of = [&](std::span<const FakeBuf> rd, std::span<const FakeBuf> wr) {
    data(rd, wr);
    BOOST_TEST(!req.needs_op);
    return req.immediate_status;
  };
  auto st = filled(1, 0xff);
  // Short header.
  auto r = cipher_op(true, 1, 16, 16, 16);
  auto short_hdr = put(&r, 30);
  FakeBuf rd1[] = {{short_hdr, 30}};
  FakeBuf wr1[] = {{st, 1}};
  BOOST_TEST(st_of(rd1, wr1) == kStatusBadMsg);
  BOOST_TEST(static_cast<int>(req.reject) == static_cast<int>(DataReject::kBadHeader));
  BOOST_TEST(complete_data(req, req.immediate_status) == 1u);
  BOOST_TEST(byte_at(st) == kStatusBadMsg);
  // src longer than the chain.
  auto hdr = put(&r, 72);
  auto iv = filled(16, 0);
  auto dst = filled(16, 0);
  FakeBuf rd2[] = {{hdr, 72}, {iv, 16}};
  FakeBuf wr2[] = {{dst, 16}, {st, 1}};
  BOOST_TEST(st_of(rd2, wr2) == kStatusBadMsg);
  // Unknown opcode.
  DataRequest u{};
  u.header.opcode = 0x999;
  auto uh = put(&u, 72);
  FakeBuf rd3[] = {{uh, 72}};
  BOOST_TEST(st_of(rd3, wr1) == kStatusNotSupp);
  // IV longer than any algorithm's.
  auto big_iv = cipher_op(true, 1, 4096, 16, 16);
  auto bh = put(&big_iv, 72);
  BOOST_TEST(st_of(std::span<const FakeBuf>(std::vector<FakeBuf>{{bh, 72}}), wr2) == kStatusBadMsg);
  // No writable byte at all: nothing can be answered.
  auto hdr4 = put(&r, 72);
  FakeBuf rd4[] = {{hdr4, 72}};
  data(rd4, {});
  BOOST_TEST(!req.needs_op);
  BOOST_TEST(static_cast<int>(req.reject) == static_cast<int>(DataReject::kNoStatus));
  BOOST_TEST(complete_data(req, kStatusBadMsg) == 0u);
  // Lengths beyond max_size.
  auto huge = cipher_op(true, 1, 16, kMaxRequestBytes + 16, kMaxRequestBytes + 16);
  auto hh = put(&huge, 72);
  FakeBuf rd5[] = {{hh, 72}};
  BOOST_TEST(st_of(rd5, wr1) == kStatusBadMsg);
}

BOOST_AUTO_TEST_CASE(jobs_from_elsewhere_are_checked_against_session_and_buffers) {
  const CryptoCapabilities caps = test_caps();
  std::uint8_t buf[256] = {};
  auto iov = [&](std::uint32_t at, std::uint32_t len) {
    Iovs v;
    v.n = 1;
    v.bytes = len;
    v.v[0] = iovec{buf + at, len};
    return v;
  };
  SessionParams chain;
  chain.kind = SessionKind::kChain;
  chain.iv_len = 16;
  chain.digest_len = 32;
  CryptoJob j;
  j.kind = SessionKind::kChain;
  j.iv_len = 16;
  j.src = iov(0, 64);
  j.dst = iov(64, 64);
  j.digest = iov(128, 32);
  j.data_len = 64;
  j.cipher_offset = 16;
  j.cipher_len = 48;
  j.auth_len = 64;
  BOOST_TEST(check_job(j, chain, caps) == nullptr);
  CryptoJob k = j;
  k.cipher_offset = 0xffffffffu;  // offset + length wraps in 32 bits
  k.cipher_len = 2;
  BOOST_TEST(check_job(k, chain, caps) != nullptr);
  k = j;
  k.auth_offset = 1;  // hash range one byte past src
  BOOST_TEST(check_job(k, chain, caps) != nullptr);
  k = j;
  k.dst = iov(64, 63);  // src is copied into dst
  BOOST_TEST(check_job(k, chain, caps) != nullptr);
  k = j;
  k.digest = iov(128, 20);
  BOOST_TEST(check_job(k, chain, caps) != nullptr);
  k = j;
  k.kind = SessionKind::kCipher;
  BOOST_TEST(check_job(k, chain, caps) != nullptr);

  SessionParams hash;
  hash.kind = SessionKind::kHash;
  hash.digest_len = 32;
  CryptoJob h;
  h.kind = SessionKind::kHash;
  h.src = iov(0, 100);
  h.digest = iov(128, 32);
  h.data_len = 100;
  h.iv_len = 5;  // no IV in a hash: not looked at
  BOOST_TEST(check_job(h, hash, caps) == nullptr);
  h.data_len = 101;
  BOOST_TEST(check_job(h, hash, caps) != nullptr);

  // A cipher op: whole CBC blocks, dst no shorter than src (an engine
  // without out-of-place copies all of src into dst), nothing beyond max_size.
  SessionParams cbc;
  cbc.kind = SessionKind::kCipher;
  cbc.cipher_algo = kCipherAesCbc;
  cbc.iv_len = 16;
  CryptoJob c;
  c.kind = SessionKind::kCipher;
  c.iv_len = 16;
  c.src = iov(0, 64);
  c.dst = iov(64, 64);
  c.data_len = 64;
  BOOST_TEST(check_job(c, cbc, caps) == nullptr);
  CryptoJob d = c;
  d.data_len = 20;
  d.src = iov(0, 20);
  d.dst = iov(64, 20);
  BOOST_TEST(std::string(check_job(d, cbc, caps)) ==
             "data length not a multiple of the cipher block");
  d = c;
  d.dst = iov(64, 16);
  d.data_len = 16;
  BOOST_TEST(std::string(check_job(d, cbc, caps)) == "dst shorter than src");
  d = c;
  d.dst.n = 0;
  d.dst.bytes = 0;
  d.data_len = 0;
  BOOST_TEST(check_job(d, cbc, caps) != nullptr);  // src but no dst at all
  d = c;
  d.src.bytes = d.dst.bytes = kMaxRequestBytes + 16;
  BOOST_TEST(std::string(check_job(d, cbc, caps)) == "src or dst longer than max_size");
}

BOOST_AUTO_TEST_SUITE_END()
