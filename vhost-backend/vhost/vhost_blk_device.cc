// virtio-blk over vhost-user: our own ring walking and request pipeline on the
// polling lcore; attach/detach and the config space on rte_vhost's thread.
#include "vhost-backend/vhost/vhost_blk_device.h"

#include <sched.h>

#include <rte_vhost.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("blk")

namespace viopool::vhost {
VhostBlkDevice::VhostBlkDevice(control::DeviceConfig cfg,
                               std::unique_ptr<blk::BlockBackend> backend, runtime::PollLoop& loop)
    : VhostRingDevice(std::move(cfg), loop), backend_(std::move(backend)) {}

VhostBlkDevice::~VhostBlkDevice() { stop(); }

Result<void> VhostBlkDevice::start(std::string& why) {
  if (auto r = backend_->start(cfg_.queues); !r) {
    why = std::string("backend ") + backend_->kind() + ": " + to_string(r.error());
    return r;
  }
  opts_ = blk::BlkDeviceOptions{cfg_.queues, cfg_.read_only, cfg_.packed_ring, backend_->info()};
  if (opts_.backend.capacity_bytes < blk::kSectorSize) {
    backend_->stop();
    why = "backend capacity is below one sector";
    return fail(Errc::kInvalidArgument, "blk: empty backend");
  }
  limits_ = blk::limits(opts_);
  config_ = blk::config_space(opts_);
  offered_features_ = blk::offered_features(opts_);

  VhostSocketOptions o;
  o.path = cfg_.socket;
  o.role = cfg_.mode == control::SocketMode::kServer ? SocketRole::kServer : SocketRole::kClient;
  o.features = offered_features_;
  o.builtin_net = false;
  o.protocol_features_add =
      proto_bit(kProtoConfig) | proto_bit(kProtoMq) | proto_bit(kProtoReplyAck);
  // Net-only and unimplemented ones are not offered.
  o.protocol_features_remove = proto_bit(kProtoRarp) | proto_bit(kProtoNetMtu) |
                               proto_bit(kProtoCryptoSession) | proto_bit(kProtoPagefault) |
                               proto_bit(kProtoHostNotifier);
  auto offered = register_socket(o, this, why);
  if (!offered) {
    backend_->stop();
    return unexpected(offered.error());
  }
  loop_.add(this);
  started_ = true;
  VIOPOOL_LOG_INFO(
      "device started dev={} type=blk socket={} mode={} queues={} backend={} capacity={} "
      "block_size={} ro={} loop={}",
      cfg_.name, cfg_.socket, control::to_string(cfg_.mode), cfg_.queues, backend_->kind(),
      opts_.backend.capacity_bytes, opts_.backend.block_size, limits_.read_only, loop_.name());
  return {};
}

void VhostBlkDevice::stop() noexcept {
  if (!started_) {
    return;
  }
  started_ = false;
  unregister_socket(cfg_.socket);  // runs on_destroy_device (drain) here if attached
  loop_.remove(this);
  backend_->stop();
  VIOPOOL_LOG_INFO("device stopped dev={}", cfg_.name);
}

nlohmann::json VhostBlkDevice::describe() const {
  nlohmann::json j = describe_common();
  j["capacity_bytes"] = opts_.backend.capacity_bytes;
  j["block_size"] = opts_.backend.block_size;
  j["effective_read_only"] = limits_.read_only;
  return j;
}

nlohmann::json VhostBlkDevice::stats() const {
  nlohmann::json queues = nlohmann::json::array();
  nlohmann::json total = nlohmann::json::object();
  for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
    const auto& s = stats_[q];
    nlohmann::json j = {{"queue", q},
                        {"reads", s.reads.get()},
                        {"writes", s.writes.get()},
                        {"flushes", s.flushes.get()},
                        {"discards", s.discards.get()},
                        {"write_zeroes", s.write_zeroes.get()},
                        {"get_ids", s.get_ids.get()},
                        {"read_bytes", s.read_bytes.get()},
                        {"write_bytes", s.write_bytes.get()},
                        {"io_errors", s.io_errors.get()},
                        {"rejected", s.rejected.get()},
                        {"unsupported", s.unsupported.get()},
                        {"kicks", s.kicks.get()},
                        {"notifications", s.notifications.get()}};
    add_queue_stats(j, total, s.latency);
    queues.push_back(std::move(j));
  }
  std::vector<std::pair<const char*, std::uint64_t>> counters;
  backend_->counters(counters);
  nlohmann::json backend = {{"kind", backend_->kind()}};
  for (const auto& [name, value] : counters) {
    backend[name] = value;
  }
  return nlohmann::json{{"type", "blk"},
                        {"state", state_name()},
                        {"queues", queues},
                        {"total", total},
                        {"backend", backend}};
}

