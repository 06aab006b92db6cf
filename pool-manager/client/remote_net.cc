// RemoteNet: a vNIC on the appliance as the host's NetBackend.
#include "pool-manager/client/remote_net.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "pool-manager/client/fabric_link.h"
#include "pool-manager/client/remote_block.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("remote-net")

namespace viopool::pool {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kRxFrames = 16;  // datagrams read at once per queue
constexpr std::size_t kTxFrames = 8;   // datagrams one tx_burst fills at most
constexpr auto kKeepalive = std::chrono::milliseconds(1000);
constexpr auto kSilence = std::chrono::milliseconds(3500);  // then the link is replaced
constexpr auto kRetry = std::chrono::milliseconds(200);      // between failed connections
constexpr auto kService = std::chrono::microseconds(500);    // acks, timers, keepalives
constexpr auto kCreditProbe = std::chrono::milliseconds(2);  // out of credits this long: ask

class RemoteNet final : public net::NetBackend {
 public:
  RemoteNet(RemoteNetOptions o, VnicInfo info, PeerAddress peer)
      : o_(std::move(o)), info_(info), peer_(peer) {
    // A whole frame of the vNIC and the headers around it, or more if asked.
    mtu_ = std::max<std::uint32_t>(o_.mtu, info_.mtu + 18u + 62u);
  }
  ~RemoteNet() override { stop(); }

  const char* kind() const noexcept override { return "pool"; }

  Result<void> start(std::uint16_t queue_pairs) override {
    if (queue_pairs == 0 || queue_pairs > info_.queues) {
      VIOPOOL_LOG_ERROR("vnic={} serves {} queue pair(s), {} asked", o_.vnic, info_.queues,
                        queue_pairs);
      return fail(Errc::kInvalidArgument, "remote net: more queue pairs than the vNIC has");
    }
    const auto now = Clock::now();
    for (std::uint16_t q = 0; q < queue_pairs; ++q) {
      auto qu = std::make_unique<Queue>();
      qu->id = q;
      auto a = FrameAuthenticator::create(o_.key);
      if (!a) {
        return unexpected(a.error());
      }
      qu->auth = std::move(*a);
      qu->instance = random_instance();
      qu->rx_buf.resize(kRxFrames * mtu_);
      qu->tx_buf.resize(kTxFrames * mtu_);
      connect(*qu, now);
      queues_.push_back(std::move(qu));
    }
    return {};
  }

  void stop() noexcept override {
    for (auto& q : queues_) {
      if (q->link.ch) {
        q->link.ch->send_unsequenced(Opcode::kGoodbye, {});
      }
      VIOPOOL_LOG_INFO(
          "vnic={} q={} stopped: tx {} datagrams, rx {}, dropped tx {} rx {}, links {}, "
          "credit waits {}",
          o_.vnic, q->id, q->tx_frames, q->rx_frames, q->tx_dropped, q->rx_dropped, q->link_no,
          q->credit_waits);
    }
    queues_.clear();
  }

