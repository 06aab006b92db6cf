// virtio-crypto over vhost-user: our own ring walking and a burst pipeline to
// the CryptoBackend on the polling lcore; sessions from the control queue
// (polling lcore) or from vhost-user messages (rte_vhost's thread).
#include "vhost-backend/vhost/vhost_crypto_device.h"

#include <rte_vhost.h>
#include <sched.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("crypto")

namespace viopool::vhost {
VhostCryptoDevice::VhostCryptoDevice(control::DeviceConfig cfg,
                                     std::unique_ptr<crypto::CryptoBackend> backend,
                                     runtime::PollLoop& loop)
    : VhostRingDevice(std::move(cfg), loop), backend_(std::move(backend)) {
  log_ids_[cfg_.queues] = "dev=" + cfg_.name + " q=ctrl";
}

VhostCryptoDevice::~VhostCryptoDevice() { stop(); }

Result<void> VhostCryptoDevice::start(std::string& why) {
  if (auto r = backend_->start(cfg_.queues, cfg_.crypto.max_sessions); !r) {
    why = "backend " + backend_->name() + ": " + to_string(r.error());
    return r;
  }
  opts_ = crypto::CryptoDeviceOptions{cfg_.queues, cfg_.packed_ring};
  config_ = crypto::make_config(opts_, backend_->capabilities());
  config_bytes_ = crypto::config_space(config_);
  offered_features_ = crypto::offered_features(opts_);
  sessions_ = std::make_unique<crypto::SessionTable>(cfg_.crypto.max_sessions);
  if (config_.crypto_services == 0) {
    backend_->stop();
    why = "the engine supports none of the algorithms virtio-crypto can carry";
    return fail(Errc::kUnsupported, "crypto: no usable algorithm");
  }

  VhostSocketOptions o;
  o.path = cfg_.socket;
  o.role = cfg_.mode == control::SocketMode::kServer ? SocketRole::kServer : SocketRole::kClient;
  o.features = offered_features_;
  o.builtin_net = false;
  o.protocol_features_add = proto_bit(kProtoConfig) | proto_bit(kProtoMq) |
                            proto_bit(kProtoReplyAck) | proto_bit(kProtoCryptoSession);
  // No STATUS: with it rte_vhost waits for DRIVER_OK, which QEMU's
  // cryptodev-vhost-user never sends.
  o.protocol_features_remove = proto_bit(kProtoRarp) | proto_bit(kProtoNetMtu) |
                               proto_bit(kProtoPagefault) | proto_bit(kProtoHostNotifier) |
                               proto_bit(kProtoStatus);
  auto offered = register_socket(o, this, why);
  if (!offered) {
    backend_->stop();
    return unexpected(offered.error());
  }
  loop_.add(this);
  started_ = true;
  VIOPOOL_LOG_INFO(
      "device started dev={} type=crypto socket={} mode={} queues={} backend={} services={:#x} "
      "cipher={:#x} hash={:#x} mac={:#x} aead={:#x} max_sessions={} loop={}",
      cfg_.name, cfg_.socket, control::to_string(cfg_.mode), cfg_.queues, backend_->name(),
      config_.crypto_services, config_.cipher_algo_l, config_.hash_algo, config_.mac_algo_l,
      config_.aead_algo, cfg_.crypto.max_sessions, loop_.name());
  return {};
}

void VhostCryptoDevice::stop() noexcept {
  if (!started_) {
    return;
  }
  started_ = false;
  unregister_socket(cfg_.socket);  // runs on_destroy_device (drain) here if attached
  loop_.remove(this);
  destroy_all_sessions();
  backend_->stop();
  VIOPOOL_LOG_INFO("device stopped dev={}", cfg_.name);
}

nlohmann::json VhostCryptoDevice::describe() const {
  nlohmann::json j = describe_common();
  j["control_queue"] = ready_.load(std::memory_order_acquire) && has_control_;
  j["engine"] = backend_->name();
  j["config"] = {{"crypto_services", config_.crypto_services},
                 {"cipher_algo_l", config_.cipher_algo_l},
                 {"hash_algo", config_.hash_algo},
                 {"mac_algo_l", config_.mac_algo_l},
                 {"aead_algo", config_.aead_algo},
                 {"max_cipher_key_len", config_.max_cipher_key_len},
                 {"max_auth_key_len", config_.max_auth_key_len},
                 {"max_size", config_.max_size}};
  j["sessions"] = sessions_ ? sessions_->active() : 0;
  return j;
}

nlohmann::json VhostCryptoDevice::stats() const {
  nlohmann::json queues = nlohmann::json::array();
  nlohmann::json total = nlohmann::json::object();
  for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
    const auto& s = stats_[q];
    nlohmann::json j = {{"queue", q},
                        {"cipher_ops", s.cipher_ops.get()},
                        {"hash_ops", s.hash_ops.get()},
                        {"mac_ops", s.mac_ops.get()},
                        {"chain_ops", s.chain_ops.get()},
                        {"aead_ops", s.aead_ops.get()},
                        {"bytes", s.bytes.get()},
                        {"bad_requests", s.bad_requests.get()},
                        {"invalid_session", s.invalid_session.get()},
                        {"auth_failures", s.auth_failures.get()},
                        {"engine_errors", s.engine_errors.get()},
                        {"kicks", s.kicks.get()},
                        {"notifications", s.notifications.get()}};
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "queue") {
        total[it.key()] = total.value(it.key(), std::uint64_t{0}) + it.value().get<std::uint64_t>();
      }
    }
    j["latency_ns"] = {{"count", s.latency.count()},
                       {"p50", s.latency.percentile(50)},
                       {"p99", s.latency.percentile(99)},
                       {"p999", s.latency.percentile(99.9)}};
    queues.push_back(std::move(j));
  }
  std::vector<std::pair<const char*, std::uint64_t>> counters;
  backend_->counters(counters);
  nlohmann::json backend = {{"engine", backend_->name()}};
  for (const auto& [name, value] : counters) {
    backend[name] = value;
  }
  const bool running = ready_.load(std::memory_order_acquire);
  return nlohmann::json{{"type", "crypto"},
                        {"backend", backend},
                        {"state", !started_ ? "stopped"
                                  : running ? "running"
                                            : "waiting"},
                        {"queues", queues},
                        {"total", total},
                        {"sessions",
                         {{"active", sessions_ ? sessions_->active() : 0},
                          {"max", cfg_.crypto.max_sessions},
                          {"created", session_stats_.created.get()},
                          {"closed", session_stats_.closed.get()},
                          {"refused", session_stats_.refused.get()},
                          {"exhausted", session_stats_.exhausted.get()}}}};
}

