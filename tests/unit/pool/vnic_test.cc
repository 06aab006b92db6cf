// vNICs on the fabric target: the PACKETS and vNIC config codecs, and the
// target's switch between a NIC port and hosts. The NIC here is an
// in-memory port (frames pushed in, frames sent recorded); hosts are bare
// channels over the in-process loopback. Frames reach only the vNIC of their
// MAC and VLAN; tags are added and stripped at the appliance; a guest cannot
// send from another MAC or with its own tag; vNICs on one port and VLAN talk
// without the wire; the committed rate is policed.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/target/volume_target.h"
#include "pool-manager/transport/loopback_transport.h"

using namespace viopool;
using namespace viopool::pool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::byte>;

namespace {

using Mac = std::array<std::uint8_t, 6>;
constexpr Mac kMacA{0x02, 0, 0, 0, 0, 0x0a};
constexpr Mac kMacB{0x02, 0, 0, 0, 0, 0x0b};
constexpr Mac kMacC{0x02, 0, 0, 0, 0, 0x0c};
constexpr Mac kWire{0x02, 0, 0, 0, 0, 0x99};
constexpr Mac kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

AuthKey key(std::uint8_t seed) {
  AuthKey k{};
  for (std::uint8_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(seed * 16 + i);
  }
  return k;
}

// An Ethernet frame dst, src, [VLAN tag], EtherType 0x0800, `len` bytes in all.
Bytes frame(const Mac& dst, const Mac& src, std::size_t len = 64, int vlan = -1,
            std::uint8_t fill = 0x5a) {
  Bytes f;
  for (auto b : dst) f.push_back(std::byte{b});
  for (auto b : src) f.push_back(std::byte{b});
  if (vlan >= 0) {
    for (int b : {0x81, 0x00, vlan >> 8, vlan & 0xff}) f.push_back(static_cast<std::byte>(b));
  }
  f.push_back(std::byte{0x08});
  f.push_back(std::byte{0x00});
  f.resize(std::max(len, f.size()), std::byte{fill});
  return f;
}

class MemoryNic final : public NicPort {
 public:
  const std::string& name() const noexcept override { return name_; }
  std::uint32_t rx(std::span<NicFrame> out) noexcept override {
    held_.clear();
    while (!inbound.empty() && held_.size() < out.size()) {
      held_.push_back(std::move(inbound.front()));
      inbound.pop_front();
    }
    for (std::size_t i = 0; i < held_.size(); ++i) {
      out[i] = NicFrame{held_[i].data(), static_cast<std::uint32_t>(held_[i].size())};
    }
    return static_cast<std::uint32_t>(held_.size());
  }
  void release_rx() noexcept override { held_.clear(); }
  std::uint32_t tx(std::span<const NicFrame> frames) noexcept override {
    for (const auto& f : frames) {
      sent.emplace_back(f.data, f.data + f.len);
    }
    return static_cast<std::uint32_t>(frames.size());
  }
  std::deque<Bytes> inbound;
  std::vector<Bytes> sent;

 private:
  std::string name_ = "mem0";
  std::vector<Bytes> held_;
};

struct Vnic {
  std::uint32_t function = 0;
  Mac mac{};
  std::uint16_t vlan = 0;
  std::uint32_t rate_mbps = 0;
};

// The target with vNICs on one MemoryNic, and one host link per vNIC.
struct Rig {
  std::unique_ptr<LoopbackTransport> host_t, target_t;
  std::shared_ptr<MemoryNic> nic = std::make_shared<MemoryNic>();
  std::unique_ptr<VolumeTarget> target;
  struct Host {
    Vnic v;
    std::unique_ptr<FrameAuthenticator> auth;
    std::unique_ptr<ReliableChannel> ch;
    bool up = false;
    std::vector<Bytes> got;  // frames the host received
  };
  std::vector<Host> hosts;

