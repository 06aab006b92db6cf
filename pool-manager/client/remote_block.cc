// RemoteBlock: pooled volumes over the fabric, host side.
#include "pool-manager/client/remote_block.h"


#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "pool-manager/client/fabric_link.h"
#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/transport/udp_transport.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("remote-blk")

namespace viopool::pool {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::microseconds;

constexpr auto kDeadlineScan = std::chrono::milliseconds(1);
constexpr auto kReconnectBackoff = std::chrono::milliseconds(50);
constexpr std::uint32_t kIdleRxSkip = 8;
constexpr auto kKeepaliveInterval = std::chrono::milliseconds(100);
constexpr std::uint32_t kMaxKeepalivesUnanswered = 3;
constexpr std::size_t kConfigBytes = kVolumeNameOffset + kVolumeNameBytes;

class RemoteBlock final : public blk::BlockBackend {
 public:
  RemoteBlock(RemoteBlockOptions o, PeerAddress peer, std::unique_ptr<FrameAuthenticator> auth,
              VolumeInfo vi, std::uint32_t mtu)
      : o_(std::move(o)), peer_(peer), auth_(std::move(auth)), vi_(vi), mtu_(mtu) {
    info_.capacity_bytes = vi.capacity_bytes;
    info_.block_size = vi.block_size;
    info_.physical_block_exp = vi.physical_block_exp;
    info_.read_only = o_.read_only || (vi.flags & kVolumeReadOnly) != 0;
    info_.supports_discard = (vi.flags & kVolumeDiscard) != 0;
    info_.supports_write_zeroes = (vi.flags & kVolumeWriteZeroes) != 0;
    info_.volatile_cache = (vi.flags & kVolumeVolatileCache) != 0;
    info_.max_queue_depth = vi.queue_depth;
    info_.remote = true;
  }
  ~RemoteBlock() override { stop(); }

  const char* kind() const noexcept override { return "pool"; }
  const blk::BlockBackendInfo& info() const noexcept override { return info_; }

  Result<void> start(std::uint16_t queues) override;
  void stop() noexcept override;
  std::uint32_t submit(std::uint16_t q, blk::BlkIo* const* ios, std::uint32_t n) noexcept override;
  std::uint32_t poll(std::uint16_t q, blk::BlkCompletion* out, std::uint32_t max) noexcept override;
  std::uint32_t in_flight(std::uint16_t q) const noexcept override {
    return q < queues_.size() ? queues_[q]->ios : 0;
  }
  bool needs_service(std::uint16_t q) const noexcept override {
    return q < queues_.size() && queues_[q]->link.ch && queues_[q]->link.ch->ack_owed();
  }
  int completion_fd(std::uint16_t q) const noexcept override {
    return q < queues_.size() ? queues_[q]->waiter.fd() : -1;
  }
  bool prepare_sleep(std::uint16_t q) noexcept override;

  void counters(std::vector<std::pair<const char*, std::uint64_t>>& out) const override {
    std::uint64_t v[6] = {};
    for (const auto& qu : queues_) {
      v[0] += qu->requests.load(std::memory_order_relaxed);
      v[1] += qu->completions.load(std::memory_order_relaxed);
      v[2] += qu->timeouts.load(std::memory_order_relaxed);
      v[3] += qu->reconnects.load(std::memory_order_relaxed);
      v[4] += qu->resent.load(std::memory_order_relaxed);
      v[5] += qu->retransmits.load(std::memory_order_relaxed);
    }
    const char* names[6] = {"requests",   "completions", "timeouts",
                            "reconnects", "resent",      "retransmits"};
    for (int i = 0; i < 6; ++i) {
      out.emplace_back(names[i], v[i]);
    }
  }

