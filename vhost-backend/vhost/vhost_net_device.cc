// virtio-net over vhost-user: attach/detach on rte_vhost's thread, burst
// forwarding and sleep/wake (guest kicks) on the polling lcore.
#include "vhost-backend/vhost/vhost_net_device.h"

#include <rte_atomic.h>
#include <rte_mbuf.h>
#include <rte_vhost.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "vhost-backend/base/log.h"
#include "vhost-backend/devices/net/net_device.h"

VIOPOOL_LOG_MODULE("net")

namespace viopool::vhost {
namespace {

std::uint64_t bytes_of(rte_mbuf* const* pkts, std::uint16_t n) {
  std::uint64_t b = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    b += rte_pktmbuf_pkt_len(pkts[i]);
  }
  return b;
}

}  // namespace

const char* to_string(NetDeviceState s) noexcept {
  switch (s) {
    case NetDeviceState::kWaiting: return "waiting";
    case NetDeviceState::kRunning: return "running";
    case NetDeviceState::kStopped: return "stopped";
  }
  return "?";
}

VhostNetDevice::VhostNetDevice(control::DeviceConfig cfg, std::unique_ptr<net::NetBackend> backend,
                               rte_mempool* pool, runtime::PollLoop& loop,
                               std::uint32_t idle_sleep_us)
    : VhostDevice(std::move(cfg), loop),
      backend_(std::move(backend)),
      pool_(pool),
      offered_features_(net::offered_features(
          {cfg_.queue_pairs, cfg_.mrg_rxbuf, cfg_.packed_ring})),
      idle_sleep_us_(idle_sleep_us) {
}

VhostNetDevice::~VhostNetDevice() { stop(); }

Result<void> VhostNetDevice::start(std::string& why) {
  if (auto r = backend_->start(cfg_.queue_pairs); !r) {
    why = std::string("backend ") + backend_->kind() + ": " + to_string(r.error());
    return r;
  }
  VhostSocketOptions o;
  o.path = cfg_.socket;
  o.role = cfg_.mode == control::SocketMode::kServer ? SocketRole::kServer : SocketRole::kClient;
  o.features = offered_features_;
  o.builtin_net = true;
  auto offered = register_socket(o, this, why);
  if (!offered) {
    backend_->stop();
    return unexpected(offered.error());
  }
  offered_features_ = *offered;
  loop_.add(this);
  started_ = true;
  VIOPOOL_LOG_INFO("device started dev={} socket={} mode={} queue_pairs={} backend={} loop={}",
                   cfg_.name, cfg_.socket, control::to_string(cfg_.mode), cfg_.queue_pairs,
                   backend_->kind(), loop_.name());
  return {};
}

void VhostNetDevice::stop() noexcept {
  if (!started_) {
    return;
  }
  started_ = false;
  unregister_socket(cfg_.socket);  // runs on_destroy_device here if attached
  loop_.remove(this);
  free_stashes();
  backend_->stop();
  VIOPOOL_LOG_INFO("device stopped dev={}", cfg_.name);
}

NetDeviceInfo VhostNetDevice::info() const {
  std::lock_guard<std::mutex> lock(mu_);
  NetDeviceInfo i{};
  i.state = !started_ ? NetDeviceState::kStopped
            : ready_.load(std::memory_order_acquire) ? NetDeviceState::kRunning
                                                     : NetDeviceState::kWaiting;
  i.vid = vid_.load(std::memory_order_relaxed);
  i.offered_features = offered_features_;
  i.negotiated_features = negotiated_features_;
  i.active_queue_pairs = i.state == NetDeviceState::kRunning ? active_qps_.load() : 0;
  i.connections = connections_;
  i.resets = resets_;
  return i;
}

std::uint64_t VhostNetDevice::guest_notifications(int vid, std::uint16_t vring) const {
  // rte_vhost counts the interrupts it sends per vring when stats are enabled.
  constexpr unsigned kMaxStats = 64;
  rte_vhost_stat_name names[kMaxStats];
  rte_vhost_stat values[kMaxStats];
  const int n = rte_vhost_vring_stats_get_names(vid, vring, names, kMaxStats);
  if (n <= 0 || n > static_cast<int>(kMaxStats)) {
    return 0;
  }
  if (rte_vhost_vring_stats_get(vid, vring, values, static_cast<unsigned>(n)) != n) {
    return 0;
  }
  for (int i = 0; i < n; ++i) {
    if (std::strstr(names[i].name, "guest_notifications") != nullptr) {
      return values[i].value;
    }
  }
  return 0;
}

