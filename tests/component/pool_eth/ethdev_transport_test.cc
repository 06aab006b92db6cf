// EthdevTransport on net_af_packet over a veth pair, in a network namespace
// of the test's own (unshare: it disappears with the process), with the EAL
// in this process: frames arrive intact and trimmed with the sender's MAC,
// bursts, what recv drops and counts (other EtherTypes, runts, bad lengths,
// other MACs, frames beyond the caller's buffer), what send refuses, open's
// errors, a shared port, and a ReliableChannel running over layer 2.
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <rte_ethdev.h>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/transport/ethdev_transport.h"
#include "tests/support/process.h"
#include "vhost-backend/runtime/eal.h"

using namespace viopool;
using namespace viopool::pool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// The namespace, the veth pair in it and the EAL: once per process.
class EthEnv {
 public:
  void setup() {
    instance_ = this;
    // Our own network namespace: the veths and every frame stay in it, and
    // it goes away with the process even if the test dies.
    if (::unshare(CLONE_NEWNET) != 0) {
      why_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root)";
      return;
    }
    // No IPv6 on the new interfaces: no ND or MLD chatter, so the drop
    // counters see only what the tests inject. (Per namespace; absent without IPv6.)
    for (const char* p : {"/proc/sys/net/ipv6/conf/default/disable_ipv6",
                          "/proc/sys/net/ipv6/conf/all/disable_ipv6"}) {
      std::ofstream(p) << "1\n";
    }
    const std::string pid = std::to_string(::getpid());
    if_a_ = "vpe" + pid + "a";
    if_b_ = "vpe" + pid + "b";
    if (viopool::testing::run_shell("ip link add " + if_a_ + " type veth peer name " + if_b_ +
                                    " && ip link set " + if_a_ + " up && ip link set " + if_b_ +
                                    " up") != 0) {
      why_ = "cannot create the veth pair " + if_a_ + "/" + if_b_;
      if_a_.clear();
      return;
    }
    runtime::EalOptions eo;
    eo.program = "component_pool_eth";
    eo.force_no_huge = true;  // --no-huge -m 256 --no-shconf --no-pci
    eo.memory_mb = 256;
    eo.worker_lcores = 0;
    std::string why;
    if (!runtime::init_eal(eo, why).has_value()) {
      why_ = why;
      return;
    }
    eal_ = true;
  }
  void teardown() {
    if (eal_) {
      runtime::cleanup_eal();
    }
    if (!if_a_.empty()) {
      viopool::testing::run_shell("ip link del " + if_a_ + " 2>/dev/null");  // and its peer
    }
    instance_ = nullptr;
  }

  static const EthEnv& get() {
    BOOST_REQUIRE(instance_ != nullptr);
    BOOST_REQUIRE_MESSAGE(instance_->eal_, "environment: " << instance_->why_);
    return *instance_;
  }
  const std::string& if_a() const { return if_a_; }
  const std::string& if_b() const { return if_b_; }

 private:
  static inline EthEnv* instance_ = nullptr;
  std::string if_a_;
  std::string if_b_;
  std::string why_;
  bool eal_ = false;
};

BOOST_TEST_GLOBAL_FIXTURE(EthEnv);

std::string devargs_for(const std::string& iface) {
  static int seq = 0;  // vdev names unique within the process
  return "net_af_packet" + std::to_string(seq++) + ",iface=" + iface;
}

std::unique_ptr<EthdevTransport> open_devargs(const std::string& devargs) {
  EthdevTransportOptions o;
  o.devargs = devargs;
  auto t = EthdevTransport::open(o);
  // (The message is built even when the check passes: error() only on failure.)
  BOOST_REQUIRE_MESSAGE(t.has_value(),
                        "open " << devargs << ": " << (t ? "" : to_string(t.error())));
  return std::move(*t);
}

// A and B on the two ends of the veth pair.
struct EthPair {
  EthPair()
      : devargs_a(devargs_for(EthEnv::get().if_a())),
        a(open_devargs(devargs_a)),
        b(open_devargs(devargs_for(EthEnv::get().if_b()))) {}
  std::string devargs_a;
  std::unique_ptr<EthdevTransport> a;
  std::unique_ptr<EthdevTransport> b;
};