// ---- Sessions (polling lcore or rte_vhost thread) --------------------------------

std::uint8_t VhostCryptoDevice::create_session(const crypto::SessionParams& p, std::uint64_t& id,
                                               const char*& why) noexcept {
  std::uint8_t st = crypto::validate_session(p, backend_->capabilities(), why);
  if (st != crypto::kStatusOk) {
    session_stats_.refused.add(1);
    return st;
  }
  std::lock_guard<std::mutex> lock(create_mu_);
  if (sessions_->active() >= sessions_->capacity()) {
    why = "session limit of the device reached";
    session_stats_.refused.add(1);
    session_stats_.exhausted.add(1);
    return crypto::kStatusNoSpc;
  }
  auto s = backend_->create_session(p);
  if (!s) {
    why = s.error().what;
    session_stats_.refused.add(1);
    if (s.error().code == Errc::kResourceExhausted) {
      session_stats_.exhausted.add(1);
      return crypto::kStatusNoSpc;
    }
    return crypto::kStatusNotSupp;
  }
  crypto::SessionInfo info{p, *s};
  st = sessions_->insert(info, id);
  if (st != crypto::kStatusOk) {
    backend_->destroy_session(*s);
    why = "session limit of the device reached";
    session_stats_.refused.add(1);
    session_stats_.exhausted.add(1);
    return st;
  }
  session_stats_.created.add(1);
  return crypto::kStatusOk;
}

std::uint8_t VhostCryptoDevice::close_session(std::uint64_t id) noexcept {
  crypto::BackendSession now = nullptr;
  const std::uint8_t st = sessions_->close(id, now);
  if (st == crypto::kStatusOk) {
    session_stats_.closed.add(1);
    if (now != nullptr) {
      std::lock_guard<std::mutex> lock(create_mu_);
      backend_->destroy_session(now);
    }
  }
  return st;
}

void VhostCryptoDevice::destroy_all_sessions() noexcept {
  if (!sessions_) {
    return;
  }
  std::lock_guard<std::mutex> lock(create_mu_);
  for (auto* s : sessions_->clear()) {
    backend_->destroy_session(s);
  }
}