  explicit Rig(std::vector<Vnic> vnics) {
    auto [a, b] = LoopbackTransport::make_pair(9000);
    host_t = std::move(a);
    target_t = std::move(b);
    TargetOptions o;
    for (const auto& v : vnics) {
      VolumeExport e;
      e.name = "vnic" + std::to_string(v.function);
      e.function_id = v.function;
      e.key = key(static_cast<std::uint8_t>(v.function));
      e.queues = 1;
      e.nic = nic;
      e.vnic.mac = v.mac;
      e.vnic.vlan = v.vlan;
      e.vnic.rate_mbps = v.rate_mbps;
      o.volumes.push_back(e);
    }
    std::string why;
    auto t = VolumeTarget::create(*target_t, o, why);
    BOOST_REQUIRE_MESSAGE(t.has_value(), why);
    target = std::move(*t);
    for (const auto& v : vnics) {
      Host h;
      h.v = v;
      h.auth = std::move(*FrameAuthenticator::create(key(static_cast<std::uint8_t>(v.function))));
      ChannelOptions co;
      co.function_id = v.function;
      co.receive = false;  // frames of every link arrive on host_t: routed by function
      h.ch = std::make_unique<ReliableChannel>(*host_t, target_t->local(), h.auth.get(), co);
      Hello hello;
      hello.mtu = 9000;
      hello.window = 64;
      hello.nonce.fill(static_cast<std::uint8_t>(v.function));
      std::byte buf[kHelloBytes];
      BOOST_REQUIRE(encode_hello(hello, buf).has_value());
      BOOST_REQUIRE(h.ch->send(Opcode::kHello, 0, buf).has_value());
      hosts.push_back(std::move(h));
    }
    BOOST_REQUIRE(run_until([&] {
      return std::all_of(hosts.begin(), hosts.end(), [](const Host& h) { return h.up; });
    }));
  }

  Host& host(std::uint32_t function) {
    for (auto& h : hosts) {
      if (h.v.function == function) return h;
    }
    BOOST_FAIL("no such host");
    return hosts.front();
  }

  void pump() {
    std::vector<ChannelMessage> msgs;
    for (auto& h : hosts) {
      h.ch->poll(Clock::now(), msgs);
    }
    target->poll(Clock::now());
    std::vector<std::byte> buf(8 * 9000);
    InFrame in[8];
    for (int i = 0; i < 8; ++i) in[i].buf = std::span(buf).subspan(i * 9000, 9000);
    for (std::uint32_t n; (n = host_t->recv_burst(in)) > 0;) {
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::span<const std::byte> bytes(in[i].buf.data(), in[i].len);
        auto f = decode_frame(bytes);
        BOOST_REQUIRE(f.has_value());
        Host& h = host(f->header.function_id);
        BOOST_REQUIRE(h.auth->verify(bytes));
        if (f->header.opcode == Opcode::kPackets) {
          std::span<const std::byte> pk[kMaxPacketsPerFrame];
          auto np = decode_packets(f->payload, pk);
          BOOST_REQUIRE(np.has_value());
          for (std::size_t k = 0; k < *np; ++k) h.got.emplace_back(pk[k].begin(), pk[k].end());
          continue;
        }
        msgs.clear();
        h.ch->ingest(*f, Clock::now(), msgs);
        for (const auto& m : msgs) h.up |= m.opcode == Opcode::kHelloAck;
      }
    }
  }

  template <typename Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = 2000ms) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      pump();
      if (done()) return true;
      std::this_thread::sleep_for(50us);
    }
    return false;
  }
  void settle() {
    for (int i = 0; i < 20; ++i) {
      pump();
      std::this_thread::sleep_for(50us);
    }
  }

  // The host of `function` sends frames in one PACKETS frame.
  void send(std::uint32_t function, const std::vector<Bytes>& frames,
            const AuthKey* forged = nullptr) {
    Host& h = host(function);
    Bytes buf(9000);
    PacketsWriter w{std::span<std::byte>(buf).subspan(kHeaderBytes)};
    for (const auto& f : frames) {
      BOOST_REQUIRE(w.fits(f.size()));
      std::memcpy(w.add(static_cast<std::uint32_t>(f.size())), f.data(), f.size());
    }
    const std::size_t payload = w.finish();
    FrameHeader hd;
    hd.opcode = Opcode::kPackets;
    hd.function_id = function;
    hd.message_length = static_cast<std::uint32_t>(payload);
    auto n = encode_frame_in_place(hd, payload, buf);
    BOOST_REQUIRE(n.has_value());
    buf.resize(*n);
    auto signer = forged ? std::move(*FrameAuthenticator::create(*forged)) : nullptr;
    BOOST_REQUIRE((signer ? signer : h.auth)->sign(buf).has_value());
    const OutFrame out{buf, target_t->local()};
    BOOST_REQUIRE(host_t->send_burst(std::span(&out, 1)) == 1u);
    settle();
  }

  VolumeStats st(std::uint32_t function) { return *target->volume_stats(function); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(vnics)

BOOST_AUTO_TEST_CASE(vnic_config_space_round_trips_and_refuses_nonsense) {
  VnicInfo v;
  v.queues = 2;
  v.mtu = 1500;
  v.mac = kMacA;
  v.vlan = 100;
  v.flags = kVnicLinkUp;
  v.rate_mbps = 100;
  v.peak_mbps = 200;
  std::byte buf[kVnicInfoBytes];
  BOOST_REQUIRE(encode_vnic_info(v, buf).has_value());
  auto d = decode_vnic_info(buf);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->mac == kMacA);
  BOOST_TEST(d->vlan == 100);
  BOOST_TEST(d->peak_mbps == 200u);
  auto bad = [&](auto change) {
    VnicInfo b = v;
    change(b);
    std::byte x[kVnicInfoBytes];
    (void)encode_vnic_info(b, x);
    return !decode_vnic_info(x).has_value();
  };
  BOOST_TEST(bad([](VnicInfo& b) { b.function_class = kFunctionClassVolume; }));
  BOOST_TEST(bad([](VnicInfo& b) { b.queues = 0; }));
  BOOST_TEST(bad([](VnicInfo& b) { b.mtu = 67; }));
  BOOST_TEST(bad([](VnicInfo& b) { b.vlan = 4095; }));
  BOOST_TEST(bad([](VnicInfo& b) { b.flags = 2; }));
  BOOST_TEST(bad([](VnicInfo& b) { b.mac[0] = 0x01; }));
  BOOST_TEST(!decode_vnic_info(std::span(buf).first(31)).has_value());
}

