// The fabric's wire format against the test vectors of docs/fabric.md, round
// trips of every message, malformed frames refused with a reason, and frame
// authentication (a flipped bit or another key fails).
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/protocol/frame_auth.h"

using namespace viopool;
using namespace viopool::pool;

namespace {

std::vector<std::byte> hex(std::string h) {
  std::erase(h, ' ');
  std::erase(h, '\n');
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::vector<std::byte> frame(const FrameHeader& h, std::span<const std::byte> payload) {
  std::vector<std::byte> out(kHeaderBytes + payload.size());
  auto n = encode_frame(h, payload, out);
  BOOST_REQUIRE(n.has_value());
  BOOST_REQUIRE(*n == out.size());
  return out;
}

FrameHeader header(Opcode op, std::uint32_t message_length) {
  FrameHeader h;
  h.opcode = op;
  h.message_length = message_length;
  return h;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fabric_codec)

BOOST_AUTO_TEST_CASE(hello_matches_the_documented_vector) {
  Hello hello;
  hello.lease_id = 0x0102030405060708ull;
  hello.node_id = 42;
  hello.mtu = 1500;
  hello.window = 64;
  for (std::uint8_t i = 0; i < 16; ++i) {
    hello.nonce[i] = i;
  }
  std::vector<std::byte> payload(kHelloBytes);
  BOOST_REQUIRE(encode_hello(hello, payload).value() == kHelloBytes);
  FrameHeader h = header(Opcode::kHello, kHelloBytes);
  h.function_id = 7;
  h.seq = 1;
  h.credits = 64;
  const auto f = frame(h, payload);
  BOOST_TEST(f == hex("5650 02 01 0000 0000 00000007 00000000 00000001 00000000 0040 0000"
                      "00000020 00000000 00000020 00000000000000000000000000000000"
                      "0102030405060708 0000002a 05dc 0040 000102030405060708090a0b0c0d0e0f"));
  auto d = decode_frame(f);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(static_cast<int>(d->header.opcode) == static_cast<int>(Opcode::kHello));
  BOOST_TEST(d->header.function_id == 7u);
  BOOST_TEST(d->header.credits == 64u);
  auto back = decode_hello(d->payload);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->lease_id == hello.lease_id);
  BOOST_TEST(back->mtu == 1500u);
  BOOST_TEST(back->nonce[15] == 15);
}

BOOST_AUTO_TEST_CASE(request_matches_the_documented_vector) {
  BlockRequest q;
  q.op = BlockOp::kRead;
  q.length = 4096;
  q.offset = 0x10000;
  q.deadline_us = 2000000;
  std::vector<std::byte> payload(kBlockRequestBytes);
  BOOST_REQUIRE(encode_block_request(q, payload).has_value());
  FrameHeader h = header(Opcode::kRequest, kBlockRequestBytes);
  h.flags = kFlagAck;
  h.queue_id = 1;
  h.function_id = 7;
  h.tag = 0x99;
  h.seq = 5;
  h.ack = 3;
  h.credits = 32;
  const auto f = frame(h, payload);
  BOOST_TEST(f == hex("5650 02 05 0001 0001 00000007 00000099 00000005 00000003 0020 0000"
                      "00000018 00000000 00000018 00000000000000000000000000000000"
                      "00 00 0000 00001000 0000000000010000 00000000001e8480"));
  auto d = decode_frame(f);
  BOOST_REQUIRE(d.has_value());
  auto back = decode_block_request(d->payload);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->length == 4096u);
  BOOST_TEST(back->offset == 0x10000u);
  BOOST_TEST(back->deadline_us == 2000000u);
}

BOOST_AUTO_TEST_CASE(payloads_round_trip) {
  std::vector<std::byte> buf(64);
  Completion c{-5, 4096};
  BOOST_REQUIRE(encode_completion(c, buf).has_value());
  auto cb = decode_completion(std::span(buf).first(kCompletionBytes));
  BOOST_REQUIRE(cb.has_value());
  BOOST_TEST(cb->status == -5);
  BOOST_TEST(cb->bytes == 4096u);
  Sack s;
  s.count = 2;
  s.blocks[0] = {10, 12};
  s.blocks[1] = {0xfffffffeu, 3};  // wraps
  auto n = encode_sack(s, buf);
  BOOST_REQUIRE(n.has_value());
  auto sb = decode_sack(std::span(buf).first(*n));
  BOOST_REQUIRE(sb.has_value());
  BOOST_TEST(sb->count == 2u);
  BOOST_TEST(sb->blocks[1].end == 3u);
  ConfigRange cr{8, 56};
  BOOST_REQUIRE(encode_config_range(cr, buf).has_value());
  BOOST_TEST(decode_config_range(std::span(buf).first(8))->size == 56u);
  BOOST_REQUIRE(encode_nak(NakReason::kUnknownFunction, buf).has_value());
  BOOST_TEST(static_cast<int>(decode_nak(std::span(buf).first(4)).value()) == 1);
  // A write carries its data after the request header.
  BlockRequest w{BlockOp::kWrite, 0, 512, 4096, 1000};
  std::vector<std::byte> wr(kBlockRequestBytes + 512);
  BOOST_REQUIRE(encode_block_request(w, wr).has_value());
  BOOST_TEST(decode_block_request(wr).has_value());
  BOOST_TEST(!decode_block_request(std::span(wr).first(kBlockRequestBytes + 100)).has_value());
}

