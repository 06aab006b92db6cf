// Fabric transports: UDP bursts between two sockets on loopback, and the
// in-process loopback link with each fault alone at a known rate (seeded, so
// the counts are reproducible) and all of them at once.
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "pool-manager/transport/loopback_transport.h"
#include "pool-manager/transport/udp_transport.h"

using namespace viopool;
using namespace viopool::pool;
using namespace std::chrono_literals;

namespace {

std::vector<std::byte> payload(std::uint32_t i, std::size_t n = 64) {
  std::vector<std::byte> b(n);
  for (std::size_t k = 0; k < n; ++k) {
    b[k] = static_cast<std::byte>((i * 31 + k) & 0xff);
  }
  return b;
}

// Receives until `want` frames arrived or `limit` passed.
std::vector<std::vector<std::byte>> drain(Transport& t, std::size_t want,
                                          std::chrono::milliseconds limit) {
  std::vector<std::vector<std::byte>> got;
  std::vector<std::vector<std::byte>> bufs(16, std::vector<std::byte>(t.mtu()));
  std::vector<InFrame> in(16);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    for (std::size_t i = 0; i < in.size(); ++i) {
      in[i].buf = bufs[i];
    }
    const auto n = t.recv_burst(in);
    for (std::uint32_t i = 0; i < n; ++i) {
      got.emplace_back(in[i].buf.begin(), in[i].buf.begin() + in[i].len);
    }
    if (n == 0) {
      std::this_thread::sleep_for(100us);
    }
  }
  return got;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fabric_transport)

BOOST_AUTO_TEST_CASE(udp_bursts_between_two_sockets) {
  auto a = UdpTransport::open({"127.0.0.1:0"});
  auto b = UdpTransport::open({"127.0.0.1:0"});
  BOOST_REQUIRE(a.has_value());
  BOOST_REQUIRE(b.has_value());
  BOOST_TEST(to_string((*b)->local()).rfind("127.0.0.1:", 0) == 0u);
  std::vector<std::vector<std::byte>> data;
  std::vector<OutFrame> out;
  for (std::uint32_t i = 0; i < 100; ++i) {
    data.push_back(payload(i, 100 + i));
  }
  for (const auto& d : data) {
    out.push_back(OutFrame{d, (*b)->local()});
  }
  std::size_t sent = 0;
  for (int tries = 0; sent < out.size() && tries < 1000; ++tries) {
    sent += (*a)->send_burst(std::span(out).subspan(sent));
  }
  BOOST_REQUIRE(sent == out.size());
  const auto got = drain(**b, 100, 2000ms);
  BOOST_REQUIRE(got.size() == 100u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST((got[i] == data[i]), "frame " << i);  // loopback UDP keeps order
  }
  BOOST_TEST((*b)->stats().received == 100u);
  BOOST_TEST((*a)->wait_fd() >= 0);
}

// A fabric-looking frame: 56 bytes of header whose `length` (u32 at 28) is
// the payload that follows.
std::vector<std::byte> fabric_frame(std::uint32_t i, std::uint32_t len) {
  std::vector<std::byte> f = payload(i, 56 + len);
  for (int b = 0; b < 4; ++b) {
    f[28 + b] = static_cast<std::byte>(len >> (24 - 8 * b));
  }
  return f;
}