std::vector<net::QueuePairSnapshot> VhostNetDevice::queue_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<net::QueuePairSnapshot> out;
  const int vid = vid_.load(std::memory_order_relaxed);
  const bool attached = ready_.load(std::memory_order_acquire);
  for (std::uint16_t q = 0; q < cfg_.queue_pairs; ++q) {
    auto s = net::snapshot(stats_[q]);
    if (attached) {
      s.notifications = guest_notifications(vid, static_cast<std::uint16_t>(2 * q)) +
                        guest_notifications(vid, static_cast<std::uint16_t>(2 * q + 1));
    }
    out.push_back(s);
  }
  return out;
}

namespace {
nlohmann::json queue_json(const net::QueuePairSnapshot& s) {
  return nlohmann::json{{"rx_packets", s.rx_packets}, {"rx_bytes", s.rx_bytes},
                        {"rx_drops", s.rx_drops},     {"tx_packets", s.tx_packets},
                        {"tx_bytes", s.tx_bytes},     {"tx_drops", s.tx_drops},
                        {"kicks", s.kicks},           {"wakeups", s.wakeups},
                        {"notifications", s.notifications}};
}
}  // namespace

nlohmann::json VhostNetDevice::describe() const {
  const auto i = info();
  nlohmann::json j = control::to_json(cfg_);
  j["state"] = to_string(i.state);
  j["vid"] = i.vid;
  j["active_queue_pairs"] = i.active_queue_pairs;
  j["features"] = {{"offered", i.offered_features}, {"negotiated", i.negotiated_features}};
  j["connections"] = i.connections;
  j["disconnects"] = i.resets;
  j["loop"] = loop_.name();
  return j;
}

nlohmann::json VhostNetDevice::stats() const {
  const auto qs = queue_stats();
  nlohmann::json queues = nlohmann::json::array();
  net::QueuePairSnapshot tot{};
  for (std::size_t q = 0; q < qs.size(); ++q) {
    auto j = queue_json(qs[q]);
    j["queue_pair"] = q;
    queues.push_back(j);
    tot.rx_packets += qs[q].rx_packets;
    tot.rx_bytes += qs[q].rx_bytes;
    tot.rx_drops += qs[q].rx_drops;
    tot.tx_packets += qs[q].tx_packets;
    tot.tx_bytes += qs[q].tx_bytes;
    tot.tx_drops += qs[q].tx_drops;
    tot.kicks += qs[q].kicks;
    tot.wakeups += qs[q].wakeups;
    tot.notifications += qs[q].notifications;
  }
  return nlohmann::json{{"type", "net"},
                        {"state", to_string(info().state)},
                        {"queues", queues},
                        {"total", queue_json(tot)}};
}

// ---- rte_vhost thread --------------------------------------------------------

MessageResult VhostNetDevice::on_message(int vid, VhostUserMessage& m) noexcept {
  // Frontends keep the control queue to themselves (QEMU and virtio_user
  // emulate it), so only the generic subset rule applies to SET_FEATURES.
  return handle_common_message(vid, m, offered_features_, cfg_.queue_pairs);
}

int VhostNetDevice::on_new_connection(int vid) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  ++connections_;
  VIOPOOL_LOG_INFO("frontend connected dev={} vid={}", cfg_.name, vid);
  return 0;
}

void VhostNetDevice::on_destroy_connection(int vid) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  ++resets_;
  VIOPOOL_LOG_INFO("frontend disconnected dev={} vid={}", cfg_.name, vid);
}

int VhostNetDevice::on_new_device(int vid) noexcept {
  std::uint64_t features = 0;
  rte_vhost_get_negotiated_features(vid, &features);
  const std::uint16_t nr = rte_vhost_get_vring_num(vid);
  const std::uint16_t qps = std::min<std::uint16_t>(cfg_.queue_pairs, nr / 2);
  if (qps == 0) {
    VIOPOOL_LOG_ERROR("frontend set up no complete queue pair dev={} vid={} vrings={}", cfg_.name,
                      vid, nr);
    return -1;
  }
  for (std::uint16_t i = 0; i < nr; ++i) {
    // Polling mode: ask the guest not to kick; arm() turns kicks back on
    // before the poller sleeps.
    rte_vhost_enable_guest_notification(vid, i, 0);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    negotiated_features_ = features;
    vid_.store(vid, std::memory_order_relaxed);
    active_qps_.store(qps, std::memory_order_relaxed);
  }
  // Release: vid_ and active_qps_ are visible to the poller once it sees ready_.
  ready_.store(true, std::memory_order_release);
  loop_.quiesce();  // wakes a sleeping loop so it starts polling now
  VIOPOOL_LOG_INFO("device ready dev={} vid={} features={:#x} vrings={} queue_pairs={}", cfg_.name,
                   vid, features, nr, qps);
  return 0;
}