// A real fabric frame of `total` bytes (header and random payload).
std::vector<std::byte> fabric_frame(std::size_t total, std::uint32_t seed) {
  std::vector<std::byte> payload(total - kHeaderBytes);
  std::mt19937 rng(seed);
  for (auto& x : payload) {
    x = static_cast<std::byte>(rng());
  }
  FrameHeader h;
  h.opcode = Opcode::kData;
  h.tag = seed;
  h.seq = seed;
  h.message_length = static_cast<std::uint32_t>(payload.size());
  std::vector<std::byte> out(total);
  auto n = encode_frame(h, payload, out);
  BOOST_REQUIRE(n.has_value());
  BOOST_REQUIRE(*n == total);
  return out;
}

std::vector<OutFrame> out_frames(const std::vector<std::vector<std::byte>>& frames,
                                 const PeerAddress& to) {
  std::vector<OutFrame> out;
  for (const auto& f : frames) {
    out.push_back(OutFrame{f, to});
  }
  return out;
}

// Hands every frame to the transport (retrying what it cannot take yet),
// for at most `limit`; returns how many it took.
std::size_t send_all(Transport& t, std::span<const OutFrame> frames,
                     std::chrono::milliseconds limit = 5s) {
  std::size_t done = 0;
  const auto deadline = Clock::now() + limit;
  while (done < frames.size() && Clock::now() < deadline) {
    const auto n = t.send_burst(frames.subspan(done));
    done += n;
    if (n == 0) {
      std::this_thread::sleep_for(50us);
    }
  }
  return done;
}

struct Received {
  std::vector<std::byte> bytes;
  PeerAddress peer;
};

// Receives until `want` frames arrived or `limit` passed, `burst` buffers of
// `buf_size` bytes (the MTU by default) per call.
std::vector<Received> receive(Transport& t, std::size_t want, std::chrono::milliseconds limit,
                              std::size_t buf_size = 0, std::size_t burst = 32) {
  if (buf_size == 0) {
    buf_size = t.mtu();
  }
  std::vector<std::byte> bufs(burst * buf_size);
  std::vector<InFrame> in(burst);
  std::vector<Received> got;
  const auto deadline = Clock::now() + limit;
  while (got.size() < want && Clock::now() < deadline) {
    for (std::size_t i = 0; i < burst; ++i) {
      in[i] = InFrame{};
      in[i].buf = std::span(bufs).subspan(i * buf_size, buf_size);
    }
    const auto n = t.recv_burst(std::span(in).first(std::min(burst, want - got.size())));
    for (std::uint32_t i = 0; i < n; ++i) {
      got.push_back(Received{{in[i].buf.begin(), in[i].buf.begin() + in[i].len}, in[i].peer});
    }
    if (n == 0) {
      std::this_thread::sleep_for(50us);
    }
  }
  return got;
}

// Exactly one recv_burst call with `burst` MTU-sized buffers.
std::vector<Received> receive_once(Transport& t, std::size_t burst) {
  std::vector<std::byte> bufs(burst * t.mtu());
  std::vector<InFrame> in(burst);
  for (std::size_t i = 0; i < burst; ++i) {
    in[i].buf = std::span(bufs).subspan(i * t.mtu(), t.mtu());
  }
  const auto n = t.recv_burst(in);
  std::vector<Received> got;
  for (std::uint32_t i = 0; i < n; ++i) {
    got.push_back(Received{{in[i].buf.begin(), in[i].buf.begin() + in[i].len}, in[i].peer});
  }
  return got;
}

PeerAddress kernel_mac(const std::string& iface) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  const int rc = ::ioctl(fd, SIOCGIFHWADDR, &ifr);
  ::close(fd);
  BOOST_REQUIRE_MESSAGE(rc == 0, "SIOCGIFHWADDR " << iface << ": " << std::strerror(errno));
  std::uint8_t mac[kMacBytes];
  std::memcpy(mac, ifr.ifr_hwaddr.sa_data, kMacBytes);
  return mac_address(mac);
}

// Raw Ethernet frames written straight onto an interface (AF_PACKET), for
// what a transport would never send.
class Injector {
 public:
  explicit Injector(const std::string& iface) {
    fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: sends only
    BOOST_REQUIRE_MESSAGE(fd_ >= 0, "AF_PACKET socket: " << std::strerror(errno));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(::if_nametoindex(iface.c_str()));
    BOOST_REQUIRE(sll.sll_ifindex != 0);
    BOOST_REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&sll), sizeof(sll)) == 0);
  }
  ~Injector() { ::close(fd_); }
  void send(const std::vector<std::uint8_t>& frame) {
    BOOST_REQUIRE(::send(fd_, frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size()));
  }

 private:
  int fd_ = -1;
};