BOOST_AUTO_TEST_CASE(udp_bundles_frames_into_datagrams_and_splits_them_again) {
  auto a = UdpTransport::open({"127.0.0.1:0"});
  auto b = UdpTransport::open({"127.0.0.1:0", 1472});
  BOOST_REQUIRE(a.has_value());
  BOOST_REQUIRE(b.has_value());
  // 40 frames of 56 + 100 bytes, bundled up to 1472 bytes: 9 per datagram.
  std::vector<std::vector<std::byte>> data;
  std::vector<OutFrame> out;
  for (std::uint32_t i = 0; i < 40; ++i) {
    data.push_back(fabric_frame(i, 100));
  }
  for (const auto& d : data) {
    out.push_back(OutFrame{d, (*b)->local(), 1472});
  }
  BOOST_REQUIRE((*a)->send_burst(out) == 40u);
  // Fewer receive buffers than frames: the rest wait for the next calls.
  std::vector<std::vector<std::byte>> got;
  std::vector<std::vector<std::byte>> bufs(3, std::vector<std::byte>(1472));
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (got.size() < 40 && std::chrono::steady_clock::now() < deadline) {
    std::vector<InFrame> in(3);
    for (std::size_t i = 0; i < in.size(); ++i) {
      in[i].buf = bufs[i];
    }
    const auto n = (*b)->recv_burst(in);
    for (std::uint32_t i = 0; i < n; ++i) {
      got.emplace_back(in[i].buf.begin(), in[i].buf.begin() + in[i].len);
    }
  }
  BOOST_REQUIRE(got.size() == 40u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST((got[i] == data[i]), "frame " << i);
  }
  // Bundling stops at the limit, at another peer, and at a frame that asks
  // for a datagram of its own; a datagram whose lengths lie is handed up
  // whole (its decoding then fails), never read past.
  std::vector<std::byte> liar = fabric_frame(99, 10);
  liar[31] = std::byte{200};
  std::vector<std::byte> tail = payload(7, 20);
  std::vector<OutFrame> odd = {OutFrame{liar, (*b)->local(), 0},
                               OutFrame{data[0], (*b)->local(), 1472},
                               OutFrame{tail, (*b)->local(), 1472}};
  BOOST_REQUIRE((*a)->send_burst(odd) == 3u);
  const auto rest = drain(**b, 3, 2000ms);
  BOOST_REQUIRE(rest.size() == 3u);
  BOOST_TEST((rest[0] == liar));
  BOOST_TEST((rest[1] == data[0]));
  BOOST_TEST((rest[2] == tail));  // not a frame: handed up as one, to be refused
}

// Sends of frames of 4160 bytes, two per datagram up to the peers' 8972:
// runs of equal datagrams to one peer go as segmented sends.
std::vector<std::vector<std::byte>> big_frames(std::uint32_t first, std::size_t count) {
  std::vector<std::vector<std::byte>> v;
  for (std::uint32_t i = 0; i < count; ++i) {
    v.push_back(fabric_frame(first + i, 4104));
  }
  return v;
}