 private:
  // One fabric request: all of a small I/O, or a slice of a large one.
  struct Part {
    blk::BlkIo* io = nullptr;
    std::uint64_t iov_offset = 0;  // where this slice starts in the I/O's data
    std::uint32_t length = 0;
    BlockOp op = BlockOp::kRead;
    Clock::time_point deadline{};
    bool sent = false;  // on the current link
  };
  struct Parent {
    std::uint32_t parts = 0;
    std::int32_t error = 0;
  };
  struct Queue {
    std::uint16_t fabric_queue = 0;
    Instance instance{};
    std::uint64_t link_no = 0;
    Link link;
    Clock::time_point reconnect_at{};  // while the link is down
    bool down = false;
    std::uint32_t next_tag = 2;           // 0 and 1: HELLO and config
    std::map<std::uint32_t, Part> parts;  // by tag: every part not completed
    std::deque<std::uint32_t> unsent;     // tags to send, in order
    std::uint32_t sent = 0;               // parts on the wire, awaiting completion
    std::unordered_map<blk::BlkIo*, Parent> parents;
    std::vector<blk::BlkCompletion> done;  // ready for poll()
    std::uint32_t ios = 0;                 // BlkIos accepted and not yet returned
    Clock::time_point next_scan{};
    std::uint32_t rx_skip = 0;  // poll() calls left before it receives again
    // Liveness while requests wait for completions: an appliance that
    // crashed after acknowledging them would otherwise go unnoticed until
    // their deadlines.
    std::uint64_t heard_frames = 0;  // frames received on the link so far
    Clock::time_point last_heard{};
    Clock::time_point next_keepalive{};
    std::uint32_t keepalives_unanswered = 0;
    std::vector<ChannelMessage> msgs;
    std::vector<std::byte> scratch;  // a write's data, gathered
    LinkWaiter waiter;
    std::atomic<std::uint64_t> requests{0}, completions{0}, timeouts{0}, reconnects{0}, resent{0},
        retransmits{0};
  };

  Result<void> connect(Queue& qu);
  void drive(Queue& qu, Clock::time_point now);
  bool exchange(Queue& qu, Clock::time_point now);
  void pump(Queue& qu);
  void on_message(Queue& qu, ChannelMessage& m);
  void finish(Queue& qu, std::map<std::uint32_t, Part>::iterator it, std::int32_t status);
  void link_down(Queue& qu, Clock::time_point now, const char* why);

