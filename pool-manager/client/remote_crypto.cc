// RemoteCrypto: pooled crypto slots over the fabric, host side.
#include "pool-manager/client/remote_crypto.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

#include "pool-manager/client/fabric_link.h"
#include "pool-manager/client/remote_block.h"
#include "pool-manager/protocol/fabric_codec.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("remote-crypto")

namespace viopool::pool {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kReconnectBackoff = std::chrono::milliseconds(50);

std::uint64_t handle_of(crypto::BackendSession s) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(s));
}

class RemoteCrypto final : public crypto::CryptoBackend {
 public:
  RemoteCrypto(RemoteCryptoOptions o, PeerAddress peer, std::unique_ptr<FrameAuthenticator> auth,
               std::unique_ptr<FrameAuthenticator> control_auth, CryptoSlotInfo info,
               std::uint32_t mtu)
      : o_(std::move(o)),
        peer_(peer),
        auth_(std::move(auth)),
        control_auth_(std::move(control_auth)),
        info_(info),
        mtu_(mtu) {
    caps_ = info_.caps;
    caps_.max_queues = info_.queues;
  }
  ~RemoteCrypto() override { stop(); }

  std::string name() const override { return "pool:" + o_.appliance + "/" + o_.slot; }
  Result<void> start(std::uint16_t queues, std::uint32_t max_sessions) override;
  void stop() noexcept override;
  const crypto::CryptoCapabilities& capabilities() const noexcept override { return caps_; }
  Result<crypto::BackendSession> create_session(const crypto::SessionParams& p) noexcept override;
  void destroy_session(crypto::BackendSession s) noexcept override;
  std::uint32_t submit(std::uint16_t q, crypto::CryptoJob* const* jobs,
                       std::uint32_t n) noexcept override;
  std::uint32_t poll(std::uint16_t q, crypto::CryptoCompletion* out,
                     std::uint32_t max) noexcept override;
  std::uint32_t in_flight(std::uint16_t q) const noexcept override {
    return q < queues_.size() ? queues_[q]->jobs : 0;
  }
  bool needs_service(std::uint16_t q) const noexcept override {
    return q < queues_.size() && queues_[q]->link.ch && queues_[q]->link.ch->ack_owed();
  }
  int completion_fd(std::uint16_t q) const noexcept override {
    return q < queues_.size() ? queues_[q]->waiter.fd() : -1;
  }
  bool prepare_sleep(std::uint16_t q) noexcept override;
  bool remote() const noexcept override { return true; }

 private:
  struct Pending {
    crypto::CryptoJob* job = nullptr;
    Clock::time_point deadline{};
    bool sent = false;
  };
  struct Queue {
    std::uint16_t fabric_queue = 0;
    Instance instance{};
    std::uint64_t link_no = 0;
    Link link;
    bool down = false;
    Clock::time_point reconnect_at{};
    std::uint32_t next_tag = 2;
    std::map<std::uint32_t, Pending> pending;
    // No pending op's deadline is before this (a lower bound: ops finished
    // since the last deadline scan may have had it).
    Clock::time_point earliest_deadline = Clock::time_point::max();
    std::deque<std::uint32_t> unsent;
    std::vector<crypto::CryptoCompletion> done;
    std::vector<ChannelMessage> msgs;
    std::vector<std::byte> scratch;
    std::uint32_t jobs = 0;  // accepted, not yet returned by poll()
    LinkWaiter waiter;  // not opened for the control link, driven blocking
  };

  LinkParams params(std::uint16_t fabric_queue) const {
    LinkParams lp;
    lp.function_id = o_.function_id;
    lp.lease_id = o_.lease_id;
    lp.queue_id = fabric_queue;
    lp.mtu = mtu_;
    lp.max_message = 2 * info_.max_op_bytes + 4096;
    return lp;
  }
  Result<void> connect(Queue& qu);
  void link_down(Queue& qu, Clock::time_point now);
  void pump(Queue& qu);
  void drive(Queue& qu, Clock::time_point now);
  void finish(Queue& qu, std::map<std::uint32_t, Pending>::iterator it, std::uint8_t status);
  // A request on the control link, answered by its COMPLETION: status, body.
  Result<std::pair<std::int32_t, std::vector<std::byte>>> control_call(
      std::span<const std::byte> request);