  std::uint16_t rx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    if (q >= queues_.size()) {
      return 0;
    }
    Queue& qu = *queues_[q];
    const auto now = Clock::now();
    if (now - qu.last_service >= kService) {
      service(qu, now);
    }
    std::uint16_t got = 0;
    while (got < n) {
      if (qu.pk_i < qu.pk_n) {
        const auto f = qu.pkts[qu.pk_i++];
        rte_mbuf* m = rte_pktmbuf_alloc(o_.pool);
        if (m == nullptr) {
          ++qu.rx_dropped;
          continue;
        }
        char* p = f.size() <= rte_pktmbuf_tailroom(m)
                      ? rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size()))
                      : nullptr;
        if (p == nullptr) {  // longer than one mbuf: never for the vNIC's MTU
          rte_pktmbuf_free(m);
          ++qu.rx_dropped;
          continue;
        }
        std::memcpy(p, f.data(), f.size());
        pkts[got++] = m;
        continue;
      }
      if (qu.rx_i < qu.rx_n) {
        on_frame(qu, qu.in[qu.rx_i++], now);
        continue;
      }
      if (!qu.link.udp) {
        break;
      }
      for (std::size_t i = 0; i < kRxFrames; ++i) {
        qu.in[i].buf = std::span(qu.rx_buf).subspan(i * mtu_, mtu_);
      }
      qu.rx_i = 0;
      qu.rx_n = qu.link.udp->recv_burst(qu.in);
      if (qu.rx_n == 0) {
        break;
      }
    }
    return got;
  }

  std::uint16_t tx_burst(std::uint16_t q, rte_mbuf** pkts, std::uint16_t n) noexcept override {
    if (q >= queues_.size()) {
      return 0;
    }
    Queue& qu = *queues_[q];
    if (!qu.up) {
      return 0;  // no link: the device counts them as drops
    }
    const std::uint32_t frame_mtu = qu.tx_mtu;
    const std::size_t max_len = info_.mtu + 14u;
    std::size_t fi = 0;
    auto writer = [&](std::size_t i) {
      return PacketsWriter(std::span(qu.tx_buf).subspan(i * mtu_ + kHeaderBytes,
                                                        frame_mtu - kHeaderBytes));
    };
    PacketsWriter w = writer(0);
    qu.out.clear();
    std::uint16_t taken = 0;
    auto finish = [&] {
      const std::size_t payload = w.finish();
      FrameHeader h;
      h.opcode = Opcode::kPackets;
      h.function_id = o_.function_id;
      h.queue_id = qu.id;
      h.message_length = static_cast<std::uint32_t>(payload);
      h.tag = qu.next_tag++;  // numbers the datagram for the appliance's credits
      const auto frame = std::span(qu.tx_buf).subspan(fi * mtu_, kHeaderBytes + payload);
      if (encode_frame_in_place(h, payload, frame) && qu.auth->sign(frame)) {
        qu.out.push_back(OutFrame{frame, peer_, frame_mtu});
      }
    };
    for (; taken < n; ++taken) {
      rte_mbuf* m = pkts[taken];
      const std::uint32_t len = m->pkt_len;
      if (len < kMinPacketBytes || len > max_len) {
        ++qu.tx_dropped;  // taken and dropped: longer than the vNIC's MTU
        continue;
      }
      if (!w.fits(len)) {
        if (w.count() == 0) {
          ++qu.tx_dropped;  // cannot fit even alone: the fabric MTU is too small
          continue;
        }
        finish();
        if (++fi == kTxFrames) {
          break;
        }
        w = writer(fi);
      }
      std::byte* dst = w.add(len);
      const void* src = rte_pktmbuf_read(m, 0, len, dst);
      if (src != dst) {
        std::memcpy(dst, src, len);
      }
    }
    if (fi < kTxFrames && w.count() > 0) {
      finish();
    }
    std::size_t sent = 0;
    for (int tries = 0; sent < qu.out.size() && tries < 4; ++tries) {
      sent += qu.link.udp->send_burst(std::span(qu.out).subspan(sent));
    }
    qu.tx_frames += sent;
    if (sent > 0) {
      qu.last_sent = Clock::now();
    }
    rte_pktmbuf_free_bulk(pkts, taken);
    return taken;
  }

  // Datagrams the appliance still takes, each up to 64 frames.
  std::uint16_t tx_room(std::uint16_t q) noexcept override {
    if (q >= queues_.size()) {
      return 0;
    }
    Queue& qu = *queues_[q];
    if (!qu.up) {
      return UINT16_MAX;  // no link: taken and dropped, as by a NIC whose link is down
    }
    const auto avail = static_cast<std::int32_t>(qu.acked + qu.credits - qu.next_tag);
    if (avail > 0) {
      return static_cast<std::uint16_t>(std::min<std::int32_t>(avail, 64) * kMaxPacketsPerFrame);
    }
    // Out of credits: the appliance has not caught up (or its last ack was
    // lost). A KEEPALIVE every little while asks for a fresh ack.
    const auto now = Clock::now();
    if (now - qu.last_sent >= kCreditProbe && qu.link.ch) {
      qu.link.ch->send_unsequenced(Opcode::kKeepalive, {});
      qu.last_sent = now;
      ++qu.credit_waits;
    }
    return 0;
  }

  bool has_external_input() const noexcept override { return true; }
  bool remote() const noexcept override { return true; }

  int wait_fd(std::uint16_t q) const noexcept override {
    return q < queues_.size() && queues_[q]->link.udp ? queues_[q]->link.udp->wait_fd() : -1;
  }

 private:
  struct Queue {
    std::uint16_t id = 0;
    std::unique_ptr<FrameAuthenticator> auth;  // one per polling thread
    Instance instance{};
    std::uint64_t link_no = 0;
    Link link;
    bool up = false;  // HELLO_ACK received
    std::uint32_t tx_mtu = 0;
    // Flow control: datagrams are numbered from 1 per link; the appliance
    // acknowledges up to `acked` and lets us send `credits` beyond.
    std::uint32_t next_tag = 1, acked = 1, credits = 0;
    std::uint64_t credit_waits = 0;
    Clock::time_point last_heard{}, last_sent{}, last_service{}, next_connect{};
    std::vector<std::byte> rx_buf;
    InFrame in[kRxFrames];
    std::uint32_t rx_n = 0, rx_i = 0;  // datagrams read, next to look at
    std::span<const std::byte> pkts[kMaxPacketsPerFrame];
    std::size_t pk_n = 0, pk_i = 0;  // frames of the current PACKETS, next to hand over
    std::vector<std::byte> tx_buf;
    std::vector<OutFrame> out;
    std::vector<ChannelMessage> msgs;
    std::uint64_t tx_frames = 0, rx_frames = 0, tx_dropped = 0, rx_dropped = 0;
  };

  void connect(Queue& qu, Clock::time_point now) {
    qu.up = false;
    qu.rx_n = qu.rx_i = 0;
    qu.pk_n = qu.pk_i = 0;
    qu.next_tag = qu.acked = 1;
    LinkParams lp;
    lp.function_id = o_.function_id;
    lp.lease_id = o_.lease_id;
    lp.host_id = o_.host_id;
    lp.queue_id = qu.id;
    lp.mtu = mtu_;
    lp.max_message = kMaxConfigBytes + 64;
    lp.receive = false;
    if (qu.link.ch) {
      qu.link.ch->send_unsequenced(Opcode::kGoodbye, {});
    }
    qu.link = {};
    auto l = open_link(lp, peer_, *qu.auth, qu.instance, ++qu.link_no);
    if (!l) {
      qu.next_connect = now + kRetry;
      return;
    }
    qu.link = std::move(*l);
    qu.last_heard = now;
    qu.last_sent = now;
  }

  void service(Queue& qu, Clock::time_point now) {
    qu.last_service = now;
    if (!qu.link.ch) {
      if (now >= qu.next_connect) {
        connect(qu, now);
      }
      return;
    }
    qu.msgs.clear();
    qu.link.ch->poll(now, qu.msgs);
    // Frames move as PACKETS; the channel's sequenced traffic is the rare
    // control message, and the next service() may be far off: ack it now.
    qu.link.ch->flush_ack();
    const bool silent = now - qu.last_heard > kSilence;
    if (qu.link.ch->broken() || silent) {
      VIOPOOL_LOG_WARN("vnic={} q={} link {} {}: reconnecting", o_.vnic, qu.id, qu.link_no,
                       silent ? "silent" : "broken");
      connect(qu, now);
      return;
    }
    if (qu.up && now - qu.last_sent >= kKeepalive) {
      qu.link.ch->send_unsequenced(Opcode::kKeepalive, {});
      qu.last_sent = now;
    }
  }

  void on_frame(Queue& qu, const InFrame& in, Clock::time_point now) {
    const std::span<const std::byte> bytes(in.buf.data(), in.len);
    auto f = decode_frame(bytes);
    if (!f || f->header.function_id != o_.function_id ||
        f->header.queue_id != qu.id || !qu.auth->verify(bytes)) {
      ++qu.rx_dropped;
      return;
    }
    qu.last_heard = now;
    if (f->header.opcode == Opcode::kPackets) {
      if ((f->header.flags & kFlagAck) != 0 &&
          static_cast<std::int32_t>(f->header.ack - qu.acked) > 0 &&
          static_cast<std::int32_t>(f->header.ack - qu.next_tag) <= 0) {
        qu.acked = f->header.ack;
      }
      if ((f->header.flags & kFlagAck) != 0) {
        qu.credits = f->header.credits;
      }
      auto n = decode_packets(f->payload, qu.pkts);
      if (!n || !qu.up) {
        ++qu.rx_dropped;
        return;
      }
      ++qu.rx_frames;
      qu.pk_n = *n;
      qu.pk_i = 0;
      return;
    }
    qu.msgs.clear();
    qu.link.ch->ingest(*f, now, qu.msgs);
    for (auto& m : qu.msgs) {
      if (m.opcode == Opcode::kHelloAck) {
        auto h = decode_hello(m.payload);
        qu.up = h.has_value();
        qu.tx_mtu = h ? std::clamp<std::uint32_t>(h->mtu, 512, mtu_) : 0;
        qu.credits = h ? h->window : 0;  // until the first ack says otherwise
        VIOPOOL_LOG_INFO("vnic={} q={} link {} up (frames up to {} bytes)", o_.vnic, qu.id,
                         qu.link_no, qu.tx_mtu);
      } else if (m.opcode == Opcode::kNak || m.opcode == Opcode::kGoodbye) {
        VIOPOOL_LOG_WARN("vnic={} q={} link {}: {} from the appliance, reconnecting", o_.vnic,
                         qu.id, qu.link_no, to_string(m.opcode));
        qu.link.ch.reset();  // no GOODBYE back
        qu.link.udp.reset();
        qu.up = false;
        qu.next_connect = now + (m.opcode == Opcode::kNak ? std::chrono::milliseconds(0) : kRetry);
        qu.rx_n = qu.rx_i = 0;  // the rest of this socket's datagrams go with it
        return;
      }
    }
    service(qu, now);
  }

  RemoteNetOptions o_;
  VnicInfo info_;
  PeerAddress peer_;
  std::uint32_t mtu_ = 0;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace

Result<void> parse_net_pool_uri(const std::string& uri, RemoteNetOptions& o) {
  RemoteBlockOptions b;
  VIOPOOL_TRY(parse_pool_uri(uri, b));
  o.appliance = b.appliance;
  o.vnic = b.volume;
  return {};
}

Result<std::unique_ptr<net::NetBackend>> make_remote_net(const RemoteNetOptions& o,
                                                         VnicInfo& info, std::string& why) {
  const std::string who = "pool://" + o.appliance + "/" + o.vnic + ": ";
  if (o.pool == nullptr) {
    why = who + "no mbuf pool";
    return fail(Errc::kInvalidArgument, "remote net: no pool");
  }
  LinkParams lp;
  lp.function_id = o.function_id;
  lp.lease_id = o.lease_id;
  lp.host_id = o.host_id;
  lp.mtu = std::max<std::uint32_t>(o.mtu, 1472);
  lp.max_message = kMaxConfigBytes + 64;
  auto cfg = open_function(o.appliance, o.vnic, lp, o.key, o.connect_timeout,
                           static_cast<std::uint32_t>(kVolumeNameOffset + kVolumeNameBytes), why);
  if (!cfg) {
    return unexpected(cfg.error());
  }
  auto vi = decode_vnic_info(cfg->space);
  if (!vi) {
    why = who + "the function is not a vNIC (or its config space is malformed)";
    return unexpected(vi.error());
  }
  if (cfg->name != o.vnic) {
    why = who + "function " + std::to_string(o.function_id) + " is '" + cfg->name + "'";
    return fail(Errc::kNotFound, "remote net: wrong function");
  }
  info = *vi;
  return std::unique_ptr<net::NetBackend>(new RemoteNet(o, *vi, cfg->peer));
}

}  // namespace viopool::pool