  const RemoteBlockOptions o_;
  const PeerAddress peer_;
  std::unique_ptr<FrameAuthenticator> auth_;
  const VolumeInfo vi_;
  const std::uint32_t mtu_;
  blk::BlockBackendInfo info_;
  std::vector<std::unique_ptr<Queue>> queues_;
};

Result<void> RemoteBlock::connect(Queue& qu) {
  if (qu.link.ch && qu.link.established) {
    qu.link.ch->send_unsequenced(Opcode::kGoodbye, {});
  }
  // The old socket goes first: its fd leaves the epoll set before it closes.
  qu.link = Link{};
  qu.waiter.watch(qu.link);
  LinkParams lp;
  lp.function_id = o_.function_id;
  lp.lease_id = o_.lease_id;
  lp.host_id = o_.host_id;
  lp.queue_id = qu.fabric_queue;
  lp.mtu = mtu_;
  lp.max_message = vi_.max_io_bytes + 4096;
  auto l = open_link(lp, peer_, *auth_, qu.instance, ++qu.link_no);
  if (!l) {
    return unexpected(l.error());
  }
  qu.link = std::move(*l);
  qu.down = false;
  qu.heard_frames = 0;
  qu.last_heard = Clock::now();
  qu.keepalives_unanswered = 0;
  qu.waiter.watch(qu.link);
  return {};
}

Result<void> RemoteBlock::start(std::uint16_t queues) {
  if (!queues_.empty()) {
    return {};
  }
  for (std::uint16_t q = 0; q < queues; ++q) {
    auto qu = std::make_unique<Queue>();
    qu->fabric_queue = static_cast<std::uint16_t>(q % vi_.queues);
    qu->instance = random_instance();
    if (auto w = qu->waiter.open(); !w) {
      stop();
      return w;
    }
    qu->scratch.resize(vi_.max_io_bytes);
    auto r = connect(*qu);
    queues_.push_back(std::move(qu));
    if (!r) {
      stop();
      return r;
    }
    // Established before the guest's first request: errors show at device_add.
    Queue& added = *queues_.back();
    if (!drive_blocking(added.link, Clock::now() + o_.connect_timeout, added.msgs,
                        [](const ChannelMessage& m) { return m.opcode == Opcode::kHelloAck; })) {
      stop();
      return fail(Errc::kTimeout, "pool volume: the appliance does not answer on a queue");
    }
  }
  return {};
}

void RemoteBlock::stop() noexcept {
  for (std::size_t q = 0; q < queues_.size(); ++q) {
    auto& qu = queues_[q];
    if (qu->link.ch) {
      const ChannelStats& st = qu->link.ch->stats();
      VIOPOOL_LOG_INFO(
          "volume={} q={} stopped: frames sent {} received {}, retransmits {}, duplicates {}, "
          "acks sent {}, dropped: auth {} malformed {} foreign {} out of window {}",
          o_.volume, q, st.frames_sent, st.frames_received, st.retransmits, st.duplicates,
          st.acks_sent, st.auth_failures, st.malformed, st.foreign, st.out_of_window);
    }
    if (qu->link.ch && qu->link.established) {
      qu->link.ch->send_unsequenced(Opcode::kGoodbye, {});
    }
  }
  queues_.clear();
}

void RemoteBlock::finish(Queue& qu, std::map<std::uint32_t, Part>::iterator it,
                         std::int32_t status) {
  Part& p = it->second;
  if (p.sent) {
    --qu.sent;
  }
  auto pit = qu.parents.find(p.io);
  if (pit != qu.parents.end()) {
    Parent& par = pit->second;
    if (status < 0 && par.error == 0) {
      par.error = status;
    }
    if (--par.parts == 0) {
      std::int32_t result = par.error;
      if (result == 0 && (p.io->op == blk::BlkOp::kRead || p.io->op == blk::BlkOp::kWrite)) {
        result = static_cast<std::int32_t>(p.io->length);
      }
      qu.done.push_back(blk::BlkCompletion{p.io->cookie, result});
      qu.parents.erase(pit);
    }
  }
  qu.parts.erase(it);
  qu.completions.fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t RemoteBlock::submit(std::uint16_t q, blk::BlkIo* const* ios,
                                  std::uint32_t n) noexcept {
  Queue& qu = *queues_[q];
  const auto now = Clock::now();
  std::uint32_t accepted = 0;
  for (; accepted < n && qu.ios < vi_.queue_depth; ++accepted) {
    blk::BlkIo* io = ios[accepted];
    const bool data = io->op == blk::BlkOp::kRead || io->op == blk::BlkOp::kWrite;
    const std::uint64_t total = data ? io->length : 0;
    if (io->length > std::uint64_t{INT32_MAX} || (!data && io->length > UINT32_MAX)) {
      qu.done.push_back(blk::BlkCompletion{io->cookie, -EINVAL});
      ++qu.ios;
      continue;
    }
    BlockOp op = BlockOp::kRead;
    switch (io->op) {
      case blk::BlkOp::kRead:
        op = BlockOp::kRead;
        break;
      case blk::BlkOp::kWrite:
        op = BlockOp::kWrite;
        break;
      case blk::BlkOp::kFlush:
        op = BlockOp::kFlush;
        break;
      case blk::BlkOp::kDiscard:
        op = BlockOp::kDiscard;
        break;
      case blk::BlkOp::kWriteZeroes:
        op = BlockOp::kWriteZeroes;
        break;
    }
    Parent par;
    std::uint64_t off = 0;
    do {
      Part p;
      p.io = io;
      p.op = op;
      p.iov_offset = off;
      p.length =
          data ? static_cast<std::uint32_t>(std::min<std::uint64_t>(total - off, vi_.max_io_bytes))
               : static_cast<std::uint32_t>(io->length);
      p.deadline = now + o_.request_timeout;
      const std::uint32_t tag = qu.next_tag++;
      if (qu.next_tag < 2) {
        qu.next_tag = 2;
      }
      qu.parts.emplace(tag, p);
      qu.unsent.push_back(tag);
      ++par.parts;
      off += data ? p.length : 0;
    } while (data && off < total);
    qu.parents.emplace(io, par);
    ++qu.ios;
  }
  if (accepted > 0) {
    pump(qu);
    if (!qu.down && qu.link.established && qu.link.ch) {
      qu.link.ch->send_now(now);  // out now; answers are received by poll()
    } else {
      drive(qu, now);  // (re)connects
    }
  }
  return accepted;
}

void RemoteBlock::pump(Queue& qu) {
  if (qu.down || !qu.link.established) {
    return;
  }
  while (!qu.unsent.empty() && qu.sent < vi_.queue_depth) {
    const std::uint32_t tag = qu.unsent.front();
    qu.unsent.pop_front();
    auto it = qu.parts.find(tag);
    if (it == qu.parts.end()) {
      continue;  // failed at its deadline while waiting
    }
    Part& p = it->second;
    BlockRequest r;
    r.op = p.op;
    r.flags = p.op == BlockOp::kWriteZeroes && p.io->unmap ? kBlockFlagUnmap : 0;
    r.length = p.length;
    r.offset = p.io->offset + p.iov_offset;
    const auto left = p.deadline - Clock::now();
    r.deadline_us = static_cast<std::uint64_t>(
        std::max<std::int64_t>(1, duration_cast<microseconds>(left).count()));
    std::byte head[kBlockRequestBytes];
    (void)encode_block_request(r, head);
    std::span<const std::byte> body;
    if (p.op == BlockOp::kWrite) {
      copy_iov<Dir::kGather>(p.io->iov, p.io->iovcnt, p.iov_offset, qu.scratch.data(), p.length);
      body = std::span<const std::byte>(qu.scratch.data(), p.length);
    }
    if (!qu.link.ch->send(Opcode::kRequest, tag, head, body)) {
      qu.unsent.push_front(tag);  // the channel broke: drive() reconnects
      return;
    }
    p.sent = true;
    ++qu.sent;
    qu.requests.fetch_add(1, std::memory_order_relaxed);
  }
}

void RemoteBlock::link_down(Queue& qu, Clock::time_point now, const char* why) {
  VIOPOOL_LOG_WARN_RL("fabric link to {} queue {} down ({}): reconnecting", o_.appliance,
                      qu.fabric_queue, why);
  qu.down = true;
  qu.reconnect_at = now + (qu.link.established ? std::chrono::milliseconds(0) : kReconnectBackoff);
  qu.link.established = false;
  // Everything not completed goes out again on the next link, in tag order.
  qu.unsent.clear();
  for (auto& [tag, p] : qu.parts) {
    if (p.sent) {
      p.sent = false;
      qu.resent.fetch_add(1, std::memory_order_relaxed);
    }
    qu.unsent.push_back(tag);
  }
  qu.sent = 0;
}

void RemoteBlock::on_message(Queue& qu, ChannelMessage& m) {
  switch (m.opcode) {
    case Opcode::kHelloAck:
      if (!qu.link.established) {
        qu.link.established = true;
        pump(qu);
      }
      return;
    case Opcode::kCompletion: {
      auto it = qu.parts.find(m.tag);
      if (it == qu.parts.end() || !it->second.sent) {
        return;  // finished already (deadline) or from an older link: ignored
      }
      auto c = decode_completion(m.payload);
      Part& p = it->second;
      std::int32_t status = -EIO;
      if (c && c->status <= 0) {  // a positive status is no volume's answer
        status = c->status;
        const std::size_t data = m.payload.size() - kCompletionBytes;
        if (status == 0 && p.op == BlockOp::kRead) {
          if (c->bytes == p.length && data == p.length) {
            copy_iov<Dir::kScatter>(p.io->iov, p.io->iovcnt, p.iov_offset,
                                    m.payload.data() + kCompletionBytes, data);
          } else {
            status = -EIO;  // a short or inconsistent read never reports success
          }
        } else if (data != 0) {
          status = -EIO;
        }
      }
      finish(qu, it, status);
      return;
    }
    default:
      return;
  }
}

// Polls the link once and handles what came back; false if the link went down.
bool RemoteBlock::exchange(Queue& qu, Clock::time_point now) {
  qu.msgs.clear();
  qu.link.ch->poll(now, qu.msgs);
  if (qu.link.ch->stats().frames_received != qu.heard_frames) {
    qu.heard_frames = qu.link.ch->stats().frames_received;
    qu.last_heard = now;
    qu.keepalives_unanswered = 0;
  }
  for (auto& m : qu.msgs) {
    if (m.opcode == Opcode::kNak || m.opcode == Opcode::kGoodbye) {
      link_down(qu, now, m.opcode == Opcode::kNak ? "refused" : "goodbye");
      return false;
    }
    on_message(qu, m);
  }
  if (qu.link.ch->broken()) {
    link_down(qu, now, "no answer");
    return false;
  }
  return true;
}

void RemoteBlock::drive(Queue& qu, Clock::time_point now) {
  if (now >= qu.next_scan && !qu.parts.empty()) {
    qu.next_scan = now + kDeadlineScan;
    bool fence = false;
    for (auto it = qu.parts.begin(); it != qu.parts.end();) {
      auto cur = it++;
      if (cur->second.deadline <= now) {
        qu.timeouts.fetch_add(1, std::memory_order_relaxed);
        fence |= cur->second.sent;
        finish(qu, cur, -ETIMEDOUT);
      }
    }
    // A request the guest was told failed may still be on the wire or in
    // the appliance's queue: a new link makes the appliance finish or drop
    // everything of the old one before it answers, so the failed write can
    // never land after the guest's next write to the same blocks.
    if (fence && !qu.down) {
      link_down(qu, now, "request timed out");
    }
  }
  if (qu.down) {
    if (now < qu.reconnect_at) {
      return;
    }
    qu.reconnects.fetch_add(1, std::memory_order_relaxed);
    if (!connect(qu)) {
      qu.down = true;
      qu.reconnect_at = now + kReconnectBackoff;
      return;
    }
  }
  if (qu.link.established && qu.link.ch->needs_renewal()) {
    link_down(qu, now, "sequence numbers renewed");
    return;
  }
  if (exchange(qu, now)) {
    pump(qu);
    qu.link.ch->send_now(now);  // what pump queued goes out now
  }
  // Requests acknowledged but not completed, and the appliance silent: ask
  // whether it is still there (a KEEPALIVE is answered by an ACK, or by a
  // NAK from an appliance that restarted and lost the channel).
  if (!qu.down && qu.link.established && qu.sent > 0 && now - qu.last_heard >= kKeepaliveInterval &&
      now >= qu.next_keepalive) {
    if (qu.keepalives_unanswered >= kMaxKeepalivesUnanswered) {
      link_down(qu, now, "keepalives unanswered");
      return;
    }
    qu.link.ch->send_unsequenced(Opcode::kKeepalive, {});
    ++qu.keepalives_unanswered;
    qu.next_keepalive = now + kKeepaliveInterval;
  }
  qu.retransmits.store(qu.link.ch ? qu.link.ch->stats().retransmits : 0, std::memory_order_relaxed);
}

std::uint32_t RemoteBlock::poll(std::uint16_t q, blk::BlkCompletion* out,
                                std::uint32_t max) noexcept {
  Queue& qu = *queues_[q];
  if (qu.ios > qu.done.size()) {
    // A spinning poller would otherwise make a receive system call per
    // spin: after one that found nothing, skip a few polls (the fabric's
    // round trip is tens of microseconds at best), leaving the CPU to whoever
    // shares it, often the appliance itself.
    if (qu.rx_skip > 0) {
      --qu.rx_skip;
    } else {
      const auto before = qu.link.ch ? qu.link.ch->stats().frames_received : 0;
      drive(qu, Clock::now());
      const auto after = qu.link.ch ? qu.link.ch->stats().frames_received : 0;
      qu.rx_skip = after == before ? kIdleRxSkip : 0;
    }
  } else if (qu.link.ch && qu.link.ch->ack_owed()) {
    qu.link.ch->send_now(Clock::now());  // the last answers' ack, once it may wait no longer
  }
  const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(max, qu.done.size()));
  std::copy_n(qu.done.begin(), n, out);
  qu.done.erase(qu.done.begin(), qu.done.begin() + n);
  qu.ios -= n;
  return n;
}

bool RemoteBlock::prepare_sleep(std::uint16_t q) noexcept {
  Queue& qu = *queues_[q];
  if (!qu.done.empty()) {
    return false;
  }
  qu.rx_skip = 0;  // woken up: receive at once
  // The deadline scan only matters with requests out (a delayed ack alone
  // can bring us here with next_scan long past).
  auto wake = qu.parts.empty() ? Clock::time_point::max() : qu.next_scan;
  if (qu.down) {
    wake = std::min(wake, qu.reconnect_at);
  } else if (qu.link.ch) {
    wake = std::min(wake, qu.link.ch->next_timer());
  }
  return qu.waiter.arm(wake);
}

}  // namespace