BOOST_AUTO_TEST_CASE(fragments_carry_their_place_in_the_message) {
  std::vector<std::byte> part(100, std::byte{7});
  FrameHeader h = header(Opcode::kData, 250);
  h.flags = kFlagMore;
  h.frag_offset = 100;
  const auto f = frame(h, part);
  auto d = decode_frame(f);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->header.frag_offset == 100u);
  BOOST_TEST(d->payload.size() == 100u);
  // The last fragment must end the message and clear MORE.
  h.flags = 0;
  std::vector<std::byte> out(kHeaderBytes + 100);
  BOOST_TEST(!encode_frame(h, part, out).has_value());
  h.frag_offset = 150;
  BOOST_TEST(encode_frame(h, part, out).has_value());
}

BOOST_AUTO_TEST_CASE(malformed_frames_are_refused_with_a_reason) {
  std::vector<std::byte> payload(8);
  const auto good = frame(header(Opcode::kCompletion, 8), payload);
  BOOST_REQUIRE(decode_frame(good).has_value());
  auto broken = [&](std::size_t at, std::uint8_t v) {
    auto f = good;
    f[at] = static_cast<std::byte>(v);
    return decode_frame(f);
  };
  BOOST_TEST(std::string(broken(0, 0x00).error().what).find("magic") != std::string::npos);
  BOOST_TEST(std::string(broken(2, 1).error().what).find("version") != std::string::npos);  // a version 1 frame
  BOOST_TEST(std::string(broken(3, 99).error().what).find("opcode") != std::string::npos);
  BOOST_TEST(std::string(broken(4, 0x80).error().what).find("reserved") != std::string::npos);
  BOOST_TEST(std::string(broken(27, 1).error().what).find("reserved") != std::string::npos);
  BOOST_TEST(std::string(broken(31, 9).error().what).find("length") != std::string::npos);
  BOOST_TEST(!broken(35, 1).has_value());  // frag_offset beyond the message
  BOOST_TEST(!decode_frame(std::span(good).first(kHeaderBytes - 1)).has_value());
  BOOST_TEST(!decode_frame(std::span(good).first(kHeaderBytes + 4)).has_value());
  // Payload decoders refuse wrong sizes and values.
  BOOST_TEST(!decode_hello(std::span(payload).first(8)).has_value());
  std::vector<std::byte> c = {std::byte{0}, std::byte{0}, std::byte{1}, std::byte{0},
                              std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
  BOOST_TEST(!decode_completion(c).has_value());  // status 256: neither errno nor class status
  c[2] = std::byte{0};
  c[3] = std::byte{2};
  BOOST_TEST(decode_completion(c)->status == 2);  // a crypto op's BADMSG
  std::vector<std::byte> inverted(8);
  BOOST_TEST(!decode_sack(inverted).has_value());  // empty block
  std::vector<std::byte> req(kBlockRequestBytes);
  req[0] = std::byte{9};
  BOOST_TEST(!decode_block_request(req).has_value());
  req[0] = std::byte{0};
  req[1] = std::byte{kBlockFlagUnmap};
  BOOST_TEST(!decode_block_request(req).has_value());  // UNMAP on a read
  std::vector<std::byte> cfg = hex("00000ff0 00000020");
  BOOST_TEST(!decode_config_range(cfg).has_value());
}

BOOST_AUTO_TEST_CASE(authentication_detects_tampering_and_other_keys) {
  AuthKey key{};
  for (std::uint8_t i = 0; i < key.size(); ++i) {
    key[i] = i;
  }
  auto a = FrameAuthenticator::create(key);
  BOOST_REQUIRE(a.has_value());
  std::vector<std::byte> payload(100, std::byte{0x5a});
  auto f = frame(header(Opcode::kData, 100), payload);
  BOOST_REQUIRE((*a)->sign(f).has_value());
  BOOST_TEST((*a)->verify(f));
  BOOST_TEST(decode_frame(f).has_value());
  auto tampered = f;
  tampered[kHeaderBytes + 50] ^= std::byte{1};
  BOOST_TEST(!(*a)->verify(tampered));
  auto header_tampered = f;
  header_tampered[11] ^= std::byte{1};  // function_id
  BOOST_TEST(!(*a)->verify(header_tampered));
  AuthKey other = key;
  other[0] ^= 1;
  auto b = FrameAuthenticator::create(other);
  BOOST_REQUIRE(b.has_value());
  BOOST_TEST(!(*b)->verify(f));
  // The same frame signed twice gives the same tag (the auth field is zeroed).
  auto again = f;
  BOOST_REQUIRE((*a)->sign(again).has_value());
  BOOST_TEST(again == f);
}

BOOST_AUTO_TEST_CASE(authentication_tags_match_known_answers_both_ways) {
  // docs/fabric.md "Authentication", computed independently (Python:
  // AES-ECB subkeys, a reference SipHash-2-4-128, AES-GCM's tag): lease key
  // 00..0f; a 200-byte frame of bytes 7i (SipHash) and a 3000-byte frame of
  // bytes 13i + 5 (GHASH then AES), each signed in place.
  AuthKey key{};
  for (std::uint8_t i = 0; i < key.size(); ++i) {
    key[i] = i;
  }
  auto a = FrameAuthenticator::create(key);
  BOOST_REQUIRE(a.has_value());
  std::vector<std::byte> shortf(200);
  for (std::size_t i = 0; i < shortf.size(); ++i) {
    shortf[i] = static_cast<std::byte>((i * 7) & 0xff);
  }
  std::vector<std::byte> longf(3000);
  for (std::size_t i = 0; i < longf.size(); ++i) {
    longf[i] = static_cast<std::byte>((i * 13 + 5) & 0xff);
  }
  BOOST_REQUIRE((*a)->sign(shortf).has_value());
  BOOST_REQUIRE((*a)->sign(longf).has_value());
  const auto short_tag = std::vector<std::byte>(shortf.begin() + kAuthOffset,
                                                shortf.begin() + kAuthOffset + kAuthBytes);
  const auto long_tag = std::vector<std::byte>(longf.begin() + kAuthOffset,
                                               longf.begin() + kAuthOffset + kAuthBytes);
  BOOST_TEST(short_tag == hex("11d3997f6e421e624bd6e9d058ff10a8"));
  BOOST_TEST(long_tag == hex("0d2393553afe7db5a2e13441ed445c50"));
  BOOST_TEST((*a)->verify(shortf));
  BOOST_TEST((*a)->verify(longf));
  // Either tag catches a flipped bit anywhere, on both sides of the size
  // that picks it.
  for (const std::size_t size : {std::size_t{1024}, std::size_t{1025}, std::size_t{3000}}) {
    std::vector<std::byte> f(longf.begin(), longf.begin() + size);
    BOOST_REQUIRE((*a)->sign(f).has_value());
    BOOST_TEST((*a)->verify(f), size);
    for (const std::size_t at : {std::size_t{3}, std::size_t{100}, size - 1}) {
      auto t = f;
      t[at] ^= std::byte{0x10};
      BOOST_TEST(!(*a)->verify(t), size << " byte " << at);
    }
  }
}

BOOST_AUTO_TEST_CASE(volume_config_space_round_trips_and_rejects_nonsense) {
  VolumeInfo v;
  v.block_size = 4096;
  v.capacity_bytes = 1ull << 40;
  v.flags = kVolumeDiscard | kVolumeVolatileCache;
  v.queues = 4;
  v.queue_depth = 128;
  v.max_io_bytes = 256 * 1024;
  v.physical_block_exp = 0;
  std::vector<std::byte> buf(kVolumeInfoBytes);
  BOOST_REQUIRE(encode_volume_info(v, buf).has_value());
  // Byte-exact: class 1, block size, capacity, flags, queues, depth, max I/O.
  const std::vector<std::uint8_t> want = {0, 0, 0, 1,    0, 0, 0x10, 0,    0, 0, 1, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0x0a, 0, 4, 0,    0x80, 0, 4, 0, 0, 0, 0, 0, 0};
  BOOST_TEST(std::equal(buf.begin(), buf.end(), want.begin(),
                        [](std::byte a, std::uint8_t b) { return a == std::byte{b}; }));
  auto d = decode_volume_info(buf);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->capacity_bytes == v.capacity_bytes);
  BOOST_TEST(d->flags == v.flags);
  BOOST_TEST(d->max_io_bytes == v.max_io_bytes);
  const auto broken = [&](std::size_t at, std::uint8_t value) {
    auto b = buf;
    b[at] = std::byte{value};
    return !decode_volume_info(b).has_value();
  };
  BOOST_TEST(broken(3, 2));      // another function class
  BOOST_TEST(broken(6, 0x11));   // block size not a power of two
  BOOST_TEST(broken(15, 1));     // capacity not a multiple of the block size
  BOOST_TEST(broken(19, 0x80));  // unknown flag
  BOOST_TEST(broken(21, 0));     // no queues
  BOOST_TEST(broken(31, 1));     // reserved byte
  BOOST_TEST(!decode_volume_info(std::span(buf).first(31)).has_value());
  // A COMPLETION head may be followed by a read's data.
  std::vector<std::byte> c(kCompletionBytes + 512);
  BOOST_REQUIRE(encode_completion(Completion{0, 512}, c).has_value());
  BOOST_TEST(decode_completion(c)->bytes == 512u);
}

