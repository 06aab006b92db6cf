// VolumeTarget over the in-process loopback, driven by a bare ReliableChannel
// playing the host: the handshake and config space, data written and read
// back (fragmented), and every malformed or forbidden request answered with
// its errno while the channel and the volume stay usable. Frames for unknown
// functions or with a wrong key are dropped and counted, never answered;
// requests on a channel that was never opened get a NAK.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/appliance/appliance_config.h"
#include "pool-manager/target/volume_target.h"
#include "pool-manager/transport/loopback_transport.h"
#include "pool-manager/transport/udp_transport.h"

using namespace viopool;
using namespace viopool::pool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kFunction = 3;
constexpr std::uint64_t kCapacity = 8 << 20;

AuthKey key(std::uint8_t seed) {
  AuthKey k{};
  for (std::uint8_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(seed + i);
  }
  return k;
}

struct Rig {
  std::string image;
  std::unique_ptr<LoopbackTransport> host_t;
  std::unique_ptr<LoopbackTransport> target_t;
  std::unique_ptr<VolumeTarget> target;
  std::unique_ptr<FrameAuthenticator> auth;
  std::unique_ptr<ReliableChannel> ch;
  std::vector<ChannelMessage> got;
  std::uint64_t lease = 0;  // named in the HELLO

  explicit Rig(bool read_only = false, AuthKey host_key = key(1), std::uint16_t queue = 0) {
    char tmpl[] = "/tmp/vp-target-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::ftruncate(fd, kCapacity) == 0);
    ::close(fd);
    image = tmpl;
    auto [a, b] = LoopbackTransport::make_pair(1500);
    host_t = std::move(a);
    target_t = std::move(b);
    TargetOptions o;
    VolumeExport v;
    v.name = "vol-a";
    v.function_id = kFunction;
    v.key = key(1);
    v.backend.path = image;
    v.backend.read_only = read_only;
    v.queues = 2;
    v.max_io_bytes = 64 * 1024;
    o.volumes.push_back(v);
    std::string why;
    auto t = VolumeTarget::create(*target_t, o, why);
    BOOST_REQUIRE_MESSAGE(t.has_value(), why);
    target = std::move(*t);
    auth = std::move(*FrameAuthenticator::create(host_key));
    open(queue);
  }
  ~Rig() { ::unlink(image.c_str()); }

  void open(std::uint16_t queue, std::uint8_t nonce = 1) {
    ChannelOptions co;
    co.function_id = kFunction;
    co.queue_id = queue;
    co.max_retries = 8;
    ch = std::make_unique<ReliableChannel>(*host_t, target_t->local(), auth.get(), co);
    got.clear();
    Hello h;
    h.node_id = 9;
    h.mtu = 1500;
    h.window = 64;
    h.lease_id = lease;
    h.nonce.fill(nonce);
    std::byte buf[kHelloBytes];
    BOOST_REQUIRE(encode_hello(h, buf).has_value());
    BOOST_REQUIRE(ch->send(Opcode::kHello, 0, buf).has_value());
  }

  // Polls both sides until a message with `tag` (or of opcode `op`) came back.
  std::optional<ChannelMessage> wait(std::uint32_t tag, Opcode op,
                                     std::chrono::milliseconds limit = 2000ms) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      ch->poll(Clock::now(), got);
      target->poll(Clock::now());
      for (auto it = got.begin(); it != got.end(); ++it) {
        if (it->opcode == op && (op != Opcode::kCompletion || it->tag == tag)) {
          ChannelMessage m = std::move(*it);
          got.erase(it);
          return m;
        }
      }
      std::this_thread::sleep_for(20us);
    }
    return std::nullopt;
  }

  // Sends a request and returns its completion (status, and the read data).
  std::pair<std::int32_t, std::vector<std::byte>> request(std::uint32_t tag, BlockRequest r,
                                                          std::span<const std::byte> data = {}) {
    std::byte head[kBlockRequestBytes];
    BOOST_REQUIRE(encode_block_request(r, head).has_value());
    BOOST_REQUIRE(ch->send(Opcode::kRequest, tag, head, data).has_value());
    auto m = wait(tag, Opcode::kCompletion);
    BOOST_REQUIRE_MESSAGE(m.has_value(), "no completion for tag " << tag);
    auto c = decode_completion(m->payload);
    BOOST_REQUIRE(c.has_value());
    return {c->status,
            std::vector<std::byte>(m->payload.begin() + kCompletionBytes, m->payload.end())};
  }
};

