// ReliableChannel over the fault-injecting loopback: every message arrives
// exactly once and intact through loss, reordering, duplication, delay and
// corruption (caught by the frame tags); fragments reassemble; frames signed
// with another key are dropped and counted; a dead peer breaks the channel
// instead of hanging.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/transport/loopback_transport.h"
#include "pool-manager/transport/udp_transport.h"

using namespace viopool;
using namespace viopool::pool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

AuthKey key(std::uint8_t seed) {
  AuthKey k{};
  for (std::uint8_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(seed + i * 7);
  }
  return k;
}

std::vector<std::byte> message_bytes(std::uint32_t tag, std::size_t n) {
  std::vector<std::byte> b(n);
  std::mt19937 rng(tag);
  for (auto& x : b) {
    x = static_cast<std::byte>(rng());
  }
  return b;
}

struct Pair {
  Pair(const FaultRates& ab, const FaultRates& ba, AuthKey ka, AuthKey kb,
       ChannelOptions o = {}) {
    auto [a, b] = LoopbackTransport::make_pair(1500, ab, ba);
    ta = std::move(a);
    tb = std::move(b);
    auth_a = std::move(*FrameAuthenticator::create(ka));
    auth_b = std::move(*FrameAuthenticator::create(kb));
    o.function_id = 7;
    o.queue_id = 1;
    ca = std::make_unique<ReliableChannel>(*ta, tb->local(), auth_a.get(), o);
    cb = std::make_unique<ReliableChannel>(*tb, ta->local(), auth_b.get(), o);
  }
  // Polls both ends until `done` or `limit`; returns what b received.
  template <typename Done>
  bool run(Done done, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      const bool w = ca->poll(Clock::now(), at_a) | cb->poll(Clock::now(), at_b);
      if (done()) {
        return true;
      }
      if (!w) {
        std::this_thread::sleep_for(20us);
      }
    }
    return false;
  }
  std::unique_ptr<LoopbackTransport> ta;
  std::unique_ptr<LoopbackTransport> tb;
  std::unique_ptr<FrameAuthenticator> auth_a;
  std::unique_ptr<FrameAuthenticator> auth_b;
  std::unique_ptr<ReliableChannel> ca;
  std::unique_ptr<ReliableChannel> cb;
  std::vector<ChannelMessage> at_a;
  std::vector<ChannelMessage> at_b;
};