MessageResult VhostCryptoDevice::on_create_session_message(int vid, VhostUserMessage& m) noexcept {
  if (m.size < crypto::kVhostSessionBytes || m.size > VhostUserMessage::kMaxPayload) {
    VIOPOOL_LOG_WARN_RL("short CREATE_CRYPTO_SESSION dev={} vid={} size={}", cfg_.name, vid,
                        m.size);
    return MessageResult::kError;
  }
  crypto::SessionParams p;
  const char* why = "";
  std::uint8_t st = crypto::parse_vhost_user_session(
      reinterpret_cast<const std::uint8_t*>(m.payload()), m.size, p, why);
  std::uint64_t id = 0;
  if (st == crypto::kStatusOk) {
    st = create_session(p, id, why);
  } else {
    session_stats_.refused.add(1);
  }
  // Reply: the same payload with session_id set, negative on failure.
  const std::int64_t reply = st == crypto::kStatusOk ? static_cast<std::int64_t>(id) : -st;
  m.put<std::int64_t>(reply, 0);
  if (st != crypto::kStatusOk) {
    VIOPOOL_LOG_WARN_RL("session refused dev={} vid={} via=vhost-user status={} reason=\"{}\"",
                        cfg_.name, vid, crypto::status_name(st), why);
  } else {
    VIOPOOL_LOG_DEBUG("session created dev={} vid={} via=vhost-user id={:#x} kind={}", cfg_.name,
                      vid, id, crypto::to_string(p.kind));
  }
  // Keys are not kept in the message buffer longer than needed.
  std::memset(m.payload() + crypto::kVhostSessionCipherKeyOffset, 0,
              crypto::kVhostSessionBytes - crypto::kVhostSessionCipherKeyOffset);
  return MessageResult::kReply;
}

MessageResult VhostCryptoDevice::on_close_session_message(int vid, VhostUserMessage& m) noexcept {
  if (m.size < sizeof(std::uint64_t)) {
    VIOPOOL_LOG_WARN_RL("short CLOSE_CRYPTO_SESSION dev={} vid={} size={}", cfg_.name, vid, m.size);
    return MessageResult::kError;
  }
  const auto id = m.get<std::uint64_t>(0);
  if (close_session(id) != crypto::kStatusOk) {
    // QEMU expects no answer and reports success to the guest whatever we do.
    VIOPOOL_LOG_WARN_RL("close of an unknown session dev={} vid={} id={:#x}", cfg_.name, vid, id);
  }
  return MessageResult::kHandled;
}

// ---- rte_vhost thread ----------------------------------------------------------

MessageResult VhostCryptoDevice::on_message(int vid, VhostUserMessage& m) noexcept {
  if (auto r = handle_config_message(vid, m, config_bytes_); r != MessageResult::kNotHandled) {
    return r;
  }
  if (m.request == kVhostUserCreateCryptoSession) {
    return on_create_session_message(vid, m);
  }
  if (m.request == kVhostUserCloseCryptoSession) {
    return on_close_session_message(vid, m);
  }
  if (m.request == kVhostUserSetFeatures && m.size >= sizeof(std::uint64_t)) {
    // QEMU's cryptodev-vhost-user acks VHOST_USER_F_PROTOCOL_FEATURES (so
    // rings start disabled) but passes none of the guest's features and never
    // sends SET_VRING_ENABLE (QEMU 7.2 starts it with vrings=false). Such a
    // frontend is recognised by a VERSION_1-less ack; its rings are taken as
    // enabled once kicked, as vhost-user has them without protocol features.
    const auto acked = m.get<std::uint64_t>();
    const std::uint64_t proto = std::uint64_t{1} << virtio::kFeatureProtocolFeatures;
    const std::uint64_t v1 = std::uint64_t{1} << virtio::kFeatureVersion1;
    if ((acked & proto) != 0 && (acked & v1) == 0 && (offered_features_ & proto) != 0) {
      m.put<std::uint64_t>(acked & ~proto);
      rings_enabled_at_kick_ = true;
      VIOPOOL_LOG_INFO(
          "frontend never enables rings (QEMU cryptodev-vhost-user): serving them "
          "once kicked dev={} vid={} acked={:#x}",
          cfg_.name, vid, acked);
    }
  }
  // Data queues plus the control queue.
  return handle_common_message(vid, m, offered_features_,
                               static_cast<std::uint16_t>(cfg_.queues + 1));
}