BOOST_AUTO_TEST_CASE(udp_segments_runs_of_equal_datagrams_and_they_arrive_whole) {
  auto a = UdpTransport::open({"127.0.0.1:0", 8972});
  auto b = UdpTransport::open({"127.0.0.1:0", 8972});
  // b takes a segmented send as one buffer (UDP_GRO), c datagram by datagram.
  UdpTransportOptions plain{"127.0.0.1:0", 8972};
  plain.coalesce = false;
  auto c = UdpTransport::open(plain);
  BOOST_REQUIRE(a.has_value());
  BOOST_REQUIRE(b.has_value());
  BOOST_REQUIRE(c.has_value());
  // To b: 33 frames, 16 datagrams of two and a last one of one (more than
  // one send's 64 KiB); then 3 to c, then 4 more to b: runs end at another peer.
  const auto to_b = big_frames(0, 37);
  const auto to_c = big_frames(100, 3);
  std::vector<OutFrame> out;
  for (std::size_t i = 0; i < 33; ++i) {
    out.push_back(OutFrame{to_b[i], (*b)->local(), 8972});
  }
  for (const auto& d : to_c) {
    out.push_back(OutFrame{d, (*c)->local(), 8972});
  }
  for (std::size_t i = 33; i < to_b.size(); ++i) {
    out.push_back(OutFrame{to_b[i], (*b)->local(), 8972});
  }
  BOOST_REQUIRE((*a)->send_burst(out) == out.size());
  // Runs of 7, 7 and 3 datagrams to b (a send stays within 64 KiB), 2 to c,
  // 2 to b.
  BOOST_TEST((*a)->stats().segmented == 5u);
  BOOST_TEST((*a)->stats().gso_refused == 0u);
  const auto got_b = drain(**b, to_b.size(), 2000ms);
  const auto got_c = drain(**c, to_c.size(), 2000ms);
  BOOST_REQUIRE(got_b.size() == to_b.size());
  BOOST_REQUIRE(got_c.size() == to_c.size());
  for (std::size_t i = 0; i < to_b.size(); ++i) {
    BOOST_TEST((got_b[i] == to_b[i]), "frame " << i << " to b");
  }
  for (std::size_t i = 0; i < to_c.size(); ++i) {
    BOOST_TEST((got_c[i] == to_c[i]), "frame " << i << " to c");
  }
  BOOST_TEST((*b)->stats().coalesced == 4u);
  BOOST_TEST((*c)->stats().coalesced == 0u);
  // A frame whose length runs past its datagram takes the rest of that
  // datagram only, never the next one of a coalesced buffer.
  auto liar = big_frames(200, 1)[0];
  liar[28] = std::byte{0};
  liar[29] = std::byte{0};
  liar[30] = std::byte{0x23};
  liar[31] = std::byte{0x28};  // 9000 bytes claimed
  const auto more = big_frames(300, 3);
  const std::vector<OutFrame> lie = {OutFrame{liar, (*b)->local(), 8972},
                                     OutFrame{more[0], (*b)->local(), 8972},
                                     OutFrame{more[1], (*b)->local(), 8972},
                                     OutFrame{more[2], (*b)->local(), 8972}};
  BOOST_REQUIRE((*a)->send_burst(lie) == 4u);
  const auto got_lie = drain(**b, 3, 2000ms);
  BOOST_TEST((*b)->stats().coalesced == 5u);  // the two datagrams came as one buffer
  BOOST_REQUIRE(got_lie.size() == 3u);
  BOOST_TEST(got_lie[0].size() == liar.size() + more[0].size());  // handed up whole, to be refused
  BOOST_TEST((got_lie[1] == more[1]));
  BOOST_TEST((got_lie[2] == more[2]));
}

BOOST_AUTO_TEST_CASE(udp_without_segmentation_sends_each_datagram) {
  auto a = UdpTransport::open({"127.0.0.1:0", 8972});
  auto b = UdpTransport::open({"127.0.0.1:0", 8972});
  BOOST_REQUIRE(a.has_value());
  BOOST_REQUIRE(b.has_value());
  // A socket that sends without UDP checksums cannot segment (the kernel
  // refuses with EINVAL): the first send finds out, every later one goes
  // datagram by datagram, and nothing is lost on the way.
  const int one = 1;
  BOOST_REQUIRE(::setsockopt((*a)->wait_fd(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)) == 0);
  const auto frames = big_frames(0, 12);
  std::vector<OutFrame> out;
  for (const auto& d : frames) {
    out.push_back(OutFrame{d, (*b)->local(), 8972});
  }
  BOOST_REQUIRE((*a)->send_burst(std::span(out).first(6)) == 6u);
  BOOST_REQUIRE((*a)->send_burst(std::span(out).subspan(6)) == 6u);
  BOOST_TEST((*a)->stats().gso_refused == 1u);
  BOOST_TEST((*a)->stats().segmented == 0u);
  BOOST_TEST((*a)->stats().send_errors == 0u);
  const auto got = drain(**b, frames.size(), 2000ms);
  BOOST_REQUIRE(got.size() == frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST((got[i] == frames[i]), "frame " << i);
  }
}

BOOST_AUTO_TEST_CASE(udp_addresses_parse_and_refuse_garbage) {
  BOOST_TEST(parse_udp_address("10.0.0.1:7000").has_value());
  BOOST_TEST(to_string(parse_udp_address("[::1]:9").value()) == "[::1]:9");
  BOOST_TEST(!parse_udp_address("10.0.0.1").has_value());
  BOOST_TEST(!parse_udp_address("host.example:1").has_value());
  BOOST_TEST(!parse_udp_address("10.0.0.1:70000").has_value());
  BOOST_TEST(!parse_udp_address("[::1:9").has_value());
}