  const RemoteCryptoOptions o_;
  const PeerAddress peer_;
  // Authenticators are single-threaded: the data queues' (polling thread)
  // and the control link's (sessions are made and closed on rte_vhost's
  // thread) are two, from the same lease key.
  std::unique_ptr<FrameAuthenticator> auth_;
  std::unique_ptr<FrameAuthenticator> control_auth_;
  const CryptoSlotInfo info_;
  const std::uint32_t mtu_;
  crypto::CryptoCapabilities caps_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::mutex control_mu_;
  Queue control_;
};

Result<void> RemoteCrypto::connect(Queue& qu) {
  if (qu.link.ch && qu.link.established) {
    qu.link.ch->send_unsequenced(Opcode::kGoodbye, {});
  }
  qu.link = Link{};
  FrameAuthenticator& auth = &qu == &control_ ? *control_auth_ : *auth_;
  auto l = open_link(params(qu.fabric_queue), peer_, auth, qu.instance, ++qu.link_no);
  if (!l) {
    return unexpected(l.error());
  }
  qu.link = std::move(*l);
  qu.down = false;
  qu.waiter.watch(qu.link);
  return {};
}

bool RemoteCrypto::prepare_sleep(std::uint16_t q) noexcept {
  Queue& qu = *queues_[q];
  if (!qu.done.empty()) {
    return false;
  }
  auto wake = qu.pending.empty() ? Clock::time_point::max() : qu.earliest_deadline;
  if (qu.down) {
    wake = std::min(wake, qu.reconnect_at);
  } else if (qu.link.ch) {
    wake = std::min(wake, qu.link.ch->next_timer());
  }
  return qu.waiter.arm(wake);
}

Result<void> RemoteCrypto::start(std::uint16_t queues, std::uint32_t) {
  if (!queues_.empty()) {
    return {};
  }
  control_.instance = random_instance();
  VIOPOOL_TRY(connect(control_));
  const auto deadline = Clock::now() + o_.connect_timeout;
  if (!drive_blocking(control_.link, deadline, control_.msgs,
                      [](const ChannelMessage& m) { return m.opcode == Opcode::kHelloAck; })) {
    return fail(Errc::kTimeout, "pool crypto: the appliance does not answer");
  }
  for (std::uint16_t q = 0; q < queues; ++q) {
    auto qu = std::make_unique<Queue>();
    qu->fabric_queue = static_cast<std::uint16_t>(q % info_.queues);
    qu->instance = random_instance();
    if (auto w = qu->waiter.open(); !w) {
      stop();
      return w;
    }
    qu->scratch.resize(kCryptoOpHeadBytes + info_.max_op_bytes + crypto::kMaxAadBytes +
                       crypto::kMaxDigestBytes);
    VIOPOOL_TRY(connect(*qu));
    if (!drive_blocking(qu->link, deadline, qu->msgs,
                        [](const ChannelMessage& m) { return m.opcode == Opcode::kHelloAck; })) {
      stop();
      return fail(Errc::kTimeout, "pool crypto: the appliance does not answer on a queue");
    }
    queues_.push_back(std::move(qu));
  }
  return {};
}

void RemoteCrypto::stop() noexcept {
  for (auto& qu : queues_) {
    if (qu->link.ch && qu->link.established) {
      qu->link.ch->send_unsequenced(Opcode::kGoodbye, {});
    }
  }
  queues_.clear();
  std::lock_guard lock(control_mu_);
  if (control_.link.ch && control_.link.established) {
    control_.link.ch->send_unsequenced(Opcode::kGoodbye, {});
  }
  control_.link = Link{};
}