BOOST_AUTO_TEST_CASE(packets_payloads_split_exactly_or_not_at_all) {
  Bytes buf(4096);
  PacketsWriter w(buf);
  const Bytes f1 = frame(kMacA, kMacB, 60);
  const Bytes f2 = frame(kMacB, kMacA, 1514);
  std::memcpy(w.add(60), f1.data(), 60);
  std::memcpy(w.add(1514), f2.data(), 1514);
  BOOST_TEST(w.count() == 2u);
  const std::size_t n = w.finish();
  BOOST_TEST(n == 4u + 2 + 60 + 2 + 1514);
  std::span<const std::byte> out[kMaxPacketsPerFrame];
  auto got = decode_packets(std::span(buf).first(n), out);
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(*got == 2u);
  BOOST_TEST(std::equal(out[1].begin(), out[1].end(), f2.begin(), f2.end()));
  // Malformed: trailing bytes, a record past the end, a runt, a count above
  // the limit, reserved bytes.
  BOOST_TEST(!decode_packets(std::span(buf).first(n + 1), out).has_value());
  BOOST_TEST(!decode_packets(std::span(buf).first(n - 1), out).has_value());
  Bytes runt = {std::byte{0}, std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0},
                std::byte{4}, std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  BOOST_TEST(!decode_packets(runt, out).has_value());
  Bytes many = {std::byte{0}, std::byte{65}, std::byte{0}, std::byte{0}};
  BOOST_TEST(!decode_packets(many, out).has_value());
  Bytes reserved = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{1}};
  BOOST_TEST(!decode_packets(reserved, out).has_value());
  // A writer never takes more than fits.
  Bytes small(100);
  PacketsWriter s(small);
  BOOST_TEST(s.fits(94));
  BOOST_TEST(!s.fits(95));
}

BOOST_AUTO_TEST_CASE(wire_frames_reach_only_the_vnic_of_their_mac_and_vlan) {
  Rig r({{1, kMacA, 0}, {2, kMacB, 100}});
  // Unicast, untagged, to A.
  r.nic->inbound.push_back(frame(kMacA, kWire));
  // B's MAC untagged, and A's MAC on VLAN 100: no such station.
  r.nic->inbound.push_back(frame(kMacB, kWire));
  r.nic->inbound.push_back(frame(kMacA, kWire, 64, 100));
  // Tagged 100 to B: arrives untagged.
  r.nic->inbound.push_back(frame(kMacB, kWire, 68, 100, 0x11));
  // Broadcasts: untagged to A, VLAN 100 to B, VLAN 7 to nobody.
  r.nic->inbound.push_back(frame(kBroadcast, kWire, 64, -1, 0x22));
  r.nic->inbound.push_back(frame(kBroadcast, kWire, 68, 100, 0x33));
  r.nic->inbound.push_back(frame(kBroadcast, kWire, 68, 7, 0x44));
  r.settle();
  const auto& a = r.host(1).got;
  const auto& b = r.host(2).got;
  BOOST_REQUIRE(a.size() == 2u);
  BOOST_TEST((a[0] == frame(kMacA, kWire)));
  BOOST_TEST((a[1] == frame(kBroadcast, kWire, 64, -1, 0x22)));
  BOOST_REQUIRE(b.size() == 2u);
  BOOST_TEST((b[0] == frame(kMacB, kWire, 64, -1, 0x11)));  // 68 bytes less the tag
  BOOST_TEST((b[1] == frame(kBroadcast, kWire, 64, -1, 0x33)));
  BOOST_TEST(r.target->stats().nic_unknown == 2u);
  BOOST_TEST(r.target->stats().nic_rx == 7u);
  BOOST_TEST(r.st(1).rx_packets == 2u);
}