std::vector<std::uint8_t> eth_header(const PeerAddress& dst, const PeerAddress& src,
                                     std::uint16_t type) {
  std::vector<std::uint8_t> f(dst.bytes.begin(), dst.bytes.begin() + kMacBytes);
  f.insert(f.end(), src.bytes.begin(), src.bytes.begin() + kMacBytes);
  f.push_back(static_cast<std::uint8_t>(type >> 8));
  f.push_back(static_cast<std::uint8_t>(type & 0xff));
  return f;
}

void append(std::vector<std::uint8_t>& to, std::span<const std::byte> b) {
  for (auto x : b) {
    to.push_back(static_cast<std::uint8_t>(x));
  }
}

AuthKey key(std::uint8_t seed) {
  AuthKey k{};
  for (std::uint8_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(seed + i * 5);
  }
  return k;
}

std::vector<std::byte> message_bytes(std::uint32_t tag, std::size_t n) {
  std::vector<std::byte> b(n);
  std::mt19937 rng(tag * 31 + 7);
  for (auto& x : b) {
    x = static_cast<std::byte>(rng());
  }
  return b;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ethdev_transport)

BOOST_AUTO_TEST_CASE(mac_text_round_trips_and_rejects_garbage) {
  auto m = parse_mac("02:0A:ff:00:9b:01");
  BOOST_REQUIRE(m.has_value());
  BOOST_TEST(m->len == kMacBytes);
  BOOST_TEST(mac_to_string(*m) == "02:0a:ff:00:9b:01");
  for (const char* bad : {"", "02:0a:ff:00:9b", "02:0a:ff:00:9b:011", "02-0a-ff-00-9b-01",
                          "0g:0a:ff:00:9b:01", "02:0a:ff:00:9b:0"}) {
    BOOST_TEST(!parse_mac(bad).has_value(), bad);
  }
  PeerAddress not_mac;
  not_mac.len = 4;
  BOOST_TEST(mac_to_string(not_mac) == "?");
}