Result<std::pair<std::int32_t, std::vector<std::byte>>> RemoteCrypto::control_call(
    std::span<const std::byte> request) {
  std::lock_guard lock(control_mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto deadline = Clock::now() + o_.request_timeout;
    if (!control_.link.ch || control_.link.ch->broken() || !control_.link.established) {
      if (!connect(control_) ||
          !drive_blocking(control_.link, deadline, control_.msgs,
                          [](const ChannelMessage& m) { return m.opcode == Opcode::kHelloAck; })) {
        continue;
      }
    }
    const std::uint32_t tag = control_.next_tag++;
    if (!control_.link.ch->send(Opcode::kRequest, tag, request)) {
      control_.link.established = false;
      continue;
    }
    ChannelMessage reply;
    bool refused = false;
    const bool got = drive_blocking(control_.link, deadline, control_.msgs, [&](ChannelMessage& m) {
      if (m.opcode == Opcode::kNak || m.opcode == Opcode::kGoodbye) {
        refused = true;
        return true;
      }
      if (m.opcode == Opcode::kCompletion && m.tag == tag) {
        reply = std::move(m);
        return true;
      }
      return false;
    });
    if (!got || refused) {
      control_.link.established = false;  // reconnect and ask again
      continue;
    }
    auto c = decode_completion(reply.payload);
    if (!c || reply.payload.size() - kCompletionBytes != c->bytes) {
      return fail(Errc::kProtocol, "pool crypto: malformed completion");
    }
    return std::make_pair(c->status, std::vector<std::byte>(reply.payload.begin() + kCompletionBytes,
                                                            reply.payload.end()));
  }
  return fail(Errc::kTimeout, "pool crypto: the appliance does not answer");
}

Result<crypto::BackendSession> RemoteCrypto::create_session(
    const crypto::SessionParams& p) noexcept {
  std::byte req[kCryptoSessionBytes];
  VIOPOOL_TRY(encode_crypto_session(p, req));
  auto r = control_call(req);
  if (!r) {
    return unexpected(r.error());
  }
  const auto& [status, body] = *r;
  if (status == -ENOSPC) {
    return fail(Errc::kResourceExhausted, "pool crypto: the slot has no session left");
  }
  if (status == -EOPNOTSUPP) {
    return fail(Errc::kUnsupported, "pool crypto: the engine refuses the session");
  }
  if (status != 0 || body.size() != 8) {
    return fail(Errc::kInvalidArgument, "pool crypto: the slot refused the session");
  }
  std::uint64_t h = 0;
  for (auto b : body) {
    h = h << 8 | static_cast<std::uint8_t>(b);
  }
  if (h == 0) {
    return fail(Errc::kProtocol, "pool crypto: session handle 0");
  }
  return reinterpret_cast<crypto::BackendSession>(static_cast<std::uintptr_t>(h));
}

void RemoteCrypto::destroy_session(crypto::BackendSession s) noexcept {
  std::byte req[kCryptoDestroyBytes];
  if (encode_crypto_destroy(handle_of(s), req)) {
    (void)control_call(req);
  }
}

void RemoteCrypto::finish(Queue& qu, std::map<std::uint32_t, Pending>::iterator it,
                          std::uint8_t status) {
  qu.done.push_back(crypto::CryptoCompletion{it->second.job->cookie, status});
  qu.pending.erase(it);
}