BlockRequest req(BlockOp op, std::uint64_t offset, std::uint32_t length, std::uint8_t flags = 0) {
  BlockRequest r;
  r.op = op;
  r.offset = offset;
  r.length = length;
  r.flags = flags;
  return r;
}

std::vector<std::byte> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  }
  return b;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(volume_target)

BOOST_AUTO_TEST_CASE(handshake_and_config_space_describe_the_volume) {
  Rig rig;
  auto ack = rig.wait(0, Opcode::kHelloAck);
  BOOST_REQUIRE(ack.has_value());
  auto h = decode_hello(ack->payload);
  BOOST_REQUIRE(h.has_value());
  BOOST_TEST(h->mtu == 1500u);
  std::byte range[kConfigRangeBytes];
  BOOST_REQUIRE(encode_config_range({0, 96}, range).has_value());
  BOOST_REQUIRE(rig.ch->send(Opcode::kConfigRead, 1, range).has_value());
  auto cfg = rig.wait(1, Opcode::kConfigData);
  BOOST_REQUIRE(cfg.has_value());
  BOOST_REQUIRE(cfg->payload.size() == kConfigRangeBytes + 96);
  const auto space = std::span<const std::byte>(cfg->payload).subspan(kConfigRangeBytes);
  auto vi = decode_volume_info(space);
  BOOST_REQUIRE(vi.has_value());
  BOOST_TEST(vi->capacity_bytes == kCapacity);
  BOOST_TEST(vi->block_size == 512u);
  BOOST_TEST(vi->queues == 2u);
  BOOST_TEST(vi->max_io_bytes == 64u * 1024);
  BOOST_TEST((vi->flags & kVolumeReadOnly) == 0u);
  BOOST_TEST(std::strncmp(reinterpret_cast<const char*>(space.data() + kVolumeNameOffset), "vol-a",
                          kVolumeNameBytes) == 0);
  BOOST_TEST(rig.target->stats().hellos == 1u);
}

BOOST_AUTO_TEST_CASE(written_data_reads_back_through_fragments) {
  Rig rig;
  const auto data = pattern(48 * 1024, 5);  // 33 frames at MTU 1500
  auto [ws, wdata] = rig.request(10, req(BlockOp::kWrite, 1 << 20, 48 * 1024), data);
  BOOST_TEST(ws == 0);
  BOOST_TEST(wdata.empty());
  auto [rs, rdata] = rig.request(11, req(BlockOp::kRead, 1 << 20, 48 * 1024));
  BOOST_TEST(rs == 0);
  BOOST_TEST((rdata == data));
  auto [fs, fdata] = rig.request(12, req(BlockOp::kFlush, 0, 0));
  BOOST_TEST(fs == 0);
  // Write-zeroes and discard read back as zeroes.
  BOOST_TEST(rig.request(13, req(BlockOp::kWriteZeroes, 1 << 20, 4096)).first == 0);
  BOOST_TEST(rig.request(14, req(BlockOp::kDiscard, (1 << 20) + 8192, 4096)).first == 0);
  auto [zs, zdata] = rig.request(15, req(BlockOp::kRead, 1 << 20, 16384));
  BOOST_TEST(zs == 0);
  BOOST_TEST(std::all_of(zdata.begin(), zdata.begin() + 4096,
                         [](std::byte b) { return b == std::byte{0}; }));
  BOOST_TEST(std::equal(zdata.begin() + 4096, zdata.begin() + 8192, data.begin() + 4096));
  BOOST_TEST(std::all_of(zdata.begin() + 8192, zdata.begin() + 12288,
                         [](std::byte b) { return b == std::byte{0}; }));
  const auto s = rig.target->stats();
  BOOST_TEST(s.bytes_written == 48u * 1024);
  BOOST_TEST(s.errors == 0u);
}