BOOST_AUTO_TEST_CASE(crypto_slot_messages_round_trip_and_refuse_malformed_input) {
  CryptoSlotInfo info;
  info.queues = 2;
  info.queue_depth = 64;
  info.max_sessions = 16;
  info.max_op_bytes = 65536;
  info.caps.cipher[3] = crypto::AlgoCaps{{16, 32, 8}, {0, 0, 0}, {16, 16, 0}, {0, 0, 0}, 16};
  info.caps.aead[1] = crypto::AlgoCaps{{16, 32, 16}, {16, 16, 0}, {12, 12, 0}, {0, 240, 1}, 1};
  std::vector<std::byte> space(kCryptoSlotHeadBytes + 2 * kCryptoCapBytes);
  BOOST_REQUIRE(encode_crypto_slot_info(info, space).value() == space.size());
  auto back = decode_crypto_slot_info(space);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->max_sessions == 16u);
  BOOST_TEST(back->caps.cipher[3]->key.max == 32u);
  BOOST_TEST(back->caps.aead[1]->aad.max == 240u);
  BOOST_TEST(!back->caps.hash[1].has_value());
  BOOST_TEST(!decode_crypto_slot_info(std::span(space).first(kCryptoSlotHeadBytes + 10)).has_value());
  space[kCryptoSlotHeadBytes] = std::byte{9};  // no such family
  BOOST_TEST(!decode_crypto_slot_info(space).has_value());

  crypto::SessionParams p;
  p.kind = crypto::SessionKind::kChain;
  p.cipher_algo = 3;
  p.auth_algo = 2;
  p.auth_is_mac = true;
  p.key_len = 16;
  p.auth_key_len = 32;
  p.key[0] = 0xaa;
  p.auth_key[31] = 0xbb;
  p.digest_len = 32;
  std::vector<std::byte> sess(kCryptoSessionBytes);
  BOOST_REQUIRE(encode_crypto_session(p, sess).has_value());
  auto ps = decode_crypto_session(sess);
  BOOST_REQUIRE(ps.has_value());
  BOOST_TEST((ps->kind == crypto::SessionKind::kChain));
  BOOST_TEST(ps->auth_is_mac);
  BOOST_TEST(ps->auth_key[31] == 0xbbu);
  sess[20] = std::byte{0xff};  // key_len beyond 64
  BOOST_TEST(!decode_crypto_session(sess).has_value());

  CryptoOpHead h;
  h.session = 7;
  h.iv_len = 12;
  h.src_len = 10;
  h.aad_len = 4;
  h.dst_len = 10;
  h.digest_out_len = 16;
  std::vector<std::byte> op(kCryptoOpHeadBytes + 14);
  BOOST_REQUIRE(encode_crypto_op(h, op).has_value());
  auto ho = decode_crypto_op(op);
  BOOST_REQUIRE(ho.has_value());
  BOOST_TEST(ho->session == 7u);
  BOOST_TEST(ho->digest_out_len == 16u);
  BOOST_TEST(!decode_crypto_op(std::span(op).first(op.size() - 1)).has_value());  // data short
  std::vector<std::byte> d(kCryptoDestroyBytes);
  BOOST_REQUIRE(encode_crypto_destroy(99, d).has_value());
  BOOST_TEST(decode_crypto_destroy(d).value() == 99u);
  d[3] = std::byte{1};
  BOOST_TEST(!decode_crypto_destroy(d).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