std::uint32_t RemoteCrypto::submit(std::uint16_t q, crypto::CryptoJob* const* jobs,
                                   std::uint32_t n) noexcept {
  Queue& qu = *queues_[q];
  const auto now = Clock::now();
  std::uint32_t accepted = 0;
  for (; accepted < n && qu.jobs < info_.queue_depth; ++accepted) {
    crypto::CryptoJob* j = jobs[accepted];
    ++qu.jobs;
    const std::uint32_t tag = qu.next_tag++;
    if (qu.next_tag < 2) {
      qu.next_tag = 2;
    }
    const auto deadline = now + o_.request_timeout;
    qu.earliest_deadline = std::min(qu.earliest_deadline, deadline);
    auto it = qu.pending.emplace(tag, Pending{j, deadline, false}).first;
    if (j->src.bytes > info_.max_op_bytes || j->dst.bytes > info_.max_op_bytes ||
        j->aad.bytes > crypto::kMaxAadBytes || j->digest.bytes > crypto::kMaxDigestBytes) {
      finish(qu, it, crypto::kStatusErr);  // larger than the slot takes
      continue;
    }
    qu.unsent.push_back(tag);
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

void RemoteCrypto::pump(Queue& qu) {
  if (qu.down || !qu.link.established) {
    return;
  }
  while (!qu.unsent.empty()) {
    const std::uint32_t tag = qu.unsent.front();
    auto it = qu.pending.find(tag);
    if (it == qu.pending.end()) {
      qu.unsent.pop_front();
      continue;
    }
    const crypto::CryptoJob& j = *it->second.job;
    CryptoOpHead h;
    h.session = handle_of(j.session);
    h.encrypt = j.encrypt;
    h.iv_len = static_cast<std::uint8_t>(j.iv_len);
    h.iv = j.iv;
    h.cipher_offset = j.cipher_offset;
    h.cipher_len = j.cipher_len;
    h.auth_offset = j.auth_offset;
    h.auth_len = j.auth_len;
    h.data_len = j.data_len;
    h.src_len = j.src.bytes;
    h.aad_len = j.aad.bytes;
    h.dst_len = j.dst.bytes;
    if (crypto::digest_is_input(j)) {
      h.digest_in_len = j.digest.bytes;
    } else {
      h.digest_out_len = j.digest.bytes;
    }
    const auto left = it->second.deadline - Clock::now();
    h.deadline_us = static_cast<std::uint64_t>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::microseconds>(left).count()));
    std::byte* p = qu.scratch.data();
    (void)encode_crypto_op(h, std::span(p, kCryptoOpHeadBytes));
    std::size_t at = kCryptoOpHeadBytes;
    copy_iov<Dir::kGather>(j.src.v.data(), j.src.n, 0, p + at, j.src.bytes);
    at += j.src.bytes;
    copy_iov<Dir::kGather>(j.aad.v.data(), j.aad.n, 0, p + at, j.aad.bytes);
    at += j.aad.bytes;
    if (crypto::digest_is_input(j)) {
      copy_iov<Dir::kGather>(j.digest.v.data(), j.digest.n, 0, p + at, j.digest.bytes);
      at += j.digest.bytes;
    }
    if (!qu.link.ch->send(Opcode::kRequest, tag, std::span<const std::byte>(p, at))) {
      return;  // the channel broke: drive() reconnects
    }
    qu.unsent.pop_front();
    it->second.sent = true;
  }
}

void RemoteCrypto::link_down(Queue& qu, Clock::time_point now) {
  VIOPOOL_LOG_WARN_RL("crypto link to {} queue {} down: reconnecting", o_.appliance,
                      qu.fabric_queue);
  qu.down = true;
  qu.reconnect_at = now + (qu.link.established ? std::chrono::milliseconds(0) : kReconnectBackoff);
  qu.link.established = false;
  qu.unsent.clear();
  for (auto& [tag, p] : qu.pending) {
    p.sent = false;
    qu.unsent.push_back(tag);  // an op only writes its own output: send it again
  }
}