BOOST_AUTO_TEST_CASE(bad_requests_get_their_errno_and_change_nothing) {
  Rig rig;
  const auto data = pattern(4096, 9);
  BOOST_TEST(rig.request(1, req(BlockOp::kWrite, 0, 4096), data).first == 0);
  struct Case {
    const char* what;
    BlockRequest r;
    std::size_t data_bytes;
    std::int32_t want;
  };
  const Case cases[] = {
      {"read past the end", req(BlockOp::kRead, kCapacity - 512, 1024), 0, -ENOSPC},
      {"offset overflow (malformed)", req(BlockOp::kRead, ~0ull << 9, 1024), 0, -EINVAL},
      {"zero-length read", req(BlockOp::kRead, 0, 0), 0, -EINVAL},
      {"misaligned offset", req(BlockOp::kRead, 100, 512), 0, -EINVAL},
      {"misaligned length", req(BlockOp::kRead, 0, 700), 0, -EINVAL},
      {"above max_io_bytes", req(BlockOp::kRead, 0, 128 * 1024), 0, -EINVAL},
      {"read carrying data", req(BlockOp::kRead, 0, 512), 512, -EINVAL},
      {"write shorter than its length", req(BlockOp::kWrite, 0, 4096), 512, -EINVAL},
      {"flags on a read", req(BlockOp::kRead, 0, 512, 1), 0, -EINVAL},
      {"flush with a length", req(BlockOp::kFlush, 0, 512), 0, -EINVAL},
      {"discard past the end", req(BlockOp::kDiscard, kCapacity, 512), 0, -ENOSPC},
      {"unmap on a discard", req(BlockOp::kDiscard, 0, 512, kBlockFlagUnmap), 0, -EINVAL},
  };
  std::uint32_t tag = 100;
  for (const auto& c : cases) {
    const std::vector<std::byte> d(c.data_bytes, std::byte{0x77});
    BOOST_TEST_CONTEXT(c.what) { BOOST_TEST(rig.request(tag++, c.r, d).first == c.want); }
  }
  // An undecodable request (unknown op) fails too.
  std::byte head[kBlockRequestBytes] = {};
  head[0] = std::byte{9};
  BOOST_REQUIRE(rig.ch->send(Opcode::kRequest, 999, head).has_value());
  auto m = rig.wait(999, Opcode::kCompletion);
  BOOST_REQUIRE(m.has_value());
  BOOST_TEST(decode_completion(m->payload)->status == -EINVAL);
  // The data written first is intact and the channel still works.
  auto [rs, rdata] = rig.request(tag++, req(BlockOp::kRead, 0, 4096));
  BOOST_TEST(rs == 0);
  BOOST_TEST((rdata == data));
}

BOOST_AUTO_TEST_CASE(a_read_only_volume_refuses_every_change) {
  Rig rig(true);
  const auto data = pattern(512, 1);
  BOOST_TEST(rig.request(1, req(BlockOp::kWrite, 0, 512), data).first == -EROFS);
  BOOST_TEST(rig.request(2, req(BlockOp::kDiscard, 0, 512)).first == -EROFS);
  BOOST_TEST(rig.request(3, req(BlockOp::kWriteZeroes, 0, 512)).first == -EROFS);
  BOOST_TEST(rig.request(4, req(BlockOp::kRead, 0, 512)).first == 0);
}

BOOST_AUTO_TEST_CASE(forged_and_foreign_frames_are_dropped_and_counted) {
  Rig rig(false, key(2));  // the host signs with another key
  BOOST_TEST(!rig.wait(0, Opcode::kHelloAck, 300ms).has_value());
  const auto s = rig.target->stats();
  BOOST_TEST(s.auth_failures > 0u);
  BOOST_TEST(s.hellos == 0u);
  BOOST_TEST(s.naks == 0u);  // never answered

  // A function the target does not have: dropped, not answered either.
  Rig other;
  ChannelOptions co;
  co.function_id = kFunction + 1;
  ReliableChannel stray(*other.host_t, other.target_t->local(), other.auth.get(), co);
  std::byte buf[kHelloBytes] = {};
  BOOST_REQUIRE(stray.send(Opcode::kHello, 0, buf).has_value());
  std::vector<ChannelMessage> got;
  for (int i = 0; i < 50; ++i) {
    stray.poll(Clock::now(), got);
    other.target->poll(Clock::now());
    std::this_thread::sleep_for(1ms);
  }
  BOOST_TEST(other.target->stats().unknown_function > 0u);
}