Result<void> parse_pool_uri(const std::string& uri, RemoteBlockOptions& o) {
  static constexpr std::string_view kScheme = "pool://";
  if (uri.compare(0, kScheme.size(), kScheme) != 0) {
    return fail(Errc::kInvalidArgument, "pool URI: expected pool://ADDRESS:PORT/VOLUME");
  }
  const std::string rest = uri.substr(kScheme.size());
  const auto slash = rest.rfind('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) {
    return fail(Errc::kInvalidArgument, "pool URI: expected pool://ADDRESS:PORT/VOLUME");
  }
  const std::string addr = rest.substr(0, slash);
  const std::string volume = rest.substr(slash + 1);
  if (!parse_udp_address(addr) || volume.size() > kVolumeNameBytes) {
    return fail(Errc::kInvalidArgument, "pool URI: expected pool://ADDRESS:PORT/VOLUME");
  }
  o.appliance = addr;
  o.volume = volume;
  return {};
}

Result<std::unique_ptr<blk::BlockBackend>> make_remote_backend(const RemoteBlockOptions& o,
                                                               std::string& why) {
  const std::string who = "pool://" + o.appliance + "/" + o.volume + ": ";
  LinkParams lp;
  lp.function_id = o.function_id;
  lp.lease_id = o.lease_id;
  lp.host_id = o.host_id;
  lp.mtu = o.mtu;
  lp.max_message = 64 * 1024;
  auto cfg = open_function(o.appliance, o.volume, lp, o.key, o.connect_timeout,
                           static_cast<std::uint32_t>(kConfigBytes), why);
  if (!cfg) {
    return unexpected(cfg.error());
  }
  const Hello their = cfg->their;
  auto vi = decode_volume_info(cfg->space);
  if (!vi) {
    why = who + "malformed volume config space from the appliance";
    return fail(Errc::kProtocol, "pool volume: bad config space");
  }
  if (cfg->name != o.volume) {
    why = who + "function " + std::to_string(o.function_id) + " is volume '" + cfg->name + "'";
    return fail(Errc::kInvalidArgument, "pool volume: another volume");
  }
  const std::uint32_t mtu = their.mtu >= 512 ? std::min<std::uint32_t>(o.mtu, their.mtu) : o.mtu;
  return std::unique_ptr<blk::BlockBackend>(
      std::make_unique<RemoteBlock>(o, cfg->peer, std::move(cfg->auth), *vi, mtu));
}

}  // namespace viopool::pool