// ---- rte_vhost thread ----------------------------------------------------------

MessageResult VhostBlkDevice::on_message(int vid, VhostUserMessage& m) noexcept {
  if (auto r = handle_config_message(vid, m, config_); r != MessageResult::kNotHandled) {
    return r;
  }
  return handle_common_message(vid, m, offered_features_, cfg_.queues);
}

int VhostBlkDevice::on_new_device(int vid) noexcept {
  const std::uint16_t nq = std::min<std::uint16_t>(cfg_.queues, rte_vhost_get_vring_num(vid));
  std::array<std::uint16_t, kMaxRings> which{};
  for (std::uint16_t q = 0; q < nq; ++q) {
    which[q] = q;
  }
  auto features =
      rings_.attach(vid, std::span<const std::uint16_t>(which.data(), nq), log_ids_, cfg_.name);
  if (!features) {
    return -1;
  }
  for (std::uint16_t q = 0; q < nq; ++q) {
    queues_[q].reset(std::min<std::uint32_t>(rings_.ring(q).vq->size(), kMaxSlots));
  }
  publish_ready(vid, nq, *features);
  VIOPOOL_LOG_INFO("device ready dev={} vid={} features={:#x} queues={} regions={}", cfg_.name, vid,
                   *features, nq, rings_.regions());
  return 0;
}

void VhostBlkDevice::drain(std::uint16_t nq) noexcept {
  drain_until_idle("backend", [&] {
    bool busy = false;
    for (std::uint16_t q = 0; q < nq; ++q) {
      auto& qu = queues_[q];
      if (!rings_.ring(q).vq) {
        continue;
      }
      qu.resubmit(
          [&](blk::BlkIo* const* io, std::uint32_t n) { return backend_->submit(q, io, n); });
      blk::BlkCompletion comps[kBurst];
      const auto n = backend_->poll(q, comps, kBurst);
      for (std::uint32_t i = 0; i < n; ++i) {
        auto* req = static_cast<blk::BlkRequest*>(comps[i].cookie);
        finish(qu, q, *req, comps[i].result < 0 ? blk::kStatusIoErr : blk::kStatusOk);
      }
      flush_used(qu, q, stats_[q].notifications);
      busy = busy || !qu.pending.empty() || backend_->in_flight(q) > 0;
    }
    return busy;
  });
}

void VhostBlkDevice::on_destroy_device(int vid) noexcept {
  withdraw();
  const std::uint16_t nq = nq_;
  drain(nq);  // in-flight I/O writes into guest memory, still mapped here
  rings_.detach(vid);
  for (std::uint16_t q = 0; q < nq; ++q) {
    set_ring_enabled(q, false);
  }
  std::lock_guard<std::mutex> lock(mu_);
  nq_ = 0;
  VIOPOOL_LOG_INFO("device detached dev={} vid={}", cfg_.name, vid);
}

// ---- polling lcore ----------------------------------------------------------------

void VhostBlkDevice::finish(Queue& qu, std::uint16_t q, blk::BlkRequest& req,
                            std::uint8_t status) noexcept {
  (void)q;
  const std::uint32_t len = blk::complete_request(req, status);
  qu.used.push_back(virtio::UsedElem{req.head, len, req.desc_count});
  qu.release(req);
}