BOOST_AUTO_TEST_CASE(requests_without_a_channel_are_refused_with_a_nak) {
  Rig rig;
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());
  // Queue 1 was never opened with a HELLO (as after an appliance restart).
  ChannelOptions co;
  co.function_id = kFunction;
  co.queue_id = 1;
  ReliableChannel fresh(*rig.host_t, rig.target_t->local(), rig.auth.get(), co);
  std::byte head[kBlockRequestBytes];
  BOOST_REQUIRE(encode_block_request(req(BlockOp::kRead, 0, 512), head).has_value());
  BOOST_REQUIRE(fresh.send(Opcode::kRequest, 5, head).has_value());
  std::vector<ChannelMessage> got;
  bool nak = false;
  for (int i = 0; i < 200 && !nak; ++i) {
    fresh.poll(Clock::now(), got);
    rig.target->poll(Clock::now());
    for (const auto& m : got) {
      if (m.opcode == Opcode::kNak) {
        nak = decode_nak(m.payload).value_or(NakReason::kNoResources) == NakReason::kNotEstablished;
      }
    }
    std::this_thread::sleep_for(200us);
  }
  BOOST_TEST(nak);
  BOOST_TEST(rig.target->stats().requests == 0u);
}

BOOST_AUTO_TEST_CASE(a_queue_beyond_the_volume_is_refused) {
  Rig rig(false, key(1), 7);  // the volume serves queues 0 and 1
  std::vector<ChannelMessage> got;
  bool nak = false;
  for (int i = 0; i < 200 && !nak; ++i) {
    rig.ch->poll(Clock::now(), got);
    rig.target->poll(Clock::now());
    for (const auto& m : got) {
      nak |= m.opcode == Opcode::kNak &&
             decode_nak(m.payload).value_or(NakReason::kNotEstablished) == NakReason::kNoResources;
    }
    std::this_thread::sleep_for(200us);
  }
  BOOST_TEST(nak);
  BOOST_TEST(rig.target->stats().channels == 0u);
}

BOOST_AUTO_TEST_CASE(a_new_hello_resets_the_channel) {
  Rig rig;
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());
  const auto data = pattern(4096, 3);
  BOOST_TEST(rig.request(1, req(BlockOp::kWrite, 8192, 4096), data).first == 0);
  rig.open(0, 2);  // the host restarted: new nonce, sequence numbers from 1
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());
  auto [rs, rdata] = rig.request(2, req(BlockOp::kRead, 8192, 4096));
  BOOST_TEST(rs == 0);
  BOOST_TEST((rdata == data));
  const auto s = rig.target->stats();
  BOOST_TEST(s.hellos == 2u);
  BOOST_TEST(s.channels == 1u);
  BOOST_TEST(s.channels_closed == 1u);
}