BOOST_AUTO_TEST_CASE(frames_of_every_size_arrive_intact_with_the_senders_mac) {
  EthPair p;
  const auto& env = EthEnv::get();
  // local() is the interface's own MAC (asked of the kernel in our
  // namespace: /sys still shows the namespace it was mounted in).
  const PeerAddress mac_a = kernel_mac(env.if_a());
  BOOST_TEST((p.a->local() == mac_a));
  BOOST_TEST(mac_to_string(p.a->local()) == mac_to_string(mac_a));
  BOOST_TEST(!(p.a->local() == p.b->local()));
  BOOST_TEST(p.a->mtu() == 1500u);
  // No Rx interrupts on net_af_packet (the PMD has no rx_queue_intr_enable),
  // hence no fd to sleep on: callers poll.
  BOOST_TEST(p.a->wait_fd() == -1);
  BOOST_TEST(rte_eth_dev_rx_intr_enable(p.a->port_id(), 0) == -ENOTSUP);

  std::vector<std::size_t> sizes{56,  57,  59,   60,   61,   64,   100,
                                 128, 512, 1000, 1443, 1444, 1499, 1500};
  std::mt19937 rng(3);
  while (sizes.size() < 400) {
    sizes.push_back(kHeaderBytes + rng() % (1500 - kHeaderBytes + 1));
  }
  std::vector<std::vector<std::byte>> sent;
  std::vector<Received> got;
  constexpr std::size_t kChunk = 25;  // well inside the PMD's receive ring
  for (std::size_t at = 0; at < sizes.size(); at += kChunk) {
    std::vector<std::vector<std::byte>> chunk;
    for (std::size_t i = at; i < std::min(sizes.size(), at + kChunk); ++i) {
      chunk.push_back(fabric_frame(sizes[i], static_cast<std::uint32_t>(i + 1)));
    }
    const auto out = out_frames(chunk, p.b->local());
    BOOST_REQUIRE(send_all(*p.a, out) == out.size());
    auto r = receive(*p.b, chunk.size(), 3s);
    BOOST_REQUIRE_MESSAGE(r.size() == chunk.size(), "chunk at " << at << ": " << r.size());
    sent.insert(sent.end(), chunk.begin(), chunk.end());
    got.insert(got.end(), r.begin(), r.end());
  }
  BOOST_REQUIRE(got.size() == sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {  // in order: one queue, one link
    BOOST_TEST((got[i].bytes == sent[i]), "frame " << i << " of " << sent[i].size() << " bytes");
    BOOST_TEST((got[i].peer == p.a->local()));
  }
  BOOST_TEST(p.a->stats().sent == sent.size());
  BOOST_TEST(p.a->stats().send_errors == 0u);
  BOOST_TEST(p.b->stats().received == sent.size());
  BOOST_TEST(p.b->stats().truncated == 0u);
  const auto& e = p.b->eth_stats();
  BOOST_TEST(e.other_ethertype + e.not_for_us + e.runts + e.malformed == 0u);

  // And back.
  std::vector<std::vector<std::byte>> back;
  for (std::uint32_t i = 0; i < 20; ++i) {
    back.push_back(fabric_frame(56 + i * 70, 1000 + i));
  }
  const auto out = out_frames(back, p.a->local());
  BOOST_REQUIRE(send_all(*p.b, out) == out.size());
  auto r = receive(*p.a, back.size(), 3s);
  BOOST_REQUIRE(r.size() == back.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    BOOST_TEST((r[i].bytes == back[i]));
    BOOST_TEST((r[i].peer == p.b->local()));
  }
}

BOOST_AUTO_TEST_CASE(bursts_larger_than_the_pmd_burst_go_out_and_come_in_whole) {
  EthPair p;
  std::vector<std::vector<std::byte>> frames;
  for (std::uint32_t i = 0; i < 100; ++i) {
    frames.push_back(fabric_frame(100 + i * 13, 50 + i));
  }
  const auto out = out_frames(frames, p.b->local());
  const auto taken = p.a->send_burst(out);
  BOOST_TEST(taken == out.size());  // three PMD bursts and a bit, one call
  BOOST_REQUIRE(send_all(*p.a, std::span(out).subspan(taken)) == out.size() - taken);
  std::this_thread::sleep_for(100ms);  // all of them queued at B
  auto first = receive_once(*p.b, 64);
  BOOST_TEST(first.size() == 64u);  // two PMD bursts in one call
  auto rest = receive(*p.b, frames.size() - first.size(), 3s);
  first.insert(first.end(), rest.begin(), rest.end());
  BOOST_REQUIRE(first.size() == frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST((first[i].bytes == frames[i]), "frame " << i);
  }
}

BOOST_AUTO_TEST_CASE(foreign_runt_and_misdeclared_frames_are_dropped_and_counted) {
  EthPair p;
  const PeerAddress a = p.a->local();
  const PeerAddress b = p.b->local();
  Injector inj(EthEnv::get().if_a());

  auto ipv6 = eth_header(b, a, 0x86DD);  // an IPv6 packet's worth of bytes
  ipv6.resize(ipv6.size() + 86, 0x60);
  inj.send(ipv6);

  auto vlan = eth_header(b, a, 0x8100);  // VLAN-tagged fabric frame: no VLAN support
  vlan.insert(vlan.end(), {0x00, 0x05, 0x88, 0xB5});
  append(vlan, fabric_frame(100, 1));
  inj.send(vlan);

  auto runt = eth_header(b, a, kEtherType);  // less than a fabric header
  runt.resize(runt.size() + 20, 0);
  inj.send(runt);

  auto liar = eth_header(b, a, kEtherType);  // `length` claims more than arrived
  append(liar, fabric_frame(200, 2));
  liar.resize(kEthHeaderBytes + 150);
  inj.send(liar);

  PeerAddress other = *parse_mac("02:00:00:00:00:99");
  auto elsewhere = eth_header(other, a, kEtherType);  // for another MAC
  append(elsewhere, fabric_frame(100, 3));
  inj.send(elsewhere);

  const auto smallest = fabric_frame(kHeaderBytes, 4);  // padded behind: trimmed
  auto padded = eth_header(b, a, kEtherType);
  append(padded, smallest);
  padded.resize(padded.size() + 18, 0);
  inj.send(padded);

  const auto exact = fabric_frame(200, 5);
  auto plain = eth_header(b, a, kEtherType);
  append(plain, exact);
  inj.send(plain);

  auto r = receive(*p.b, 2, 3s);
  BOOST_REQUIRE(r.size() == 2u);
  BOOST_TEST((r[0].bytes == smallest));
  BOOST_TEST((r[0].peer == a));
  BOOST_TEST((r[1].bytes == exact));
  const auto& e = p.b->eth_stats();
  BOOST_TEST(e.other_ethertype == 2u);
  BOOST_TEST(e.runts == 1u);
  BOOST_TEST(e.malformed == 1u);
  BOOST_TEST(e.not_for_us == 1u);
  BOOST_TEST(p.b->stats().received == 2u);
  BOOST_TEST(p.b->stats().truncated == 0u);
}

BOOST_AUTO_TEST_CASE(frames_longer_than_the_callers_buffer_are_dropped_as_truncated) {
  EthPair p;
  const auto big = fabric_frame(300, 1);
  const auto small = fabric_frame(80, 2);
  const std::vector<OutFrame> out{{big, p.b->local()}, {small, p.b->local()}};
  BOOST_REQUIRE(send_all(*p.a, out) == 2u);
  auto r = receive(*p.b, 1, 3s, /*buf_size=*/128);
  BOOST_REQUIRE(r.size() == 1u);
  BOOST_TEST((r[0].bytes == small));
  BOOST_TEST(p.b->stats().truncated == 1u);
  BOOST_TEST(p.b->stats().received == 1u);
}

BOOST_AUTO_TEST_CASE(frames_that_cannot_go_out_are_refused_and_counted_not_sent) {
  EthPair p;
  const auto ok1 = fabric_frame(100, 1);
  const auto too_big = fabric_frame(1501, 2);
  const std::vector<std::byte> too_short(10, std::byte{0x56});
  const auto ok2 = fabric_frame(200, 3);
  PeerAddress not_mac;
  not_mac.len = 4;
  const std::vector<OutFrame> out{{ok1, p.b->local()},
                                  {too_big, p.b->local()},
                                  {too_short, p.b->local()},
                                  {ok2, p.b->local()},
                                  {ok2, not_mac}};
  BOOST_TEST(p.a->send_burst(out) == out.size());  // refused ones are consumed, not retried
  BOOST_TEST(p.a->stats().send_errors == 3u);
  BOOST_TEST(p.a->stats().sent == 2u);
  auto r = receive(*p.b, 2, 3s);
  BOOST_REQUIRE(r.size() == 2u);
  BOOST_TEST((r[0].bytes == ok1));
  BOOST_TEST((r[1].bytes == ok2));
  BOOST_TEST(receive(*p.b, 1, 200ms).empty());  // and nothing else
  BOOST_TEST(p.b->eth_stats().runts == 0u);
}

BOOST_AUTO_TEST_CASE(open_rejects_bad_options_and_leaks_no_port) {
  const auto& env = EthEnv::get();
  const unsigned ports_before = rte_eth_dev_count_avail();
  auto code = [](const EthdevTransportOptions& o) {
    auto t = EthdevTransport::open(o);
    return t.has_value() ? Errc::kOk : t.error().code;
  };
  EthdevTransportOptions o;
  BOOST_TEST((code(o) == Errc::kInvalidArgument));  // neither devargs nor port
  o.devargs = devargs_for(env.if_a());
  o.port_id = 0;
  BOOST_TEST((code(o) == Errc::kInvalidArgument));  // both
  o.port_id.reset();
  o.mtu = 40;
  BOOST_TEST((code(o) == Errc::kInvalidArgument));  // below a fabric header
  o.mtu = 9601;
  BOOST_TEST((code(o) == Errc::kInvalidArgument));
  o.mtu = 9000;  // beyond net_af_packet's 1518-byte frames
  BOOST_TEST((code(o) == Errc::kInvalidArgument));
  o.mtu = 1500;
  o.rx_queue = 1;
  BOOST_TEST((code(o) == Errc::kInvalidArgument));  // an owned port has queue 0 only
  o.rx_queue = 0;
  o.devargs = devargs_for("vpenosuch0");
  BOOST_TEST((code(o) == Errc::kNotFound));  // no such interface
  BOOST_TEST(rte_eth_dev_count_avail() == ports_before);

  EthPair p;
  o.devargs = p.devargs_a;  // a second owner would reconfigure the port under A
  BOOST_TEST((code(o) == Errc::kAlreadyExists));
  EthdevTransportOptions shared;
  shared.port_id = RTE_MAX_ETHPORTS - 1;
  BOOST_TEST((code(shared) == Errc::kNotFound));
  shared.port_id = p.a->port_id();
  shared.rx_queue = 3;
  BOOST_TEST((code(shared) == Errc::kInvalidArgument));  // a queue the port lacks
  shared.rx_queue = 0;
  shared.mtu = 4000;
  BOOST_TEST((code(shared) == Errc::kInvalidArgument));  // above the port's MTU
  BOOST_TEST(rte_eth_dev_count_avail() == ports_before + 2);
}

BOOST_AUTO_TEST_CASE(a_port_opened_by_id_is_shared_and_left_running) {
  EthPair p;
  {
    EthdevTransportOptions o;
    o.port_id = p.a->port_id();
    auto shared = EthdevTransport::open(o);
    BOOST_REQUIRE_MESSAGE(shared.has_value(), (shared ? "" : to_string(shared.error())));
    BOOST_TEST(((*shared)->local() == p.a->local()));
    const auto f = fabric_frame(300, 9);
    const std::vector<OutFrame> out(10, OutFrame{f, p.b->local()});
    BOOST_REQUIRE(send_all(**shared, out) == out.size());
    auto r = receive(*p.b, out.size(), 3s);
    BOOST_REQUIRE(r.size() == out.size());
    BOOST_TEST((r.back().bytes == f));
    BOOST_TEST((r.back().peer == p.a->local()));
  }  // closes nothing: the port is A's
  const auto g = fabric_frame(100, 10);
  const std::vector<OutFrame> out{{g, p.b->local()}};
  BOOST_REQUIRE(send_all(*p.a, out) == 1u);
  auto r = receive(*p.b, 1, 3s);
  BOOST_REQUIRE(r.size() == 1u);
  BOOST_TEST((r[0].bytes == g));
}

BOOST_AUTO_TEST_CASE(reliable_channels_run_over_layer_2_both_ways) {
  EthPair p;
  auto auth_a = FrameAuthenticator::create(key(6));
  auto auth_b = FrameAuthenticator::create(key(6));
  BOOST_REQUIRE(auth_a.has_value());
  BOOST_REQUIRE(auth_b.has_value());
  ChannelOptions o;
  o.function_id = 12;
  o.queue_id = 2;
  ReliableChannel ca(*p.a, p.b->local(), auth_a->get(), o);
  ReliableChannel cb(*p.b, p.a->local(), auth_b->get(), o);
  constexpr std::uint32_t kMessages = 300;
  std::map<std::uint32_t, std::size_t> sizes;
  std::mt19937 rng(8);
  for (std::uint32_t tag = 1; tag <= kMessages; ++tag) {
    sizes[tag] = rng() % 5000;  // up to 4 fragments at MTU 1500
    BOOST_REQUIRE(ca.send(Opcode::kRequest, tag, message_bytes(tag, sizes[tag])).has_value());
    BOOST_REQUIRE(
        cb.send(Opcode::kData, tag + 100000, message_bytes(tag + 100000, sizes[tag])).has_value());
  }
  std::vector<ChannelMessage> at_a;
  std::vector<ChannelMessage> at_b;
  const auto deadline = Clock::now() + 30s;
  while ((at_a.size() < kMessages || at_b.size() < kMessages || !ca.idle() || !cb.idle()) &&
         Clock::now() < deadline) {
    const bool w = ca.poll(Clock::now(), at_a) | cb.poll(Clock::now(), at_b);
    if (!w) {
      std::this_thread::sleep_for(20us);  // no Rx interrupts: a short sleep when idle
    }
  }
  BOOST_TEST(at_b.size() == kMessages);
  BOOST_TEST(at_a.size() == kMessages);
  std::map<std::uint32_t, int> seen;
  for (const auto& m : at_b) {
    ++seen[m.tag];
    BOOST_TEST((m.opcode == Opcode::kRequest));
    BOOST_TEST((m.payload == message_bytes(m.tag, sizes[m.tag])), "tag " << m.tag);
  }
  for (const auto& m : at_a) {
    ++seen[m.tag];
    BOOST_TEST((m.payload == message_bytes(m.tag, sizes[m.tag - 100000])), "tag " << m.tag);
  }
  BOOST_TEST(seen.size() == 2 * kMessages);  // each exactly once
  BOOST_TEST(ca.stats().auth_failures + cb.stats().auth_failures == 0u);
  BOOST_TEST(ca.stats().malformed + cb.stats().malformed == 0u);
  BOOST_TEST(!ca.broken());
  BOOST_TEST(!cb.broken());
  const auto frames_ab = ca.stats().frames_sent;
  BOOST_TEST(frames_ab > kMessages);  // fragmentation happened
  BOOST_TEST(p.a->eth_stats().other_ethertype + p.b->eth_stats().other_ethertype == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