void VhostNetDevice::on_destroy_device(int vid) noexcept {
  ready_.store(false, std::memory_order_release);
  // rte_vhost requires that the data path stop touching the vid before this
  // callback returns: wait for the loop's current iteration to finish.
  loop_.quiesce();
  free_stashes();
  notify_off_.fill(false);
  for (auto& e : enabled_) {
    e.store(false, std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(mu_);
  vid_.store(-1, std::memory_order_relaxed);
  VIOPOOL_LOG_INFO("device detached dev={} vid={}", cfg_.name, vid);
}

int VhostNetDevice::on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept {
  if (vring >= kMaxVrings || vring >= 2 * cfg_.queue_pairs) {
    if (enable) {
      VIOPOOL_LOG_WARN_RL("frontend enabled vring beyond the configured queue pairs dev={} vid={} "
                          "vring={} queue_pairs={}; it is not served",
                          cfg_.name, vid, vring, cfg_.queue_pairs);
    }
    return 0;
  }
  enabled_[vring].store(enable != 0, std::memory_order_release);
  VIOPOOL_LOG_DEBUG("vring {} dev={} vid={} vring={}", enable ? "enabled" : "disabled", cfg_.name,
                    vid, vring);
  return 0;
}

// ---- polling lcore ------------------------------------------------------------

void VhostNetDevice::free_stashes() noexcept {
  for (std::size_t q = 0; q < stash_.size(); ++q) {
    auto& s = stash_[q];
    if (s.count) {
      rte_pktmbuf_free_bulk(&s.pkts[s.head], s.count);
      stats_[q].rx_drops.add(s.count);
    }
    s.head = 0;
    s.count = 0;
  }
}

bool VhostNetDevice::poll_queue_pair(int vid, std::uint16_t q) noexcept {
  auto& st = stats_[q];
  bool work = false;
  const auto txq = static_cast<std::uint16_t>(2 * q + 1);
  const auto rxq = static_cast<std::uint16_t>(2 * q);

  if (enabled_[txq].load(std::memory_order_acquire)) {
    if (!notify_off_[txq]) {
      // A queue enabled after attach (multi-queue set up later) starts with
      // kicks on; turn them off for polling.
      rte_vhost_enable_guest_notification(vid, txq, 0);
      notify_off_[txq] = true;
    }
    // rte_vhost hands out at most 32 per call; a busy guest's next 32 go to
    // the backend in the same burst (one system call, one datagram).
    rte_mbuf* pkts[kTxBurst];
    const std::uint16_t room = std::min<std::uint16_t>(backend_->tx_room(q), kTxBurst);
    std::uint16_t n = room == 0 ? 0
                                : rte_vhost_dequeue_burst(vid, txq, pool_, pkts,
                                                          std::min<std::uint16_t>(room, kBurst));
    while (n > 0 && n % kBurst == 0 && n < room) {
      const std::uint16_t more = rte_vhost_dequeue_burst(
          vid, txq, pool_, pkts + n, std::min<std::uint16_t>(room - n, kBurst));
      if (more == 0) {
        break;
      }
      n = static_cast<std::uint16_t>(n + more);
    }
    if (n) {
      work = true;
      st.tx_packets.add(n);
      st.tx_bytes.add(bytes_of(pkts, n));
      const std::uint16_t sent = backend_->tx_burst(q, pkts, n);
      if (sent < n) {
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
        st.tx_drops.add(n - sent);
      }
    }
  }

  if (enabled_[rxq].load(std::memory_order_acquire)) {
    if (!notify_off_[rxq]) {
      rte_vhost_enable_guest_notification(vid, rxq, 0);
      notify_off_[rxq] = true;
    }
    auto& s = stash_[q];
    if (s.count == 0) {
      s.head = 0;
      s.count = backend_->rx_burst(q, s.pkts.data(), kBurst);
    }
    if (s.count) {
      rte_mbuf** first = &s.pkts[s.head];
      const std::uint16_t m = rte_vhost_enqueue_burst(vid, rxq, first, s.count);
      if (m) {
        work = true;
        st.rx_packets.add(m);
        st.rx_bytes.add(bytes_of(first, m));
        rte_pktmbuf_free_bulk(first, m);  // enqueue copied them into the guest
        s.head = static_cast<std::uint16_t>(s.head + m);
        s.count = static_cast<std::uint16_t>(s.count - m);
      }
    }
  }
  return work;
}

bool VhostNetDevice::poll() noexcept {
  // Acquire: pairs with the release in on_new_device.
  if (!ready_.load(std::memory_order_acquire)) {
    return false;
  }
  const int vid = vid_.load(std::memory_order_relaxed);
  const std::uint16_t qps = active_qps_.load(std::memory_order_relaxed);
  bool work = false;
  for (std::uint16_t q = 0; q < qps; ++q) {
    work |= poll_queue_pair(vid, q);
  }
  return work;
}

bool VhostNetDevice::arm(runtime::WaitSet& ws) noexcept {
  n_armed_ = 0;
  if (!ready_.load(std::memory_order_acquire)) {
    return true;
  }
  if (backend_->has_external_input()) {
    ws.wake_within_us(idle_sleep_us_);
  }
  const int vid = vid_.load(std::memory_order_relaxed);
  const std::uint16_t qps = active_qps_.load(std::memory_order_relaxed);
  bool pending = false;
  auto arm_vring = [&](std::uint16_t vring) {
    rte_vhost_vring vr{};
    if (rte_vhost_get_vhost_vring(vid, vring, &vr) != 0 || vr.kickfd < 0) {
      ws.wake_within_us(idle_sleep_us_);  // no fd to wait on: fall back to a timer
      return;
    }
    rte_vhost_enable_guest_notification(vid, vring, 1);
    notify_off_[vring] = false;
    const int slot = ws.add(vr.kickfd);
    if (slot < 0) {
      ws.wake_within_us(idle_sleep_us_);
    }
    armed_[n_armed_++] = Armed{slot, vring};
  };
  for (std::uint16_t q = 0; q < qps; ++q) {
    const auto txq = static_cast<std::uint16_t>(2 * q + 1);
    if (enabled_[txq].load(std::memory_order_acquire)) {
      arm_vring(txq);
    }
    if (stash_[q].count) {
      // Waiting for the guest to post RX buffers: its kick on the RX vring
      // wakes us; the timer covers a guest that refills without kicking.
      arm_vring(static_cast<std::uint16_t>(2 * q));
      ws.wake_within_us(idle_sleep_us_);
    }
  }
  for (std::uint16_t q = 0; q < qps; ++q) {
    if (const int fd = backend_->wait_fd(q); fd >= 0 && ws.add(fd) < 0) {
      ws.wake_within_us(idle_sleep_us_);
    }
  }
  // Full fence: the notification enable (a store to the used ring) must be
  // visible before we read avail->idx below, or a buffer the guest posted in
  // between would be missed with no kick coming (store→load ordering).
  rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
  for (std::uint16_t q = 0; q < qps && !pending; ++q) {
    const auto txq = static_cast<std::uint16_t>(2 * q + 1);
    // Guest packets the backend cannot take yet do not keep us awake: its
    // wait_fd() wakes us when it can.
    if (enabled_[txq].load(std::memory_order_acquire) && backend_->tx_room(q) > 0 &&
        rte_vhost_rx_queue_count(vid, txq) > 0) {
      pending = true;
    }
  }
  return !pending;
}

void VhostNetDevice::disarm(const runtime::WaitSet& ws) noexcept {
  if (n_armed_ == 0) {
    return;
  }
  const int vid = vid_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n_armed_; ++i) {
    const Armed& a = armed_[i];
    rte_vhost_enable_guest_notification(vid, a.vring, 0);
    notify_off_[a.vring] = true;
    if (ws.readable(a.slot)) {
      rte_vhost_vring vr{};
      if (rte_vhost_get_vhost_vring(vid, a.vring, &vr) == 0 && vr.kickfd >= 0) {
        std::uint64_t cnt = 0;
        // Readable eventfd: this read does not block.
        if (::read(vr.kickfd, &cnt, sizeof(cnt)) == sizeof(cnt)) {
          stats_[a.vring / 2].kicks.add(cnt);
        }
      }
      stats_[a.vring / 2].wakeups.add(1);
    }
  }
  n_armed_ = 0;
}

}  // namespace viopool::vhost