BOOST_AUTO_TEST_CASE(a_new_link_of_the_same_host_queue_fences_the_old_one) {
  // Real sockets: the reconnecting host queue speaks from a new port.
  char tmpl[] = "/tmp/vp-fence-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(::ftruncate(fd, kCapacity) == 0);
  ::close(fd);
  auto tt = UdpTransport::open({"127.0.0.1:0"});
  BOOST_REQUIRE(tt.has_value());
  TargetOptions o;
  VolumeExport v;
  v.name = "vol-f";
  v.function_id = kFunction;
  v.key = key(1);
  v.backend.path = tmpl;
  o.volumes.push_back(v);
  o.max_channels_per_volume = 1;
  std::string why;
  auto target = VolumeTarget::create(**tt, o, why);
  BOOST_REQUIRE_MESSAGE(target.has_value(), why);
  auto auth = std::move(*FrameAuthenticator::create(key(1)));
  struct Link {
    std::unique_ptr<UdpTransport> t;
    std::unique_ptr<ReliableChannel> ch;
    std::vector<ChannelMessage> got;
  };
  const auto open_link = [&](std::uint8_t link_no, std::uint8_t instance = 0xab) {
    Link l;
    l.t = std::move(*UdpTransport::open({"127.0.0.1:0"}));
    ChannelOptions co;
    co.function_id = kFunction;
    co.max_retries = 8;
    l.ch = std::make_unique<ReliableChannel>(*l.t, (*tt)->local(), auth.get(), co);
    Hello h;
    h.mtu = 1472;
    h.window = 64;
    h.nonce.fill(instance);  // the same host queue instance...
    h.nonce[15] = link_no;   // ...on its n-th link
    std::byte buf[kHelloBytes];
    BOOST_REQUIRE(encode_hello(h, buf).has_value());
    BOOST_REQUIRE(l.ch->send(Opcode::kHello, 0, buf).has_value());
    return l;
  };
  const auto wait_for = [&](Link& l, Opcode op) {
    for (int i = 0; i < 2000; ++i) {
      l.ch->poll(Clock::now(), l.got);
      (*target)->poll(Clock::now());
      for (const auto& m : l.got) {
        if (m.opcode == op) {
          return true;
        }
      }
      std::this_thread::sleep_for(100us);
    }
    return false;
  };
  Link first = open_link(1);
  BOOST_REQUIRE(wait_for(first, Opcode::kHelloAck));
  Link second = open_link(2);
  BOOST_REQUIRE(wait_for(second, Opcode::kHelloAck));
  auto s = (*target)->stats();
  BOOST_TEST(s.hellos == 2u);
  BOOST_TEST(s.channels == 1u);  // the first link is gone
  BOOST_TEST(s.channels_closed == 1u);
  // Whatever the old link still sends is refused, never executed.
  std::byte head[kBlockRequestBytes];
  BOOST_REQUIRE(encode_block_request(req(BlockOp::kWrite, 0, 512), head).has_value());
  const std::vector<std::byte> data(512, std::byte{0x42});
  BOOST_REQUIRE(first.ch->send(Opcode::kRequest, 7, head, data).has_value());
  first.got.clear();
  BOOST_TEST(wait_for(first, Opcode::kNak));
  BOOST_TEST((*target)->stats().requests == 0u);
  // Another host queue finds the volume's channel budget (1 here) spent.
  Link other = open_link(1, 0xcd);
  BOOST_TEST(wait_for(other, Opcode::kNak));
  BOOST_TEST((*target)->stats().channels == 1u);
  ::unlink(tmpl);
}