void VhostCryptoDevice::connection_closed(int vid) noexcept {
  (void)vid;
  // Sessions belong to the driver instance: a new connection starts clean.
  destroy_all_sessions();
  rings_enabled_at_kick_ = false;
}

int VhostCryptoDevice::on_new_device(int vid) noexcept {
  const std::uint16_t nr = rte_vhost_get_vring_num(vid);
  const std::uint16_t nq = std::min<std::uint16_t>(cfg_.queues, nr);
  std::array<std::uint16_t, kMaxRings> which{};
  std::uint16_t n = 0;
  for (std::uint16_t q = 0; q < nq; ++q) {
    which[n++] = q;
  }
  const bool control = nr > cfg_.queues;
  if (control) {
    which[n++] = cfg_.queues;
  }
  auto features =
      rings_.attach(vid, std::span<const std::uint16_t>(which.data(), n), log_ids_, cfg_.name);
  if (!features) {
    return -1;
  }
  for (std::uint16_t q = 0; q < nq; ++q) {
    queues_[q].reset(std::min<std::uint32_t>(rings_.ring(q).vq->size(), kMaxSlots));
  }
  if (rings_enabled_at_kick_) {
    for (std::uint16_t i = 0; i < n; ++i) {
      set_ring_enabled(which[i], true);
    }
  }
  has_control_ = control;
  publish_ready(vid, nq, *features);
  VIOPOOL_LOG_INFO(
      "device ready dev={} vid={} features={:#x} queues={} control_queue={} regions={}", cfg_.name,
      vid, *features, nq, control, rings_.regions());
  return 0;
}

void VhostCryptoDevice::drain(std::uint16_t nq) noexcept {
  drain_until_idle("engine", [&] {
    bool busy = false;
    for (std::uint16_t q = 0; q < nq; ++q) {
      auto& qu = queues_[q];
      if (!rings_.ring(q).vq) {
        continue;
      }
      // Requests not yet taken by the engine are answered with ERR.
      for (auto* job : qu.pending) {
        finish(qu, *static_cast<crypto::CryptoRequest*>(job->cookie), crypto::kStatusErr);
      }
      qu.pending.clear();
      crypto::CryptoCompletion comps[kBurst];
      const auto k = backend_->poll(q, comps, kBurst);
      for (std::uint32_t i = 0; i < k; ++i) {
        finish(qu, *static_cast<crypto::CryptoRequest*>(comps[i].cookie), comps[i].status);
      }
      flush_used(qu, q, stats_[q].notifications);
      busy = busy || backend_->in_flight(q) > 0;
    }
    return busy;
  });
}

void VhostCryptoDevice::on_destroy_device(int vid) noexcept {
  withdraw();
  drain(nq_);  // in-flight ops write into guest memory, still mapped here
  rings_.detach(vid);
  for (std::uint16_t q = 0; q < served_rings(); ++q) {
    set_ring_enabled(q, false);
  }
  std::lock_guard<std::mutex> lock(mu_);
  nq_ = 0;
  has_control_ = false;
  VIOPOOL_LOG_INFO("device detached dev={} vid={}", cfg_.name, vid);
}

// ---- polling lcore ----------------------------------------------------------------

void VhostCryptoDevice::release_refs(crypto::SessionTable::Entry* const* entries,
                                     std::uint32_t n) noexcept {
  crypto::BackendSession dead[kBurst];
  const std::uint32_t nd = sessions_->release_burst(entries, std::min(n, kBurst), dead);
  if (nd > 0) {
    std::lock_guard<std::mutex> lock(create_mu_);
    for (std::uint32_t i = 0; i < nd; ++i) {
      backend_->destroy_session(dead[i]);
    }
  }
}

void VhostCryptoDevice::release_sessions(const crypto::CryptoCompletion* comps,
                                         std::uint32_t n) noexcept {
  crypto::SessionTable::Entry* entries[kBurst];
  n = std::min(n, kBurst);
  for (std::uint32_t i = 0; i < n; ++i) {
    auto& req = *static_cast<crypto::CryptoRequest*>(comps[i].cookie);
    entries[i] = static_cast<crypto::SessionTable::Entry*>(req.session_ref);
    req.session_ref = nullptr;
  }
  release_refs(entries, n);
}

void VhostCryptoDevice::finish(Queue& qu, crypto::CryptoRequest& req,
                               std::uint8_t status) noexcept {
  if (req.session_ref != nullptr) {
    auto* e = static_cast<crypto::SessionTable::Entry*>(req.session_ref);
    req.session_ref = nullptr;
    release_refs(&e, 1);
  }
  const std::uint32_t len = crypto::complete_data(req, status);
  qu.used.push_back(virtio::UsedElem{req.head, len, req.desc_count});
  qu.release(req);
}