bool VhostBlkDevice::poll_queue(std::uint16_t q) noexcept {
  auto& qu = queues_[q];
  auto& ring = rings_.ring(q);
  if (!ring.vq || !ring_enabled(q)) {
    return false;
  }
  auto& st = stats_[q];
  bool work = false;

  blk::BlkCompletion comps[kBurst];
  const std::uint32_t n = backend_->poll(q, comps, kBurst);
  if (n) {
    work = true;
    const std::uint64_t now = now_ns();
    for (std::uint32_t i = 0; i < n; ++i) {
      auto* req = static_cast<blk::BlkRequest*>(comps[i].cookie);
      st.latency.record(now - req->start_ns);
      if (comps[i].result < 0) {
        st.io_errors.add(1);
        VIOPOOL_LOG_WARN_RL("backend I/O failed {} type={} sector={} errno={}", log_ids_[q],
                            req->type, req->sector, -comps[i].result);
        finish(qu, q, *req, blk::kStatusIoErr);
      } else {
        finish(qu, q, *req, blk::kStatusOk);
      }
    }
  }

  const auto submit = [&](blk::BlkIo* const* io, std::uint32_t n) {
    return backend_->submit(q, io, n);
  };
  work |= qu.resubmit(submit);

  if (qu.pending.empty()) {
    blk::BlkIo* batch[kBurst];
    std::uint32_t nb = 0;
    while (nb < kBurst && !qu.free.empty()) {
      if (!rings_.pop(q, chain_, log_ids_[q])) {
        break;
      }
      work = true;
      auto& req = qu.take();
      blk::parse_request(chain_, rings_.memory(), limits_, cfg_.serial, req);
      switch (req.type) {
        case blk::kTypeIn:
          st.reads.add(1);
          break;
        case blk::kTypeOut:
          st.writes.add(1);
          break;
        case blk::kTypeFlush:
          st.flushes.add(1);
          break;
        case blk::kTypeDiscard:
          st.discards.add(1);
          break;
        case blk::kTypeWriteZeroes:
          st.write_zeroes.add(1);
          break;
        case blk::kTypeGetId:
          st.get_ids.add(1);
          break;
        default:
          break;
      }
      if (!req.needs_io) {
        if (req.reject == blk::BlkReject::kUnsupported) {
          st.unsupported.add(1);
        } else if (req.reject != blk::BlkReject::kNone) {
          st.rejected.add(1);
          VIOPOOL_LOG_WARN_RL("bad request {} type={} sector={} reason={}", log_ids_[q], req.type,
                              req.sector, blk::to_string(req.reject));
        }
        finish(qu, q, req, req.immediate_status);
        continue;
      }
      if (req.io.op == blk::BlkOp::kRead) {
        st.read_bytes.add(req.data_len);
      } else if (req.io.op == blk::BlkOp::kWrite) {
        st.write_bytes.add(req.data_len);
      }
      req.start_ns = now_ns();
      batch[nb++] = &req.io;
    }
    qu.submit_batch(batch, nb, submit);
  }
  flush_used(qu, q, st.notifications);
  return work;
}

bool VhostBlkDevice::poll() noexcept {
  // Acquire: pairs with the release in on_new_device.
  if (!ready_.load(std::memory_order_acquire)) {
    return false;
  }
  bool work = false;
  for (std::uint16_t q = 0; q < nq_; ++q) {
    work |= poll_queue(q);
  }
  if (!work && work_out(*backend_)) {
    // Requests are out and nothing else is to be done: let whoever finishes
    // them have this CPU (the kernel's io-wq workers and softirqs, or the
    // appliance daemon of a pooled volume), and run the ring's deferred
    // completion work on the way back (COOP_TASKRUN). Spinning without a
    // system call starved them: p99 514 us at QD32 on zram (2.6 ms when
    // never sleeping), 87 us with this.
    ::sched_yield();
  }
  return work;
}

bool VhostBlkDevice::spin_when_idle() const noexcept {
  // A pooled volume: spin (yielding, see poll()) only while requests are out,
  // so that the daemon answering them, which may share this CPU, runs and
  // its answer is caught without a wake-up.
  return !backend_->info().remote ||
         (ready_.load(std::memory_order_acquire) && work_out(*backend_));
}

bool VhostBlkDevice::arm(runtime::WaitSet& ws) noexcept {
  if (!ready_.load(std::memory_order_acquire)) {
    return true;
  }
  bool pending = false;
  for (std::uint16_t q = 0; q < nq_; ++q) {
    auto& qu = queues_[q];
    qu.completion_slot = -1;
    if (!rings_.ring(q).vq || !ring_enabled(q)) {
      continue;
    }
    if (rings_.arm(vid_, q, ws) && !qu.free.empty()) {
      pending = true;
    }
    if (backend_->in_flight(q) > 0 || !qu.pending.empty() || backend_->needs_service(q)) {
      const int fd = backend_->completion_fd(q);
      if (fd < 0 || !backend_->prepare_sleep(q)) {
        pending = true;  // completions are immediate or already waiting
      } else {
        qu.completion_slot = ws.add(fd);
        if (qu.completion_slot < 0) {
          ws.wake_within_us(100);
        }
      }
    }
  }
  return !pending;
}

void VhostBlkDevice::disarm(const runtime::WaitSet& ws) noexcept {
  if (!ready_.load(std::memory_order_acquire)) {
    return;
  }
  for (std::uint16_t q = 0; q < nq_; ++q) {
    stats_[q].kicks.add(rings_.disarm(q, ws));
    queues_[q].completion_slot = -1;
  }
}

}  // namespace viopool::vhost