BOOST_AUTO_TEST_CASE(appliance_config_is_strict) {
  std::string why;
  auto good = parse_appliance_config(
      nlohmann::json::parse(R"({"listen": "127.0.0.1:7400", "mtu": 8972, "poll_idle_us": 150, "volumes": [
        {"name": "v0", "function_id": 1, "key": "000102030405060708090a0b0c0d0e0f",
         "path": "/tmp/x", "queues": 2, "direct": "off", "max_io_bytes": 131072}]})"),
      why);
  BOOST_REQUIRE_MESSAGE(good.has_value(), why);
  BOOST_TEST(good->mtu == 8972u);
  BOOST_TEST(good->target.poll_idle.count() == 150);
  auto dflt = parse_appliance_config(nlohmann::json::parse(R"({"volumes": []})"), why);
  BOOST_REQUIRE_MESSAGE(dflt.has_value(), why);
  BOOST_TEST(dflt->target.poll_idle.count() == 100);
  BOOST_TEST(good->target.volumes.at(0).queues == 2u);
  BOOST_TEST(good->target.volumes.at(0).max_io_bytes == 131072u);
  BOOST_TEST((*good->target.volumes.at(0).key)[15] == 0x0f);
  const char* bad[] = {
      R"({"volumes": [{"name": "v0", "function_id": 1, "key": "00", "path": "/x"}]})",
      R"({"volumes": [{"name": "v0", "function_id": 0, "key": "000102030405060708090a0b0c0d0e0f", "path": "/x"}]})",
      R"({"volumes": [{"name": "v0", "function_id": 1, "key": "000102030405060708090a0b0c0d0e0f", "path": "/x", "colour": 1}]})",
      R"({"volumes": [{"name": "v0", "function_id": 1, "key": "000102030405060708090a0b0c0d0e0f", "path": "/x"},
                      {"name": "v0", "function_id": 2, "key": "000102030405060708090a0b0c0d0e0f", "path": "/y"}]})",
      R"({"volumes": [{"name": "v0", "function_id": 1, "key": "000102030405060708090a0b0c0d0e0f", "path": "/x"},
                      {"name": "v1", "function_id": 1, "key": "000102030405060708090a0b0c0d0e0f", "path": "/y"}]})",
      R"({"mtu": 100, "volumes": []})",
      R"({"listen": 5, "volumes": []})",
      R"({"volumes": {}})",
      R"({"poll_idle_us": -1, "volumes": []})",
      R"({"poll_idle_us": 2000000, "volumes": []})",
  };
  for (const char* b : bad) {
    why.clear();
    BOOST_TEST_CONTEXT(b) {
      BOOST_TEST(!parse_appliance_config(nlohmann::json::parse(b), why).has_value());
      BOOST_TEST(!why.empty());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(volume_target_leases)

BOOST_AUTO_TEST_CASE(a_granted_lease_opens_channels_and_a_revoked_one_is_fenced) {
  Rig rig;
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());  // the static grant (lease 0)
  rig.target->grant(kFunction, 7, key(50));
  // A HELLO naming lease 7 but signed with the static key: dropped.
  rig.lease = 7;
  const auto fails = rig.target->stats().auth_failures;
  rig.open(1, 2);
  BOOST_TEST(!rig.wait(0, Opcode::kHelloAck, 200ms).has_value());
  BOOST_TEST(rig.target->stats().auth_failures > fails);
  // Signed with the lease's key: served.
  rig.auth = std::move(*FrameAuthenticator::create(key(50)));
  rig.open(1, 3);
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());
  const auto data = pattern(4096, 9);
  BOOST_TEST(rig.request(20, req(BlockOp::kWrite, 0, 4096), data).first == 0);
  BOOST_TEST(rig.target->volume_stats(kFunction)->grants == 2u);
  // Revoked: the channel is told GOODBYE and new HELLOs are dropped.
  rig.target->revoke(kFunction, 7);
  BOOST_TEST(rig.wait(0, Opcode::kGoodbye, 500ms).has_value());
  rig.open(1, 4);
  BOOST_TEST(!rig.wait(0, Opcode::kHelloAck, 200ms).has_value());
  BOOST_TEST(rig.target->volume_stats(kFunction)->grants == 1u);
  BOOST_TEST(rig.target->volume_stats(kFunction)->channels == 1u);  // lease 0's
  // A new key for the lease (reassigned) works; the old one does not.
  rig.target->grant(kFunction, 7, key(60));
  rig.open(1, 5);
  BOOST_TEST(!rig.wait(0, Opcode::kHelloAck, 200ms).has_value());
  rig.auth = std::move(*FrameAuthenticator::create(key(60)));
  rig.open(1, 6);
  BOOST_TEST(rig.wait(0, Opcode::kHelloAck).has_value());
}

BOOST_AUTO_TEST_CASE(volumes_come_and_go_at_runtime) {
  Rig rig;
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());
  VolumeExport e;
  e.name = "vol-b";
  e.function_id = 11;
  e.backend.path = rig.image;
  e.backend.extent_offset = 1 << 20;
  e.backend.extent_bytes = 2 << 20;
  e.queues = 1;
  std::string why;
  BOOST_REQUIRE_MESSAGE(rig.target->add_volume(e, why).has_value(), why);
  BOOST_TEST(rig.target->volumes().size() == 2u);
  BOOST_TEST(rig.target->volumes().back().capacity_bytes == 2u << 20);
  // Same id again: refused, nothing changes.
  e.name = "vol-c";
  BOOST_TEST(!rig.target->add_volume(e, why).has_value());
  BOOST_TEST(rig.target->volumes().size() == 2u);
  // An extent past the image's end: refused with the reason.
  e.function_id = 12;
  e.backend.extent_offset = kCapacity;
  BOOST_TEST(!rig.target->add_volume(e, why).has_value());
  BOOST_TEST(why.find("extent") != std::string::npos);
  // Removing the first volume closes its channel (GOODBYE).
  rig.target->remove_volume(kFunction);
  BOOST_TEST(rig.wait(0, Opcode::kGoodbye, 500ms).has_value());
  BOOST_TEST(rig.target->volumes().size() == 1u);
  BOOST_TEST(!rig.target->volume_stats(kFunction).has_value());
}