BOOST_AUTO_TEST_CASE(guest_frames_leave_tagged_as_their_vnic_and_never_as_another) {
  Rig r({{1, kMacA, 0}, {2, kMacB, 100}});
  r.send(1, {frame(kWire, kMacA, 100)});
  r.send(2, {frame(kWire, kMacB, 100)});
  BOOST_REQUIRE(r.nic->sent.size() == 2u);
  BOOST_TEST((r.nic->sent[0] == frame(kWire, kMacA, 100)));
  BOOST_TEST((r.nic->sent[1] == frame(kWire, kMacB, 104, 100)));  // the tag inserted
  // A forged source MAC, a guest's own VLAN tag, a frame above the MTU: dropped.
  r.send(1, {frame(kWire, kMacB), frame(kWire, kMacA, 64, 5), frame(kWire, kMacA, 1515)});
  BOOST_TEST(r.nic->sent.size() == 2u);
  BOOST_TEST(r.st(1).spoofed == 1u);
  BOOST_TEST(r.st(1).tx_dropped == 3u);
  BOOST_TEST(r.st(1).tx_packets == 1u);
  // Frames signed with another lease's key are not even looked at.
  const AuthKey other = key(2);
  const auto before = r.target->stats().auth_failures;
  r.send(1, {frame(kWire, kMacA)}, &other);
  BOOST_TEST(r.nic->sent.size() == 2u);
  BOOST_TEST(r.target->stats().auth_failures == before + 1);
}

BOOST_AUTO_TEST_CASE(vnics_on_one_vlan_switch_locally_and_share_broadcasts) {
  Rig r({{1, kMacA, 0}, {2, kMacB, 100}, {3, kMacC, 0}});
  // A to C: both untagged on this port: switched here, never on the wire.
  r.send(1, {frame(kMacC, kMacA, 80, -1, 0x01)});
  BOOST_TEST(r.nic->sent.empty());
  BOOST_REQUIRE(r.host(3).got.size() == 1u);
  BOOST_TEST((r.host(3).got[0] == frame(kMacC, kMacA, 80, -1, 0x01)));
  // A to B's MAC: B is on VLAN 100, so not A's neighbour: it goes to the wire.
  r.send(1, {frame(kMacB, kMacA)});
  BOOST_TEST(r.nic->sent.size() == 1u);
  BOOST_TEST(r.host(2).got.empty());
  // A broadcast of A: the wire and C, not B, not A itself.
  r.send(1, {frame(kBroadcast, kMacA, 64, -1, 0x07)});
  BOOST_TEST(r.nic->sent.size() == 2u);
  BOOST_TEST(r.host(3).got.size() == 2u);
  BOOST_TEST(r.host(2).got.empty());
  BOOST_TEST(r.host(1).got.empty());
}

BOOST_AUTO_TEST_CASE(the_committed_rate_is_policed_both_ways) {
  // 1 Mb/s: 125 kB/s with 10 ms of burst, at least one full frame (1518 bytes).
  Rig r({{1, kMacA, 0, 1}});
  std::vector<Bytes> burst(8, frame(kWire, kMacA, 1000));
  r.send(1, burst);
  const auto st = r.st(1);
  BOOST_TEST(st.tx_packets >= 1u);
  BOOST_TEST(st.tx_packets <= 3u);
  BOOST_TEST(st.policed == 8u - st.tx_packets);
  BOOST_TEST(r.nic->sent.size() == st.tx_packets);
  for (int i = 0; i < 40; ++i) r.nic->inbound.push_back(frame(kMacA, kWire, 1000));
  r.settle();
  BOOST_TEST(r.host(1).got.size() <= 3u);
  BOOST_TEST(r.st(1).policed >= 8u - st.tx_packets + 37u);
  // Tokens come back at the committed rate: 20 ms later about 2.5 kB more.
  std::this_thread::sleep_for(20ms);
  r.send(1, {frame(kWire, kMacA, 1000)});
  BOOST_TEST(r.nic->sent.size() == st.tx_packets + 1);
}

BOOST_AUTO_TEST_SUITE_END()