bool VhostCryptoDevice::poll_control() noexcept {
  const std::uint16_t cq = cfg_.queues;
  auto& ring = rings_.ring(cq);
  if (!has_control_ || !ring.vq || !ring_enabled(cq)) {
    return false;
  }
  bool work = false;
  crypto::CtrlCommand cmd;
  // Sessions are created synchronously: a few per poll keep data queues moving.
  for (int i = 0; i < 8; ++i) {
    if (!rings_.pop(cq, chain_, log_ids_[cq])) {
      break;
    }
    work = true;
    crypto::parse_ctrl(chain_, rings_.memory(), cmd);
    std::uint8_t st = cmd.status;
    std::uint64_t id = 0;
    const char* why = cmd.why;
    if (cmd.kind == crypto::CtrlKind::kCreate) {
      st = create_session(cmd.params, id, why);
      cmd.params.wipe_keys();
    } else if (cmd.kind == crypto::CtrlKind::kDestroy) {
      st = close_session(cmd.session_id);
      why = "unknown session id";
    } else {
      session_stats_.refused.add(1);
    }
    if (st != crypto::kStatusOk) {
      VIOPOOL_LOG_WARN_RL("control request refused dev={} status={} reason=\"{}\"", cfg_.name,
                          crypto::status_name(st), why);
    }
    const std::uint32_t len = crypto::complete_ctrl(chain_, rings_.memory(), cmd, st, id);
    ring.vq->push_used(chain_, len);
  }
  if (work) {
    rings_.notify(vid_, cq);
  }
  return work;
}

bool VhostCryptoDevice::poll_queue(std::uint16_t q) noexcept {
  auto& qu = queues_[q];
  auto& ring = rings_.ring(q);
  if (!ring.vq || !ring_enabled(q)) {
    return false;
  }
  auto& st = stats_[q];
  bool work = false;

  crypto::CryptoCompletion comps[kBurst];
  const std::uint32_t n = backend_->poll(q, comps, kBurst);
  if (n) {
    work = true;
    release_sessions(comps, n);
    const std::uint64_t now = now_ns();
    for (std::uint32_t i = 0; i < n; ++i) {
      auto& req = *static_cast<crypto::CryptoRequest*>(comps[i].cookie);
      st.latency.record(now - req.start_ns);
      if (comps[i].status == crypto::kStatusBadMsg) {
        st.auth_failures.add(1);
      } else if (comps[i].status != crypto::kStatusOk) {
        st.engine_errors.add(1);
        VIOPOOL_LOG_WARN_RL("engine failed an op {} kind={}", log_ids_[q],
                            crypto::to_string(req.kind));
      }
      finish(qu, req, comps[i].status);
    }
  }

  const auto submit = [&](crypto::CryptoJob* const* jobs, std::uint32_t n) {
    return backend_->submit(q, jobs, n);
  };
  work |= qu.resubmit(submit);

  if (qu.pending.empty()) {
    // Pop and parse a burst, look its sessions up under one lock, then bind
    // and hand the good ones to the engine.
    crypto::CryptoRequest* popped[kBurst];
    std::uint64_t ids[kBurst];
    crypto::SessionTable::Entry* entries[kBurst];
    std::uint32_t np = 0;
    while (np < kBurst && !qu.free.empty()) {
      if (!rings_.pop(q, chain_, log_ids_[q])) {
        break;
      }
      work = true;
      auto& req = qu.take();
      crypto::parse_data(chain_, rings_.memory(), req);
      if (!req.needs_op) {
        st.bad_requests.add(1);
        VIOPOOL_LOG_WARN_RL("bad request {} opcode={:#x} reason={}", log_ids_[q], req.opcode,
                            crypto::to_string(req.reject));
        finish(qu, req, req.immediate_status);
        continue;
      }
      ids[np] = req.session_id;
      popped[np++] = &req;
    }
    if (np > 0) {
      sessions_->acquire_burst(ids, entries, np);
    }
    crypto::CryptoJob* batch[kBurst];
    std::uint32_t nb = 0;
    std::uint64_t burst_start = 0;  // one clock read per burst
    for (std::uint32_t i = 0; i < np; ++i) {
      auto& req = *popped[i];
      auto* entry = entries[i];
      if (entry == nullptr) {
        st.invalid_session.add(1);
        VIOPOOL_LOG_WARN_RL("request for an unknown session {} id={:#x}", log_ids_[q],
                            req.session_id);
        finish(qu, req, crypto::kStatusInvSess);
        continue;
      }
      req.session_ref = entry;
      const char* why = "";
      const std::uint8_t bs = crypto::bind_session(req, entry->info, backend_->capabilities(), why);
      if (bs != crypto::kStatusOk) {
        (bs == crypto::kStatusInvSess ? st.invalid_session : st.bad_requests).add(1);
        VIOPOOL_LOG_WARN_RL("bad request {} opcode={:#x} status={} reason=\"{}\"", log_ids_[q],
                            req.opcode, crypto::status_name(bs), why);
        finish(qu, req, bs);
        continue;
      }
      switch (req.kind) {
        case crypto::SessionKind::kCipher:
          st.cipher_ops.add(1);
          break;
        case crypto::SessionKind::kHash:
          st.hash_ops.add(1);
          break;
        case crypto::SessionKind::kMac:
          st.mac_ops.add(1);
          break;
        case crypto::SessionKind::kChain:
          st.chain_ops.add(1);
          break;
        case crypto::SessionKind::kAead:
          st.aead_ops.add(1);
          break;
      }
      st.bytes.add(req.job.data_len);
      if (burst_start == 0) {
        burst_start = now_ns();
      }
      req.start_ns = burst_start;
      batch[nb++] = &req.job;
    }
    qu.submit_batch(batch, nb, submit);
  }
  flush_used(qu, q, st.notifications);
  return work;
}