void RemoteCrypto::drive(Queue& qu, Clock::time_point now) {
  // The pending ops are looked at only once the earliest may have expired.
  if (now >= qu.earliest_deadline) {
    qu.earliest_deadline = Clock::time_point::max();
    for (auto it = qu.pending.begin(); it != qu.pending.end();) {
      auto cur = it++;
      if (cur->second.deadline <= now) {
        finish(qu, cur, crypto::kStatusErr);
      } else {
        qu.earliest_deadline = std::min(qu.earliest_deadline, cur->second.deadline);
      }
    }
  }
  if (qu.down) {
    if (now < qu.reconnect_at) {
      return;
    }
    if (!connect(qu)) {
      qu.down = true;
      qu.reconnect_at = now + kReconnectBackoff;
      return;
    }
  }
  {
    qu.msgs.clear();
    qu.link.ch->poll(now, qu.msgs);
    for (auto& m : qu.msgs) {
      if (m.opcode == Opcode::kNak || m.opcode == Opcode::kGoodbye) {
        link_down(qu, now);
        return;
      }
      if (m.opcode == Opcode::kHelloAck) {
        qu.link.established = true;
        continue;
      }
      if (m.opcode != Opcode::kCompletion) {
        continue;
      }
      auto it = qu.pending.find(m.tag);
      if (it == qu.pending.end() || !it->second.sent) {
        continue;  // finished already, or from an older link
      }
      auto c = decode_completion(m.payload);
      const crypto::CryptoJob& j = *it->second.job;
      std::uint8_t status = crypto::kStatusErr;
      const std::size_t body = m.payload.size() - kCompletionBytes;
      if (c && c->status == 0) {
        const std::size_t out = j.dst.bytes + (crypto::digest_is_input(j) ? 0 : j.digest.bytes);
        if (body == out && c->bytes == out) {
          const std::byte* b = m.payload.data() + kCompletionBytes;
          copy_iov<Dir::kScatter>(j.dst.v.data(), j.dst.n, 0, b, j.dst.bytes);
          if (!crypto::digest_is_input(j)) {
            copy_iov<Dir::kScatter>(j.digest.v.data(), j.digest.n, 0, b + j.dst.bytes,
                                    j.digest.bytes);
          }
          status = crypto::kStatusOk;
        }
      } else if (c && c->status > 0 && c->status <= crypto::kStatusNoSpc && body == 0) {
        status = static_cast<std::uint8_t>(c->status);
      }
      finish(qu, it, status);
    }
    if (qu.link.ch->broken()) {
      link_down(qu, now);
      return;
    }
  }
  pump(qu);
  qu.link.ch->send_now(now);  // what pump queued goes out now
}

std::uint32_t RemoteCrypto::poll(std::uint16_t q, crypto::CryptoCompletion* out,
                                 std::uint32_t max) noexcept {
  Queue& qu = *queues_[q];
  if (qu.jobs > qu.done.size()) {
    drive(qu, Clock::now());
  } else if (qu.link.ch && qu.link.ch->ack_owed()) {
    qu.link.ch->send_now(Clock::now());  // the last answers' ack, once it may wait no longer
  }
  const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(max, qu.done.size()));
  std::copy_n(qu.done.begin(), n, out);
  qu.done.erase(qu.done.begin(), qu.done.begin() + n);
  qu.jobs -= n;
  return n;
}

}  // namespace

Result<void> parse_crypto_pool_uri(const std::string& uri, RemoteCryptoOptions& o) {
  RemoteBlockOptions b;
  VIOPOOL_TRY(parse_pool_uri(uri, b));
  o.appliance = b.appliance;
  o.slot = b.volume;
  return {};
}

Result<std::unique_ptr<crypto::CryptoBackend>> make_remote_crypto(const RemoteCryptoOptions& o,
                                                                  std::string& why) {
  const std::string who = "pool://" + o.appliance + "/" + o.slot + ": ";
  LinkParams lp;
  lp.function_id = o.function_id;
  lp.lease_id = o.lease_id;
  lp.mtu = o.mtu;
  lp.max_message = 64 * 1024;
  auto cfg = open_function(o.appliance, o.slot, lp, o.key, o.connect_timeout,
                           static_cast<std::uint32_t>(kMaxConfigBytes), why);
  if (!cfg) {
    return unexpected(cfg.error());
  }
  auto info = decode_crypto_slot_info(cfg->space);
  if (!info) {
    why = who + "the function is not a crypto slot (or its config space is malformed)";
    return unexpected(info.error());
  }
  if (cfg->name != o.slot) {
    why = who + "function " + std::to_string(o.function_id) + " is '" + cfg->name + "'";
    return fail(Errc::kInvalidArgument, "pool crypto: another function");
  }
  const std::uint32_t mtu =
      cfg->their.mtu >= 512 ? std::min<std::uint32_t>(o.mtu, cfg->their.mtu) : o.mtu;
  auto control_auth = FrameAuthenticator::create(o.key);
  if (!control_auth) {
    why = who + control_auth.error().what;
    return unexpected(control_auth.error());
  }
  return std::unique_ptr<crypto::CryptoBackend>(std::make_unique<RemoteCrypto>(
      o, cfg->peer, std::move(cfg->auth), std::move(*control_auth), *info, mtu));
}

}  // namespace viopool::pool