BOOST_AUTO_TEST_CASE(clean_loopback_delivers_everything_in_order) {
  auto [a, b] = LoopbackTransport::make_pair(1500);
  std::vector<std::vector<std::byte>> data;
  std::vector<OutFrame> out;
  for (std::uint32_t i = 0; i < 50; ++i) {
    data.push_back(payload(i));
  }
  for (const auto& d : data) {
    out.push_back(OutFrame{d, b->local()});
  }
  BOOST_TEST(a->send_burst(out) == 50u);
  const auto got = drain(*b, 50, 100ms);
  BOOST_REQUIRE(got.size() == 50u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST((got[i] == data[i]));
  }
  // Oversized frames are refused like a network would.
  std::vector<std::byte> big(2000);
  const OutFrame o{big, b->local()};
  a->send_burst(std::span(&o, 1));
  BOOST_TEST(a->stats().send_errors == 1u);
}

BOOST_AUTO_TEST_CASE(each_fault_at_its_rate) {
  constexpr std::uint32_t kFrames = 4000;
  struct Case {
    FaultRates rates;
    std::uint64_t FaultStats::*counter;
  };
  FaultRates drop;
  drop.drop = 0.05;
  FaultRates dup;
  dup.duplicate = 0.05;
  FaultRates corrupt;
  corrupt.corrupt = 0.05;
  FaultRates reorder;
  reorder.reorder = 0.05;
  for (const auto& c :
       {Case{drop, &FaultStats::dropped}, Case{dup, &FaultStats::duplicated},
        Case{corrupt, &FaultStats::corrupted}, Case{reorder, &FaultStats::reordered}}) {
    auto [a, b] = LoopbackTransport::make_pair(1500, c.rates);
    std::vector<std::vector<std::byte>> data;
    for (std::uint32_t i = 0; i < kFrames; ++i) {
      data.push_back(payload(i));
      const OutFrame o{data.back(), b->local()};
      a->send_burst(std::span(&o, 1));
    }
    const auto fs = a->fault_stats();
    const auto count = fs.*(c.counter);
    BOOST_TEST(count > kFrames * 3 / 100);  // 5 % of 4000 = 200, within binomial noise
    BOOST_TEST(count < kFrames * 7 / 100);
    const auto got = drain(*b, kFrames * 2, 50ms);
    const std::size_t expect = kFrames - fs.dropped + fs.duplicated;
    // A frame reordered last stays held: at most one missing.
    BOOST_TEST(got.size() + 1 >= expect);
    BOOST_TEST(got.size() <= expect);
    std::size_t intact = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      for (std::uint32_t k = 0; k < kFrames; ++k) {
        if (got[i] == data[k]) {
          ++intact;
          break;
        }
      }
    }
    BOOST_TEST(got.size() - intact == fs.corrupted);
  }
}

BOOST_AUTO_TEST_CASE(delayed_frames_arrive_late_and_faults_are_reproducible) {
  FaultRates r;
  r.delay = 1.0;
  r.delay_by = 20ms;
  auto [a, b] = LoopbackTransport::make_pair(1500, r);
  const auto d = payload(1);
  const OutFrame o{d, b->local()};
  a->send_burst(std::span(&o, 1));
  BOOST_TEST(drain(*b, 1, 5ms).empty());
  BOOST_TEST(drain(*b, 1, 200ms).size() == 1u);

  FaultRates all;
  all.drop = all.reorder = all.duplicate = all.corrupt = 0.05;
  all.seed = 99;
  auto run = [&] {
    auto [x, y] = LoopbackTransport::make_pair(1500, all);
    for (std::uint32_t i = 0; i < 1000; ++i) {
      const auto p = payload(i);
      const OutFrame f{p, y->local()};
      x->send_burst(std::span(&f, 1));
    }
    return x->fault_stats();
  };
  const auto s1 = run();
  const auto s2 = run();
  BOOST_TEST(s1.dropped == s2.dropped);
  BOOST_TEST(s1.corrupted == s2.corrupted);
  BOOST_TEST(s1.reordered == s2.reordered);
  BOOST_TEST(s1.duplicated == s2.duplicated);
}

BOOST_AUTO_TEST_SUITE_END()