bool VhostCryptoDevice::poll() noexcept {
  if (!ready_.load(std::memory_order_acquire)) {
    return false;
  }
  bool work = poll_control();
  for (std::uint16_t q = 0; q < nq_; ++q) {
    work |= poll_queue(q);
  }
  if (!work && backend_->remote() && work_out(*backend_)) {
    // Ops are out on a pooled engine and nothing else is to be done: let the
    // appliance, which may share this CPU, run. Its answers are then caught
    // by the spinning loop (spin_when_idle) without a wake-up on either side,
    // which in a VM costs the waker 12-15 us of CPU: +35 % ops/s with the
    // appliance on this CPU, +15 % with it on another.
    ::sched_yield();
  }
  return work;
}

bool VhostCryptoDevice::spin_when_idle() const noexcept {
  // A pooled engine: spin (yielding, see poll()) only while ops are out.
  return !backend_->remote() || (ready_.load(std::memory_order_acquire) && work_out(*backend_));
}

bool VhostCryptoDevice::arm(runtime::WaitSet& ws) noexcept {
  if (!ready_.load(std::memory_order_acquire)) {
    return true;
  }
  bool pending = false;
  for (std::uint16_t q = 0; q < nq_; ++q) {
    if (!rings_.ring(q).vq || !ring_enabled(q)) {
      continue;
    }
    if (rings_.arm(vid_, q, ws) && !queues_[q].free.empty()) {
      pending = true;
    }
    // Software engines complete within the enqueue call; an op still in
    // flight means the engine is busy: poll again soon rather than sleep. A
    // remote engine gives a descriptor to sleep on instead.
    if (backend_->in_flight(q) > 0 || !queues_[q].pending.empty() ||
        backend_->needs_service(q)) {
      // Requests the engine refused wait for its completions: a remote
      // engine's descriptor wakes the loop for those.
      const int fd = backend_->completion_fd(q);
      const bool refused = !queues_[q].pending.empty();
      if (fd < 0 || (refused && !backend_->remote()) || !backend_->prepare_sleep(q)) {
        pending = true;
      } else if (ws.add(fd) < 0) {
        ws.wake_within_us(100);
      }
    }
  }
  const std::uint16_t cq = cfg_.queues;
  if (has_control_ && rings_.ring(cq).vq && ring_enabled(cq)) {
    pending = rings_.arm(vid_, cq, ws) || pending;
  }
  return !pending;
}

void VhostCryptoDevice::disarm(const runtime::WaitSet& ws) noexcept {
  if (!ready_.load(std::memory_order_acquire)) {
    return;
  }
  for (std::uint16_t q = 0; q < nq_; ++q) {
    stats_[q].kicks.add(rings_.disarm(q, ws));
  }
  if (has_control_) {
    rings_.disarm(cfg_.queues, ws);
  }
}

}  // namespace viopool::vhost