BOOST_AUTO_TEST_CASE(an_extent_volume_reads_and_writes_only_its_extent) {
  Rig rig;
  BOOST_REQUIRE(rig.wait(0, Opcode::kHelloAck).has_value());
  VolumeExport e;
  e.name = "vol-x";
  e.function_id = 21;
  e.key = key(70);
  e.backend.path = rig.image;
  e.backend.extent_offset = 3 << 20;
  e.backend.extent_bytes = 1 << 20;
  e.queues = 1;
  std::string why;
  BOOST_REQUIRE_MESSAGE(rig.target->add_volume(e, why).has_value(), why);
  // Through the extent volume, write at 0; through the whole image, it is at 3 MiB.
  Rig* r = &rig;
  auto whole_auth = std::move(r->auth);
  r->auth = std::move(*FrameAuthenticator::create(key(70)));
  ChannelOptions co;
  co.function_id = 21;
  co.queue_id = 0;
  r->ch = std::make_unique<ReliableChannel>(*r->host_t, r->target_t->local(), r->auth.get(), co);
  Hello h;
  h.mtu = 1500;
  h.window = 64;
  h.nonce.fill(9);
  std::byte buf[kHelloBytes];
  BOOST_REQUIRE(encode_hello(h, buf).has_value());
  BOOST_REQUIRE(r->ch->send(Opcode::kHello, 0, buf).has_value());
  BOOST_REQUIRE(r->wait(0, Opcode::kHelloAck).has_value());
  const auto data = pattern(8192, 77);
  BOOST_TEST(r->request(30, req(BlockOp::kWrite, 0, 8192), data).first == 0);
  // Past the extent's end: ENOSPC, the image beyond is untouched.
  BOOST_TEST(r->request(31, req(BlockOp::kWrite, 1 << 20, 4096), std::span(data).first(4096))
                 .first == -ENOSPC);
  r->target->poll(Clock::now());
  std::ifstream img(rig.image, std::ios::binary);
  std::vector<char> got(8192);
  img.seekg(3 << 20);
  img.read(got.data(), 8192);
  BOOST_TEST(std::memcmp(got.data(), data.data(), 8192) == 0);
}

namespace {

// A target with one limited volume (key(1), function 6) over the loopback,
// and channels to it on any queue.
struct Limited {
  std::string image;
  std::unique_ptr<LoopbackTransport> ht;
  std::unique_ptr<LoopbackTransport> tt;
  std::unique_ptr<VolumeTarget> target;
  std::unique_ptr<FrameAuthenticator> auth = std::move(*FrameAuthenticator::create(key(1)));

  Limited(std::uint64_t iops, std::uint64_t bps, std::uint16_t queues) {
    char tmpl[] = "/tmp/vp-limit-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    BOOST_REQUIRE(fd >= 0 && ::ftruncate(fd, 1 << 20) == 0);
    ::close(fd);
    image = tmpl;
    auto [a, b] = LoopbackTransport::make_pair(1500);
    ht = std::move(a);
    tt = std::move(b);
    TargetOptions o;
    VolumeExport v;
    v.name = "limited";
    v.function_id = 6;
    v.key = key(1);
    v.backend.path = image;
    v.queues = queues;
    v.max_io_bytes = 64 * 1024;
    v.iops_limit = iops;
    v.bps_limit = bps;
    o.volumes.push_back(v);
    std::string why;
    auto t = VolumeTarget::create(*tt, o, why);
    BOOST_REQUIRE_MESSAGE(t.has_value(), why);
    target = std::move(*t);
  }
  ~Limited() { ::unlink(image.c_str()); }