// Sends one hand-made frame from a's transport to b, signed with `auth`.
void inject(Pair& p, FrameHeader h, std::span<const std::byte> payload) {
  std::vector<std::byte> buf(kHeaderBytes + payload.size());
  h.function_id = 7;
  h.queue_id = 1;
  auto n = encode_frame(h, payload, buf);
  BOOST_REQUIRE(n.has_value());
  BOOST_REQUIRE(p.auth_a->sign(buf).has_value());
  const OutFrame f{buf, p.tb->local()};
  BOOST_REQUIRE(p.ta->send_burst(std::span(&f, 1)) == 1u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fabric_channel)

BOOST_AUTO_TEST_CASE(messages_arrive_once_and_intact_through_every_fault) {
  FaultRates f;
  f.drop = 0.05;
  f.reorder = 0.05;
  f.duplicate = 0.02;
  f.corrupt = 0.01;
  f.delay = 0.02;
  f.delay_by = 2ms;
  f.seed = 11;
  FaultRates g = f;
  g.seed = 12;
  Pair p(f, g, key(1), key(1));
  constexpr std::uint32_t kMessages = 300;
  std::map<std::uint32_t, std::size_t> sizes;
  std::mt19937 rng(5);
  for (std::uint32_t tag = 1; tag <= kMessages; ++tag) {
    const std::size_t n = rng() % 5000;  // up to 4 fragments at MTU 1500
    sizes[tag] = n;
    BOOST_REQUIRE(p.ca->send(Opcode::kData, tag, message_bytes(tag, n)).has_value());
  }
  const bool done = p.run([&] { return p.at_b.size() >= kMessages && p.ca->idle(); }, 20s);
  BOOST_TEST(done, "delivered " << p.at_b.size() << " of " << kMessages);
  BOOST_TEST(p.at_b.size() == kMessages);  // exactly once
  std::map<std::uint32_t, int> seen;
  for (const auto& m : p.at_b) {
    ++seen[m.tag];
    BOOST_TEST((m.payload == message_bytes(m.tag, sizes[m.tag])), "tag " << m.tag);
  }
  BOOST_TEST(seen.size() == kMessages);
  const auto fa = p.ta->fault_stats();
  BOOST_TEST(fa.dropped > 0u);
  BOOST_TEST(fa.corrupted > 0u);
  BOOST_TEST(p.ca->stats().retransmits > 0u);
  BOOST_TEST(p.cb->stats().auth_failures + p.cb->stats().malformed > 0u);  // corruption caught
  BOOST_TEST(p.cb->stats().duplicates > 0u);  // duplicates and retransmits suppressed
  BOOST_TEST(!p.ca->broken());
}

BOOST_AUTO_TEST_CASE(frames_under_another_key_are_dropped_and_counted) {
  Pair p({}, {}, key(1), key(2));
  BOOST_REQUIRE(p.ca->send(Opcode::kData, 1, message_bytes(1, 100)).has_value());
  p.run([] { return false; }, 50ms);
  BOOST_TEST(p.at_b.empty());
  BOOST_TEST(p.cb->stats().auth_failures > 0u);
  BOOST_TEST(!p.ca->idle());  // never acked
}

BOOST_AUTO_TEST_CASE(a_dead_peer_breaks_the_channel_in_bounded_time) {
  FaultRates black_hole;
  black_hole.drop = 1.0;
  Pair p(black_hole, {}, key(1), key(1));
  BOOST_REQUIRE(p.ca->send(Opcode::kData, 1, message_bytes(1, 10)).has_value());
  const bool broke = p.run([&] { return p.ca->broken(); }, 10s);
  BOOST_TEST(broke);
  BOOST_TEST(!p.ca->send(Opcode::kData, 2, message_bytes(2, 10)).has_value());
}

BOOST_AUTO_TEST_CASE(flow_control_keeps_in_flight_within_the_peers_credits) {
  auto [ta, tb] = LoopbackTransport::make_pair(1500);
  auto auth_a = std::move(*FrameAuthenticator::create(key(3)));
  auto auth_b = std::move(*FrameAuthenticator::create(key(3)));
  ChannelOptions oa;
  oa.function_id = 1;
  ChannelOptions ob = oa;
  ob.window = 4;  // b grants 4 frames beyond its ack
  ReliableChannel a(*ta, tb->local(), auth_a.get(), oa);
  ReliableChannel b(*tb, ta->local(), auth_b.get(), ob);
  std::vector<ChannelMessage> at_a;
  std::vector<ChannelMessage> at_b;
  for (std::uint32_t tag = 1; tag <= 200; ++tag) {
    BOOST_REQUIRE(a.send(Opcode::kData, tag, message_bytes(tag, 100)).has_value());
  }
  std::size_t most = 0;
  const auto deadline = Clock::now() + 5s;
  while (at_b.size() < 200 && Clock::now() < deadline) {
    a.poll(Clock::now(), at_a);
    most = std::max(most, a.in_flight());
    b.poll(Clock::now(), at_b);
  }
  BOOST_TEST(at_b.size() == 200u);
  // The first burst goes out under the default credits; after b spoke, never more than 4.
  BOOST_TEST(most <= 8u);
}

BOOST_AUTO_TEST_CASE(channels_over_real_udp_sockets) {
  auto ua = UdpTransport::open({"127.0.0.1:0"});
  auto ub = UdpTransport::open({"127.0.0.1:0"});
  BOOST_REQUIRE(ua.has_value());
  BOOST_REQUIRE(ub.has_value());
  auto auth_a = std::move(*FrameAuthenticator::create(key(4)));
  auto auth_b = std::move(*FrameAuthenticator::create(key(4)));
  ChannelOptions o;
  o.function_id = 9;
  ReliableChannel a(**ua, (*ub)->local(), auth_a.get(), o);
  ReliableChannel b(**ub, (*ua)->local(), auth_b.get(), o);
  std::vector<ChannelMessage> at_a;
  std::vector<ChannelMessage> at_b;
  for (std::uint32_t tag = 1; tag <= 100; ++tag) {
    BOOST_REQUIRE(a.send(Opcode::kRequest, tag, message_bytes(tag, tag * 97)).has_value());
  }
  const auto deadline = Clock::now() + 10s;
  while ((at_b.size() < 100 || !a.idle()) && Clock::now() < deadline) {
    a.poll(Clock::now(), at_a);
    b.poll(Clock::now(), at_b);
  }
  BOOST_REQUIRE(at_b.size() == 100u);
  for (const auto& m : at_b) {
    BOOST_TEST((m.payload == message_bytes(m.tag, m.tag * 97)));
  }
  BOOST_TEST(a.stats().auth_failures + b.stats().auth_failures == 0u);
}

BOOST_AUTO_TEST_CASE(an_ack_waits_briefly_for_a_data_frame_to_ride_on) {
  Pair p({}, {}, key(1), key(1));
  const auto t0 = Clock::now();
  BOOST_REQUIRE(p.ca->send(Opcode::kRequest, 2, message_bytes(2, 100)).has_value());
  p.ca->poll(t0, p.at_a);
  p.cb->poll(t0, p.at_b);
  BOOST_TEST(p.at_b.size() == 1u);
  // b owes the ack but sends nothing alone within the delay.
  BOOST_TEST(p.cb->ack_owed());
  BOOST_TEST((p.cb->next_timer() == t0 + ChannelOptions{}.ack_delay));
  p.cb->poll(t0 + 50us, p.at_b);
  BOOST_TEST(p.cb->stats().acks_sent == 0u);
  // The answer within the delay carries it.
  BOOST_REQUIRE(p.cb->send(Opcode::kCompletion, 2, message_bytes(3, 10)).has_value());
  p.cb->poll(t0 + 60us, p.at_b);
  BOOST_TEST(!p.cb->ack_owed());
  BOOST_TEST(p.cb->stats().acks_sent == 0u);
  p.ca->poll(t0 + 60us, p.at_a);
  BOOST_TEST(p.at_a.size() == 1u);
  BOOST_TEST(p.ca->in_flight() == 0u);  // acknowledged by the answer
  // a has nothing to send: its ack for the answer goes alone once the delay is over.
  p.ca->poll(t0 + 150us, p.at_a);
  BOOST_TEST(p.ca->stats().acks_sent == 0u);
  p.ca->poll(t0 + 160us, p.at_a);
  BOOST_TEST(p.ca->stats().acks_sent == 1u);
  BOOST_TEST(!p.ca->ack_owed());
  BOOST_TEST((p.ca->next_timer() == Clock::time_point::max()));
  p.cb->poll(t0 + 160us, p.at_b);
  BOOST_TEST(p.cb->in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(each_frame_times_out_one_rto_after_its_own_send) {
  // b never hears a: nothing is acked. The first RTO is 5 x min_rto; after
  // a timeout it doubles. Frames in flight are looked at only once the
  // oldest may be due, and a later frame is still retransmitted on time.
  Pair p({}, {}, key(1), key(1));
  const auto rto = ChannelOptions{}.min_rto * 5;
  const auto t0 = Clock::now();
  BOOST_REQUIRE(p.ca->send(Opcode::kRequest, 2, message_bytes(2, 100)).has_value());
  p.ca->poll(t0, p.at_a);
  const auto t1 = t0 + rto / 2;
  BOOST_REQUIRE(p.ca->send(Opcode::kRequest, 3, message_bytes(3, 100)).has_value());
  p.ca->poll(t1, p.at_a);
  BOOST_TEST(p.ca->in_flight() == 2u);
  p.ca->poll(t0 + rto - 1us, p.at_a);
  BOOST_TEST(p.ca->stats().retransmits == 0u);
  p.ca->poll(t0 + rto, p.at_a);
  BOOST_TEST(p.ca->stats().retransmits == 1u);  // the first frame only
  // The second was sent at t1; its timeout is the doubled RTO.
  p.ca->poll(t1 + 2 * rto - 1us, p.at_a);
  BOOST_TEST(p.ca->stats().retransmits == 1u);
  p.ca->poll(t1 + 2 * rto, p.at_a);
  BOOST_TEST(p.ca->stats().retransmits == 2u);
}

BOOST_AUTO_TEST_CASE(an_owed_ack_can_be_flushed_or_ride_on_a_keepalive) {
  Pair p({}, {}, key(1), key(1));
  const auto t0 = Clock::now();
  BOOST_REQUIRE(p.ca->send(Opcode::kRequest, 2, message_bytes(2, 10)).has_value());
  BOOST_REQUIRE(p.ca->send(Opcode::kRequest, 3, message_bytes(3, 10)).has_value());
  p.ca->poll(t0, p.at_a);
  p.cb->poll(t0, p.at_b);
  BOOST_TEST(p.cb->ack_owed());
  p.cb->flush_ack();  // a blocking exchange that got its answer
  BOOST_TEST(p.cb->stats().acks_sent == 1u);
  BOOST_TEST(!p.cb->ack_owed());
  p.ca->poll(t0, p.at_a);
  BOOST_TEST(p.ca->in_flight() == 0u);
  p.cb->flush_ack();  // nothing owed: nothing sent
  BOOST_TEST(p.cb->stats().acks_sent == 1u);
  // A keepalive carries the cumulative ack: no ACK follows it.
  BOOST_REQUIRE(p.ca->send(Opcode::kRequest, 4, message_bytes(4, 10)).has_value());
  p.ca->poll(t0, p.at_a);
  p.cb->poll(t0, p.at_b);
  BOOST_TEST(p.cb->ack_owed());
  p.cb->send_unsequenced(Opcode::kKeepalive, {});
  BOOST_TEST(!p.cb->ack_owed());
  p.ca->poll(t0, p.at_a);
  BOOST_TEST(p.ca->in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(gaps_duplicates_and_keepalives_are_acked_at_once) {
  Pair p({}, {}, key(1), key(1));
  const auto now = Clock::now();
  // Data frame `seq` (a one-frame message `tag`) arrives at b.
  const auto deliver = [&](std::uint32_t seq, std::uint32_t tag) {
    FrameHeader h;
    h.opcode = Opcode::kData;
    h.seq = seq;
    h.tag = tag;
    h.message_length = 4;
    const std::byte four[4]{};
    inject(p, h, four);
    p.cb->poll(now, p.at_b);
  };
  // Frame 2 before frame 1: a gap, reported with SACK at once.
  deliver(2, 5);
  BOOST_TEST(p.cb->stats().acks_sent == 1u);
  // Frame 1 fills the gap: acked at once too (as TCP does).
  deliver(1, 4);
  BOOST_TEST(p.at_b.size() == 2u);
  BOOST_TEST(p.cb->stats().acks_sent == 2u);
  // Frame 3, in order again: the ack may wait.
  deliver(3, 6);
  BOOST_TEST(p.at_b.size() == 3u);
  BOOST_TEST(p.cb->stats().acks_sent == 2u);
  BOOST_TEST(p.cb->ack_owed());
  // Frame 1 again: the peer retransmits, so our ack is late: at once.
  deliver(1, 4);
  BOOST_TEST(p.cb->stats().duplicates == 1u);
  BOOST_TEST(p.cb->stats().acks_sent == 3u);
  // A keepalive asks for an answer now.
  FrameHeader k;
  k.opcode = Opcode::kKeepalive;
  inject(p, k, {});
  p.cb->poll(now, p.at_b);
  BOOST_TEST(p.cb->stats().acks_sent == 4u);
}

BOOST_AUTO_TEST_CASE(a_hostile_peer_cannot_stall_or_bloat_the_receiver) {
  Pair p({}, {}, key(1), key(1));
  // b has frames in flight; a claims, in one SACK, 2^31 frames received.
  for (std::uint32_t tag = 1; tag <= 4; ++tag) {
    BOOST_REQUIRE(p.cb->send(Opcode::kData, tag, message_bytes(tag, 100)).has_value());
  }
  p.cb->poll(Clock::now(), p.at_b);
  Sack sack;
  sack.count = 1;
  sack.blocks[0] = SackBlock{1, 0x7ffffff0u};
  std::byte sb[kMaxSackBlocks * 8];
  const auto len = encode_sack(sack, sb).value();
  FrameHeader ack;
  ack.opcode = Opcode::kAck;
  ack.flags = kFlagSack;
  ack.credits = 64;
  ack.message_length = static_cast<std::uint32_t>(len);
  inject(p, ack, std::span<const std::byte>(sb, len));
  const auto t0 = Clock::now();
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_TEST((Clock::now() - t0 < 100ms));  // a range, not four billion erasures
  BOOST_TEST(p.cb->in_flight() == 0u);

  // Frames far beyond the window b advertised are dropped, not buffered.
  FrameHeader far;
  far.opcode = Opcode::kData;
  far.seq = 1000000;
  far.tag = 9;
  far.message_length = 1u << 20;
  far.flags = kFlagMore;
  inject(p, far, {});
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_TEST(p.cb->stats().out_of_window == 1u);

  // Overlapping fragments of one message are refused: the message is never
  // delivered with bytes counted twice (and holes left).
  const std::vector<std::byte> piece(100, std::byte{1});
  FrameHeader f1;
  f1.opcode = Opcode::kData;
  f1.tag = 5;
  f1.seq = 1;
  f1.frag_offset = 0;
  f1.message_length = 200;
  f1.flags = kFlagMore;
  inject(p, f1, piece);
  FrameHeader f2 = f1;
  f2.seq = 2;
  f2.frag_offset = 50;  // overlaps the first
  f2.flags = 0;
  f2.message_length = 200;
  std::vector<std::byte> tail(150, std::byte{2});
  inject(p, f2, tail);
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_TEST(p.at_b.empty());
  BOOST_TEST(p.cb->stats().malformed >= 1u);
}

BOOST_AUTO_TEST_CASE(partly_received_messages_are_bounded_and_whole_ones_still_arrive) {
  ChannelOptions o;
  o.max_reassembly_bytes = 3000;
  Pair p({}, {}, key(1), key(1), o);
  // Fragment [off, off + len) of tag's 1200-byte message, as frame `seq`.
  const auto fragment = [&](std::uint32_t seq, std::uint32_t tag, std::uint32_t off,
                            std::uint32_t len) {
    const auto m = message_bytes(tag, 1200);
    FrameHeader h;
    h.opcode = Opcode::kData;
    h.seq = seq;
    h.tag = tag;
    h.frag_offset = off;
    h.message_length = 1200;
    h.flags = off + len < 1200 ? kFlagMore : 0;
    inject(p, h, std::span(m).subspan(off, len));
  };
  // Two messages half received hold 2400 of the 3000 bytes.
  fragment(1, 10, 0, 100);
  fragment(2, 11, 0, 100);
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_TEST(p.at_b.empty());
  BOOST_TEST(p.cb->stats().out_of_window == 0u);
  // A third would go over: dropped (its sender sends it again later).
  fragment(3, 12, 0, 100);
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_TEST(p.cb->stats().out_of_window == 1u);
  // A message whole in one frame is not held: it arrives at once, after
  // the gap the dropped frame left too.
  fragment(4, 13, 0, 1200);
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_REQUIRE(p.at_b.size() == 1u);
  BOOST_TEST(p.at_b[0].tag == 13u);
  BOOST_TEST((p.at_b[0].payload == message_bytes(13, 1200)));
  // The rest of tag 10 completes it; the dropped frame, sent again, is taken.
  fragment(5, 10, 100, 1100);
  fragment(3, 12, 0, 100);
  p.cb->poll(Clock::now(), p.at_b);
  BOOST_REQUIRE(p.at_b.size() == 2u);
  BOOST_TEST(p.at_b[1].tag == 10u);
  BOOST_TEST((p.at_b[1].payload == message_bytes(10, 1200)));
  BOOST_TEST(p.cb->stats().out_of_window == 1u);
  BOOST_TEST(p.cb->stats().duplicates == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