  std::unique_ptr<ReliableChannel> open(std::uint16_t queue) {
    ChannelOptions co;
    co.function_id = 6;
    co.queue_id = queue;
    co.window = 256;
    co.receive = false;  // run() hands each channel its queue's frames
    auto ch = std::make_unique<ReliableChannel>(*ht, tt->local(), auth.get(), co);
    Hello h;
    h.mtu = 1500;
    h.window = 256;
    h.nonce.fill(static_cast<std::uint8_t>(queue + 1));
    std::byte hb[kHelloBytes];
    BOOST_REQUIRE(encode_hello(h, hb).has_value());
    BOOST_REQUIRE(ch->send(Opcode::kHello, 0, hb).has_value());
    return ch;
  }
  static void read(ReliableChannel& ch, std::uint32_t tag, std::uint32_t length) {
    std::byte head[kBlockRequestBytes];
    BOOST_REQUIRE(encode_block_request(req(BlockOp::kRead, 0, length), head).has_value());
    BOOST_REQUIRE(ch.send(Opcode::kRequest, tag, head).has_value());
  }
  // Polls everything until `want` completions came back on `chans` (or 20
  // s); `on_done(channel index)` for each, in arrival order.
  template <typename F>
  std::uint32_t run(std::vector<ReliableChannel*> chans, std::uint32_t want, F on_done) {
    std::vector<std::vector<ChannelMessage>> per(chans.size());
    std::uint32_t done = 0;
    const auto start = Clock::now();
    std::vector<std::byte> buf(1500);
    while (done < want && Clock::now() - start < 20s) {
      // One host transport for every channel: frames go to their queue's.
      for (;;) {
        InFrame in{std::span(buf), 0, {}};
        if (ht->recv_burst(std::span(&in, 1)) == 0) {
          break;
        }
        auto f = decode_frame(std::span<const std::byte>(buf.data(), in.len));
        if (f && f->header.queue_id < chans.size()) {
          chans[f->header.queue_id]->ingest(*f, Clock::now(), per[f->header.queue_id]);
        }
      }
      for (std::size_t i = 0; i < chans.size(); ++i) {
        chans[i]->poll(Clock::now(), per[i]);
        for (const auto& m : per[i]) {
          if (m.opcode == Opcode::kCompletion) {
            BOOST_TEST(decode_completion(m.payload)->status == 0);
            ++done;
            on_done(i);
          }
        }
        per[i].clear();
      }
      target->poll(Clock::now());
      std::this_thread::sleep_for(200us);
    }
    return done;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_bandwidth_limit_holds_large_reads_back) {
  // 30 reads of 16 KiB at 320 KiB/s (a burst of 64 KiB): at least 1.2 s.
  Limited l(0, 320 * 1024, 1);
  auto ch = l.open(0);
  const auto start = Clock::now();
  for (std::uint32_t i = 1; i <= 30; ++i) {
    Limited::read(*ch, i, 16384);
  }
  BOOST_TEST(l.run({ch.get()}, 30, [](std::size_t) {}) == 30u);
  BOOST_TEST((Clock::now() - start >= 1200ms));
  const auto st = l.target->volume_stats(6);
  BOOST_TEST(st->bytes_read == 30u * 16384);
  BOOST_TEST(st->throttled > 0u);
  BOOST_TEST(st->throttled <= 30u);  // counted once per request held back
}

BOOST_AUTO_TEST_CASE(an_iops_limit_holds_requests_back) {
  // 50 requests at 100 IOPS with a burst of 5 take at least 0.4 s, and the
  // target says it throttled; nothing fails.
  Limited l(100, 0, 1);
  auto ch = l.open(0);
  const auto start = Clock::now();
  for (std::uint32_t i = 1; i <= 50; ++i) {
    Limited::read(*ch, i, 4096);
  }
  BOOST_TEST(l.run({ch.get()}, 50, [](std::size_t) {}) == 50u);
  BOOST_TEST((Clock::now() - start >= 400ms));
  BOOST_TEST(l.target->volume_stats(5 + 1)->throttled > 0u);
}

BOOST_AUTO_TEST_CASE(queues_under_one_limit_take_turns) {
  // 40 reads waiting on queue 0 and 4 on queue 1 of a 100 IOPS volume: the
  // queues share the tokens, so queue 1 is done long before queue 0 drained.
  Limited l(100, 0, 2);
  auto q0 = l.open(0);
  auto q1 = l.open(1);
  for (std::uint32_t i = 1; i <= 40; ++i) {
    Limited::read(*q0, i, 4096);
  }
  for (std::uint32_t i = 1; i <= 4; ++i) {
    Limited::read(*q1, i, 4096);
  }
  std::uint32_t q0_done = 0;
  std::uint32_t q0_when_q1_finished = 0;
  std::uint32_t q1_done = 0;
  BOOST_TEST(l.run({q0.get(), q1.get()}, 44, [&](std::size_t i) {
    if (i == 0) {
      ++q0_done;
    } else if (++q1_done == 4) {
      q0_when_q1_finished = q0_done;
    }
  }) == 44u);
  BOOST_TEST(q1_done == 4u);
  BOOST_TEST(q0_when_q1_finished <= 20u);
}

BOOST_AUTO_TEST_SUITE_END()
