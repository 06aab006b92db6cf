// VolumeTarget: channels, requests and completions of pooled volumes.
#include "pool-manager/target/volume_target.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <condition_variable>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "vhost-backend/base/log.h"
#include "vhost-backend/devices/crypto/crypto_request.h"

VIOPOOL_LOG_MODULE("target")

namespace viopool::pool {
namespace {

constexpr std::size_t kRxBurst = 32;
constexpr std::size_t kMaxRxBursts = 8;  // per poll(): then the backends get a turn
// Completions a poll() reaps per queue. Few, so that one round reaps, sends
// and then takes the host's next requests (and puts them to the disk)
// before it reaps more: with 32, a burst of completions held back both the
// host's CPU, idle until the burst's one long send (over veth the sender
// also runs the receiver's stack), and the requests waiting to be received
// and submitted. pool_blk QD32 with the appliance on its own CPU, IOPS in
// alternating runs: 32: 59k-63k; 24: 66k-83k; 16: 82k-91k; 8: 78k-99k;
// 4: 67k-74k.
constexpr std::uint32_t kReapBatch = 16;
constexpr std::size_t kDataAlign = 4096;
constexpr std::uint32_t kMinMaxIo = 4096;
constexpr std::uint32_t kMaxMaxIo = 1u << 20;

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using AlignedBuf = std::unique_ptr<std::byte, FreeDeleter>;

AlignedBuf aligned_buffer(std::size_t n) {
  const std::size_t rounded =
      (std::max<std::size_t>(n, 1) + kDataAlign - 1) / kDataAlign * kDataAlign;
  return AlignedBuf(static_cast<std::byte*>(std::aligned_alloc(kDataAlign, rounded)));
}

std::array<std::uint8_t, 16> random_nonce() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::array<std::uint8_t, 16> n{};
  for (auto& b : n) {
    b = static_cast<std::uint8_t>(rng());
  }
  return n;
}

// A token bucket that may go into debt: a request is admitted while tokens
// are positive and pays its full cost, so requests larger than the burst
// still pass, at the configured average rate.
struct TokenBucket {
  using Clock = std::chrono::steady_clock;
  double rate = 0;  // tokens per second; 0: unlimited
  double burst = 0;
  double tokens = 0;
  Clock::time_point last{};

  void configure(double r, double b) {
    rate = r;
    burst = b;
    tokens = b;
  }
  bool limited() const noexcept { return rate > 0; }
  void refill(Clock::time_point now) noexcept {
    if (last != Clock::time_point{} && now > last) {
      tokens = std::min(burst, tokens + rate * std::chrono::duration<double>(now - last).count());
    }
    last = now;
  }
  bool can_take() const noexcept { return !limited() || tokens > 0; }
  void take(double n) noexcept {
    if (limited()) {
      tokens -= n;
    }
  }
  void refund(double n) noexcept {
    if (limited()) {
      tokens = std::min(burst, tokens + n);
    }
  }
  // When the bucket is positive again.
  // When the bucket is positive again; never for one that is not in debt
  // (nothing to wait for).
  Clock::time_point ready_at() const noexcept {
    if (can_take()) {
      return Clock::time_point::max();
    }
    return last + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>((-tokens + 1e-3) / rate));
  }
};

}  // namespace

struct VolumeTarget::Volume {
  VolumeExport exp;
  std::unique_ptr<blk::BlockBackend> backend;
  // Lease id -> the key its frames carry (a static config's key is lease 0).
  std::map<std::uint64_t, std::shared_ptr<FrameAuthenticator>> grants;
  TokenBucket ops;
  TokenBucket bytes;
  VolumeStats st;
  VolumeInfo info;
  // Crypto slots.
  std::shared_ptr<crypto::CryptoBackend> crypto;
  CryptoSlotInfo cinfo;
  struct Session {
    crypto::BackendSession s = nullptr;
    std::uint64_t lease = 0;
    crypto::SessionParams params;  // keys wiped: what its ops are checked against
    std::uint32_t jobs = 0;  // in the engine now
    bool dead = false;       // destroyed by its holder or its lease: goes once jobs is 0
  };
  std::map<std::uint64_t, Session> sessions;
  std::uint64_t next_session = 1;
  std::uint32_t live_sessions = 0;
  std::vector<std::deque<Io*>> backlog;  // per backend queue, not yet accepted
  std::uint16_t next_queue = 0;          // where the next submission round starts
  std::uint32_t channels = 0;            // open now
  // vNICs.
  NicPort* nic = nullptr;
  NicPort* ovs = nullptr;  // attached to OVS instead of the switch
  VnicInfo vinfo;
  TokenBucket tx_commit, tx_peak, rx_commit, rx_peak;  // bytes
  std::vector<Channel*> links;  // channels past HELLO_ACK, by queue
};

struct VolumeTarget::Port {
  std::shared_ptr<NicPort> nic;
  std::vector<Volume*> vnics;
  std::map<std::uint64_t, Volume*> fdb;  // (vlan << 48 | MAC) -> vNIC
};

struct VolumeTarget::Channel {
  Key key;
  Volume* vol = nullptr;
  std::array<std::uint8_t, 16> nonce{};  // bytes 0-7: the host queue's instance
  // Older links of the same host queue, closed by this channel's HELLO:
  // HELLO_ACK waits until none of them has a request left in the backend.
  std::vector<std::shared_ptr<Channel>> fenced;
  std::optional<std::uint32_t> hello_ack_tag;  // HELLO_ACK owed once `fenced` drained
  std::uint64_t lease_id = 0;
  std::shared_ptr<FrameAuthenticator> auth;  // the lease's, for as long as the channel lives
  std::unique_ptr<ReliableChannel> ch;
  Clock::time_point last_heard{};
  std::uint32_t outstanding = 0;  // requests taken and not yet completed
  bool open = true;
  // vNICs: the PACKETS frame being filled for the host (header room first).
  std::vector<std::byte> pkt_buf;
  std::optional<PacketsWriter> pkts;
  bool pkts_pending = false;
  bool linked = false;  // in vol->links
  // Flow control of the host's PACKETS: the next datagram number expected
  // (one past the highest seen), acknowledged with credits.
  std::uint32_t pk_next = 1;
  std::uint32_t mtu = 0;  // largest frame the host receives
};

struct VolumeTarget::Io {
  std::shared_ptr<Channel> chan;
  std::uint32_t tag = 0;
  std::uint16_t bq = 0;  // backend queue
  Clock::time_point deadline = Clock::time_point::max();
  AlignedBuf data;
  iovec iov{};
  blk::BlkIo io;
  bool held = false;  // counted once as throttled
  // Crypto ops: src | aad | digest_in | dst | digest_out in `buf`.
  bool is_crypto = false;
  std::uint64_t session = 0;
  std::vector<std::byte> buf;
  std::uint32_t dst_len = 0;
  std::uint32_t digest_out_len = 0;
  std::size_t out_at = 0;  // where dst starts in buf
  crypto::CryptoJob job;
};

bool VolumeTarget::Key::operator<(const Key& o) const noexcept {
  if (function_id != o.function_id) {
    return function_id < o.function_id;
  }
  if (queue_id != o.queue_id) {
    return queue_id < o.queue_id;
  }
  if (peer.len != o.peer.len) {
    return peer.len < o.peer.len;
  }
  return std::memcmp(peer.bytes.data(), o.peer.bytes.data(), peer.len) < 0;
}

VolumeTarget::VolumeTarget(Transport& t, TargetOptions o) : transport_(t), o_(std::move(o)) {
  rx_bufs_.resize(kRxBurst * transport_.mtu());
  command_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

// A static config's key: the grant of lease 0.
Result<void> VolumeTarget::static_grant(Volume& v, const VolumeExport& e, const std::string& who,
                                        std::string& why) {
  if (e.key) {
    auto a = FrameAuthenticator::create(*e.key);
    if (!a) {
      why = who + to_string(a.error());
      return unexpected(a.error());
    }
    v.grants[0] = std::shared_ptr<FrameAuthenticator>(std::move(*a));
  }
  return {};
}

Result<std::unique_ptr<VolumeTarget::Volume>> VolumeTarget::open_volume(const VolumeExport& e,
                                                                       std::string& why) {
  const std::string who = "volume '" + e.name + "': ";
  const auto bad = [&](std::string text) {
    why = std::move(text);
    return fail(Errc::kInvalidArgument, "target: bad volume");
  };
  if (e.name.empty() || e.name.size() > kVolumeNameBytes) {
    return bad("volume names must be 1 to 64 characters");
  }
  if (e.function_id == 0) {
    return bad(who + "function_id must be greater than 0");
  }
  if (e.queues == 0 || e.queues > 64) {
    return bad(who + "queues must be in [1, 64]");
  }
  if (e.max_io_bytes < kMinMaxIo || e.max_io_bytes > kMaxMaxIo) {
    return bad(who + "max_io_bytes must be in [4096, 1048576]");
  }
  auto v = std::make_unique<Volume>();
  v->exp = e;
  if (e.nic || e.ovs_port) {
    const VnicInfo& n = e.vnic;
    if ((n.mac[0] & 1) != 0 || n.mac == std::array<std::uint8_t, 6>{}) {
      return bad(who + "the MAC must be a unicast address");
    }
    if (n.vlan > 4094 || n.mtu < 68 || n.mtu > kMaxPacketBytes - 18) {
      return bad(who + "vlan must be in [0, 4094] and mtu in [68, 9198]");
    }
    if (n.peak_mbps != 0 && n.peak_mbps < n.rate_mbps) {
      return bad(who + "the peak rate must not be below the committed rate");
    }
    // Either way a NIC-like function: `nic` marks the vNIC for the code
    // below; frames go to `ovs` when it is set.
    v->nic = e.nic ? e.nic.get() : e.ovs_port.get();
    v->ovs = e.ovs_port.get();
    v->vinfo = n;
    v->vinfo.function_class = kFunctionClassVnic;
    v->vinfo.queues = e.queues;
    v->vinfo.flags = kVnicLinkUp;
    v->info.queues = e.queues;
    const double frame = n.mtu + 18.0;
    // The committed rate with 10 ms of burst, the peak rate with 1 ms; never
    // less than one frame.
    for (auto* pair : {&v->tx_commit, &v->rx_commit}) {
      if (n.rate_mbps > 0) {
        const double r = n.rate_mbps * 125000.0;
        pair->configure(r, std::max(frame, r / 100));
      }
    }
    for (auto* pair : {&v->tx_peak, &v->rx_peak}) {
      if (n.peak_mbps > 0) {
        const double r = n.peak_mbps * 125000.0;
        pair->configure(r, std::max(frame, r / 1000));
      }
    }
    VIOPOOL_TRY(static_grant(*v, e, who, why));
    return v;
  }
  if (e.crypto) {
    if (e.max_sessions == 0 || e.max_op_bytes < 64 || e.max_op_bytes > kMaxMaxIo ||
        e.queue_depth == 0) {
      return bad(who + "max_sessions, max_op_bytes and queue_depth must be positive");
    }
    if (auto r = e.crypto->start(e.queues, e.max_sessions); !r) {
      why = who + "engine " + e.crypto->name() + ": " + to_string(r.error());
      return unexpected(r.error());
    }
    v->crypto = e.crypto;
    v->cinfo.queues = e.queues;
    v->cinfo.queue_depth = e.queue_depth;
    v->cinfo.max_sessions = e.max_sessions;
    // Advertised as what check_job() lets through.
    v->cinfo.max_op_bytes = std::min(e.max_op_bytes, crypto::kMaxRequestBytes);
    v->cinfo.caps = e.crypto->capabilities();
    v->info.queues = e.queues;
    v->info.queue_depth = e.queue_depth;
    v->backlog.resize(e.queues);
    if (e.iops_limit > 0) {
      const double r = static_cast<double>(e.iops_limit);
      v->ops.configure(r, std::max(1.0, r / 20));
    }
    VIOPOOL_TRY(static_grant(*v, e, who, why));
    return v;
  }
  std::string backend_why;
  auto b = blk::make_uring_backend(e.backend, backend_why);
  if (!b) {
    why = who + backend_why;
    return unexpected(b.error());
  }
  v->backend = std::move(*b);
  if (auto r = v->backend->start(e.queues); !r) {
    why = who + to_string(r.error());
    return unexpected(r.error());
  }
  VIOPOOL_TRY(static_grant(*v, e, who, why));
  const auto& bi = v->backend->info();
  VolumeInfo& vi = v->info;
  vi.block_size = bi.block_size;
  vi.capacity_bytes = bi.capacity_bytes;
  vi.flags = (bi.read_only ? kVolumeReadOnly : 0) | (bi.supports_discard ? kVolumeDiscard : 0) |
             (bi.supports_write_zeroes ? kVolumeWriteZeroes : 0) |
             (bi.volatile_cache ? kVolumeVolatileCache : 0);
  vi.queues = e.queues;
  vi.queue_depth = static_cast<std::uint16_t>(
      std::min<std::uint32_t>(bi.max_queue_depth == 0 ? 256 : bi.max_queue_depth, 65535));
  vi.max_io_bytes = std::max(e.max_io_bytes / bi.block_size * bi.block_size, bi.block_size);
  vi.physical_block_exp = static_cast<std::uint8_t>(bi.physical_block_exp);
  v->backlog.resize(e.queues);
  // Bursts of 50 ms, and never smaller than one request.
  if (e.iops_limit > 0) {
    const double r = static_cast<double>(e.iops_limit);
    v->ops.configure(r, std::max(1.0, r / 20));
  }
  if (e.bps_limit > 0) {
    const double r = static_cast<double>(e.bps_limit);
    v->bytes.configure(r, std::max<double>(vi.max_io_bytes, r / 20));
  }
  return v;
}

Result<std::unique_ptr<VolumeTarget>> VolumeTarget::create(Transport& transport, TargetOptions o,
                                                           std::string& why) {
  std::unique_ptr<VolumeTarget> t(new VolumeTarget(transport, o));
  if (t->command_fd_ < 0) {
    why = std::string("target: eventfd: ") + std::strerror(errno);
    return fail(Errc::kIo, "target: eventfd failed", errno);
  }
  std::set<std::string> names;
  std::set<std::uint32_t> ids;
  for (const auto& e : o.volumes) {
    if (!names.insert(e.name).second) {
      why = "volume names must be unique";
      return fail(Errc::kInvalidArgument, "target: bad volume");
    }
    if (!ids.insert(e.function_id).second) {
      why = "volume '" + e.name + "': function_id must be unique";
      return fail(Errc::kInvalidArgument, "target: bad volume");
    }
    auto v = open_volume(e, why);
    if (!v) {
      return unexpected(v.error());
    }
    t->volumes_.push_back(std::move(*v));
    if (t->volumes_.back()->nic != nullptr) {
      t->attach_vnic(*t->volumes_.back());
    }
  }
  return t;
}

VolumeTarget::~VolumeTarget() {
  for (auto& v : volumes_) {
    drain(*v);
  }
  if (command_fd_ >= 0) {
    ::close(command_fd_);
  }
}

// Lets every I/O the backend holds finish (bounded), drops what waits in the
// backlog, and stops the backend.
void VolumeTarget::drain(Volume& v) {
  for (auto& q : v.backlog) {
    for (Io* io : q) {
      --io->chan->outstanding;
      delete io;
    }
    q.clear();
  }
  if (v.nic != nullptr) {
    return;  // frames are never held: nothing to wait for
  }
  const auto until = Clock::now() + std::chrono::seconds(10);
  if (v.crypto) {
    for (std::uint16_t q = 0; q < v.exp.queues; ++q) {
      while (v.crypto->in_flight(q) > 0 && Clock::now() < until) {
        if (reap_crypto(v, q) == 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
      }
    }
    drop_sessions(v, std::nullopt);
    v.crypto->stop();
    return;
  }
  for (std::uint16_t q = 0; q < v.exp.queues; ++q) {
    while (v.backend->in_flight(q) > 0 && Clock::now() < until) {
      blk::BlkCompletion c[32];
      const auto n = v.backend->poll(q, c, 32);
      for (std::uint32_t i = 0; i < n; ++i) {
        auto* io = static_cast<Io*>(c[i].cookie);
        --io->chan->outstanding;
        delete io;
      }
      if (n == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
  }
  v.backend->stop();
}

VolumeTarget::Volume* VolumeTarget::find_volume(std::uint32_t function_id) noexcept {
  for (auto& v : volumes_) {
    if (v->exp.function_id == function_id) {
      return v.get();
    }
  }
  return nullptr;
}

bool VolumeTarget::call(std::function<void()> fn) {
  const auto poller = poller_.load();
  if (poller == std::thread::id{} || poller == std::this_thread::get_id()) {
    fn();
    return true;
  }
  // `fn` refers to the caller's stack: once the caller gave up waiting it
  // must never run, and once it started the caller must wait for its end.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool started = false;
    bool done = false;
    bool abandoned = false;
  };
  auto st = std::make_shared<State>();
  {
    std::lock_guard lock(command_mu_);
    commands_.push_back([fn = std::move(fn), st] {
      {
        std::lock_guard l(st->mu);
        if (st->abandoned) {
          return;
        }
        st->started = true;
      }
      fn();
      std::lock_guard l(st->mu);
      st->done = true;
      st->cv.notify_all();
    });
  }
  const std::uint64_t one = 1;
  (void)!::write(command_fd_, &one, sizeof one);
  std::unique_lock l(st->mu);
  if (st->cv.wait_for(l, std::chrono::seconds(10), [&] { return st->done; })) {
    return true;
  }
  if (!st->started) {
    st->abandoned = true;
    return false;
  }
  st->cv.wait(l, [&] { return st->done; });  // running now: short
  return true;
}

bool VolumeTarget::run_commands() {
  std::vector<std::function<void()>> todo;
  {
    std::lock_guard lock(command_mu_);
    todo.swap(commands_);
  }
  if (todo.empty()) {
    return false;
  }
  std::uint64_t v = 0;
  (void)!::read(command_fd_, &v, sizeof v);
  for (auto& fn : todo) {
    fn();
  }
  return true;
}

Result<void> VolumeTarget::add_volume(VolumeExport e, std::string& why) {
  // The backend opens here, on the caller's thread; only the insertion runs
  // on the polling thread.
  auto v = open_volume(e, why);
  if (!v) {
    return unexpected(v.error());
  }
  std::unique_ptr<Volume> vol = std::move(*v);
  Result<void> r;
  const bool ran = call([&] {
    for (const auto& o : volumes_) {
      if (o->exp.function_id == e.function_id || o->exp.name == e.name) {
        why = "volume '" + e.name + "': name and function_id must be unique";
        r = fail(Errc::kAlreadyExists, "target: duplicate volume");
        return;
      }
    }
    volumes_.push_back(std::move(vol));
    if (volumes_.back()->nic != nullptr) {
      attach_vnic(*volumes_.back());
    }
  });
  if (!ran) {
    why = "volume '" + e.name + "': the fabric thread does not answer";
    return fail(Errc::kTimeout, "target: no poller");
  }
  if (vol) {  // refused, or the poller never ran it
    if (vol->nic != nullptr) {
      // nothing started
    } else if (vol->crypto) {
      vol->crypto->stop();
    } else {
      vol->backend->stop();
    }
  }
  return r;
}

void VolumeTarget::close_lease_channels(std::uint32_t function_id,
                                        std::optional<std::uint64_t> lease_id) {
  for (auto it = channels_.begin(); it != channels_.end();) {
    auto cur = it++;
    Channel& c = *cur->second;
    if (c.key.function_id == function_id && (!lease_id || c.lease_id == *lease_id)) {
      c.ch->send_unsequenced(Opcode::kGoodbye, {});
      close(cur);
    }
  }
}

void VolumeTarget::remove_volume(std::uint32_t function_id) {
  call([&] {
    for (auto it = volumes_.begin(); it != volumes_.end(); ++it) {
      if ((*it)->exp.function_id == function_id) {
        close_lease_channels(function_id, std::nullopt);
        if ((*it)->nic != nullptr) {
          detach_vnic(**it);
        }
        drain(**it);
        volumes_.erase(it);
        return;
      }
    }
  });
}

void VolumeTarget::grant(std::uint32_t function_id, std::uint64_t lease_id, const AuthKey& key) {
  auto a = FrameAuthenticator::create(key);
  if (!a) {
    VIOPOOL_LOG_ERROR("function {} lease {}: {}", function_id, lease_id, to_string(a.error()));
    return;
  }
  std::shared_ptr<FrameAuthenticator> auth(std::move(*a));
  call([&] {
    if (Volume* v = find_volume(function_id); v != nullptr) {
      // A new key for a lease that had one (reassigned): its links close.
      if (v->grants.contains(lease_id)) {
        close_lease_channels(function_id, lease_id);
      }
      v->grants[lease_id] = auth;
    }
  });
}

void VolumeTarget::revoke(std::uint32_t function_id, std::uint64_t lease_id) {
  call([&] {
    if (Volume* v = find_volume(function_id); v != nullptr) {
      v->grants.erase(lease_id);
      close_lease_channels(function_id, lease_id);
      if (v->crypto) {
        drop_sessions(*v, lease_id);
      }
    }
  });
}

std::optional<VolumeStats> VolumeTarget::volume_stats(std::uint32_t function_id) {
  std::optional<VolumeStats> out;
  call([&] {
    if (Volume* v = find_volume(function_id); v != nullptr) {
      out = v->st;
      out->channels = v->channels;
      out->sessions = v->live_sessions;
      out->grants = v->grants.size();
    }
  });
  return out;
}

void VolumeTarget::send_nak(FrameAuthenticator& auth, const FrameHeader& about,
                            const PeerAddress& to, NakReason why) {
  FrameHeader h;
  h.opcode = Opcode::kNak;
  h.function_id = about.function_id;
  h.queue_id = about.queue_id;
  h.tag = about.tag;
  h.message_length = 4;
  std::byte payload[4];
  std::byte frame[kHeaderBytes + 4];
  if (!encode_nak(why, payload) || !encode_frame(h, payload, frame) || !auth.sign(frame)) {
    return;
  }
  const OutFrame out{std::span<const std::byte>(frame), to};
  transport_.send_burst(std::span(&out, 1));
  ++stats_.naks;
}

void VolumeTarget::close(std::map<Key, std::shared_ptr<Channel>>::iterator it) {
  Channel& c = *it->second;
  if (c.linked) {
    auto& links = c.vol->links;
    links.erase(std::remove(links.begin(), links.end(), &c), links.end());
    c.linked = false;
  }
  if (c.pkts_pending) {
    pending_packets_.erase(std::remove(pending_packets_.begin(), pending_packets_.end(), &c),
                           pending_packets_.end());
    c.pkts_pending = false;
  }
  it->second->open = false;
  --it->second->vol->channels;
  retransmits_closed_ += it->second->ch->stats().retransmits;
  duplicates_closed_ += it->second->ch->stats().duplicates;
  ++stats_.channels_closed;
  channels_.erase(it);
}

void VolumeTarget::on_frame(std::span<const std::byte> bytes, const PeerAddress& from,
                            Clock::time_point now) {
  ++stats_.frames;
  auto f = decode_frame(bytes);
  if (!f) {
    ++stats_.malformed;
    return;
  }
  const FrameHeader& h = f->header;
  Volume* vol = find_volume(h.function_id);
  if (vol == nullptr) {
    ++stats_.unknown_function;  // not ours: never answered
    return;
  }
  const Key key{from, h.function_id, h.queue_id};
  auto it = channels_.find(key);
  const bool hello_frame = h.opcode == Opcode::kHello && h.seq != 0;
  // Which key verifies: the lease a HELLO names, the channel's own lease, or
  // (a frame for no channel, answered with a NAK) any lease of the function.
  std::shared_ptr<FrameAuthenticator> auth;
  std::optional<Hello> hello;
  if (hello_frame) {
    if (auto hr = decode_hello(f->payload); hr) {
      hello = *hr;
    }
    if (!hello || h.frag_offset != 0 || (h.flags & kFlagMore) != 0) {
      ++stats_.malformed;
      return;
    }
    if (auto g = vol->grants.find(hello->lease_id); g != vol->grants.end()) {
      auth = g->second;
    }
  } else if (it != channels_.end()) {
    auth = it->second->auth;
  } else {
    for (auto& [lease, a] : vol->grants) {
      if (a->verify(bytes)) {
        auth = a;
        break;
      }
    }
  }
  if (!auth || !auth->verify(bytes)) {
    ++stats_.auth_failures;
    return;
  }
  if (hello_frame) {
    if (it == channels_.end() || it->second->nonce != hello->nonce) {
      // A new link: a first contact, a host queue reconnecting (from a new
      // port), or a restarted host. Every older link of the same host queue
      // closes now; what they still have in the backend finishes before this
      // one is acknowledged, and what they had queued is dropped.
      if (h.queue_id >= vol->exp.queues) {
        send_nak(*auth, h, from, NakReason::kNoResources);
        return;
      }
      std::vector<std::shared_ptr<Channel>> fenced;
      for (auto o = channels_.begin(); o != channels_.end();) {
        auto cur = o++;
        const Channel& oc = *cur->second;
        const bool same_instance =
            oc.key.function_id == h.function_id && oc.key.queue_id == h.queue_id &&
            std::equal(oc.nonce.begin(), oc.nonce.begin() + 8, hello->nonce.begin());
        if (cur->first == key || same_instance) {
          if (cur->second->outstanding > 0) {
            fenced.push_back(cur->second);
          }
          close(cur);
        }
      }
      if (vol->channels >= o_.max_channels_per_volume) {
        send_nak(*auth, h, from, NakReason::kNoResources);
        return;
      }
      auto c = std::make_shared<Channel>();
      c->key = key;
      c->vol = vol;
      c->nonce = hello->nonce;
      c->lease_id = hello->lease_id;
      c->auth = auth;
      c->fenced = std::move(fenced);
      ChannelOptions co;
      co.function_id = h.function_id;
      co.queue_id = h.queue_id;
      co.window = o_.window;
      co.receive = false;
      // A read's data, a crypto op's input or output, or the whole config space.
      co.max_message =
          std::max<std::uint32_t>(vol->crypto ? 2 * vol->exp.max_op_bytes
                                  : vol->nic  ? 0
                                              : vol->info.max_io_bytes,
                                  kMaxConfigBytes) +
          4096;
      // Never larger than the host receives.
      co.mtu = std::min<std::uint32_t>(transport_.mtu(), std::max<std::uint16_t>(hello->mtu, 512));
      c->mtu = co.mtu;
      c->ch = std::make_unique<ReliableChannel>(transport_, from, c->auth.get(), co);
      it = channels_.emplace(key, std::move(c)).first;
      ++vol->channels;
      ++stats_.hellos;
    }
  } else if (it == channels_.end()) {
    if (h.opcode != Opcode::kNak && h.opcode != Opcode::kGoodbye) {
      send_nak(*auth, h, from, NakReason::kNotEstablished);
    }
    return;
  }
  std::shared_ptr<Channel> c = it->second;  // on_message may close it
  c->last_heard = now;
  if (h.opcode == Opcode::kPackets) {
    // A vNIC's frames: never sequenced, acknowledged or fragmented.
    if (vol->nic == nullptr || h.seq != 0 || h.frag_offset != 0 || (h.flags & kFlagMore) != 0) {
      ++stats_.malformed;
      return;
    }
    // Host datagrams are numbered by their tag: credits run from the
    // highest seen, so a lost one does not shrink the host's window.
    if (static_cast<std::int32_t>(h.tag + 1 - c->pk_next) > 0) {
      c->pk_next = h.tag + 1;
    }
    on_packets(*c, f->payload, now);
    if (c->open) {
      mark_pending(*c);
    }
    return;
  }
  if (vol->nic != nullptr && c->linked) {
    mark_pending(*c);  // a KEEPALIVE of a host waiting for credits gets them
  }
  messages_.clear();
  c->ch->ingest(*f, now, messages_);
  for (auto& m : messages_) {
    if (!c->open) {
      break;
    }
    on_message(*c, m, now);
  }
}

void VolumeTarget::send_hello_ack(Channel& c) {
  if (!c.hello_ack_tag) {
    return;
  }
  for (const auto& f : c.fenced) {
    if (f->outstanding > 0) {
      return;  // poll() tries again as the old link's requests finish
    }
  }
  c.fenced.clear();
  Hello ack;
  ack.lease_id = c.lease_id;
  ack.node_id = o_.node_id;
  ack.mtu = static_cast<std::uint16_t>(std::min<std::uint32_t>(transport_.mtu(), 65535));
  ack.window = o_.window;
  ack.nonce = random_nonce();
  std::byte buf[kHelloBytes];
  if (encode_hello(ack, buf)) {
    (void)c.ch->send(Opcode::kHelloAck, *c.hello_ack_tag, buf);
  }
  c.hello_ack_tag.reset();
  if (c.vol->nic != nullptr && !c.linked) {
    // Frames from the network go to the host from now on, spread over its
    // queues by flow.
    auto& links = c.vol->links;
    links.insert(std::upper_bound(links.begin(), links.end(), &c,
                                  [](const Channel* a, const Channel* b) {
                                    return a->key.queue_id < b->key.queue_id;
                                  }),
                 &c);
    c.linked = true;
  }
}

void VolumeTarget::on_message(Channel& c, ChannelMessage& m, Clock::time_point now) {
  switch (m.opcode) {
    case Opcode::kHello: {
      c.hello_ack_tag = m.tag;
      send_hello_ack(c);
      return;
    }
    case Opcode::kConfigRead: {
      auto r = decode_config_range(m.payload);
      if (!r) {
        ++stats_.malformed;
        return;
      }
      std::vector<std::byte> space(kMaxConfigBytes);
      if (c.vol->nic != nullptr) {
        (void)encode_vnic_info(c.vol->vinfo, space);
      } else if (c.vol->crypto) {
        (void)encode_crypto_slot_info(c.vol->cinfo, space);
      } else {
        (void)encode_volume_info(c.vol->info, space);
      }
      const auto& name = c.vol->exp.name;
      std::memcpy(space.data() + kVolumeNameOffset, name.data(),
                  std::min(name.size(), kVolumeNameBytes));
      std::byte head[kConfigRangeBytes];
      (void)encode_config_range(*r, head);
      (void)c.ch->send(Opcode::kConfigData, m.tag, head,
                       std::span(space).subspan(r->offset, r->size));
      return;
    }
    case Opcode::kRequest:
      on_request(c, m, now);
      return;
    case Opcode::kGoodbye: {
      auto it = channels_.find(c.key);
      if (it != channels_.end()) {
        close(it);
      }
      return;
    }
    default:
      ++stats_.malformed;  // not something a host sends
      return;
  }
}

void VolumeTarget::complete(Channel& c, std::uint32_t tag, std::int32_t status,
                            std::uint32_t bytes) {
  std::byte head[kCompletionBytes];
  (void)encode_completion(Completion{status, bytes}, head);
  (void)c.ch->send(Opcode::kCompletion, tag, head);
  ++stats_.completions;
  ++c.vol->st.completions;
  if (status < 0) {
    ++stats_.errors;
    ++c.vol->st.errors;
  }
}

void VolumeTarget::on_request(Channel& c, ChannelMessage& m, Clock::time_point now) {
  ++stats_.requests;
  ++c.vol->st.requests;
  if (c.vol->nic != nullptr) {
    complete(c, m.tag, -EOPNOTSUPP, 0);  // a vNIC's frames travel as PACKETS
    return;
  }
  if (c.vol->crypto) {
    on_crypto_request(c, m, now);
    return;
  }
  auto r = decode_block_request(m.payload);
  if (!r) {
    ++stats_.malformed;
    complete(c, m.tag, -EINVAL, 0);
    return;
  }
  const VolumeInfo& vi = c.vol->info;
  const bool ro = (vi.flags & kVolumeReadOnly) != 0;
  const std::uint64_t data_bytes = m.payload.size() - kBlockRequestBytes;
  const bool in_range =
      r->length <= vi.capacity_bytes && r->offset <= vi.capacity_bytes - r->length;
  const bool sector_aligned = r->offset % 512 == 0 && r->length % 512 == 0;
  int err = 0;
  blk::BlkIo io;
  io.offset = r->offset;
  io.length = r->length;
  switch (r->op) {
    case BlockOp::kRead:
    case BlockOp::kWrite: {
      const bool write = r->op == BlockOp::kWrite;
      if (r->flags != 0 || r->length == 0 || r->length > vi.max_io_bytes || !sector_aligned ||
          data_bytes != (write ? r->length : 0)) {
        err = -EINVAL;
      } else if (!in_range) {
        err = -ENOSPC;
      } else if (write && ro) {
        err = -EROFS;
      }
      io.op = write ? blk::BlkOp::kWrite : blk::BlkOp::kRead;
      break;
    }
    case BlockOp::kFlush:
      if (r->flags != 0 || r->length != 0 || data_bytes != 0) {
        err = -EINVAL;
      }
      io.op = blk::BlkOp::kFlush;
      break;
    case BlockOp::kDiscard:
    case BlockOp::kWriteZeroes: {
      const bool wz = r->op == BlockOp::kWriteZeroes;
      const std::uint8_t allowed = wz ? kBlockFlagUnmap : 0;
      if ((r->flags & ~allowed) != 0 || r->length == 0 || !sector_aligned || data_bytes != 0) {
        err = -EINVAL;
      } else if (!in_range) {
        err = -ENOSPC;
      } else if (ro) {
        err = -EROFS;
      } else if ((vi.flags & (wz ? kVolumeWriteZeroes : kVolumeDiscard)) == 0) {
        err = -EOPNOTSUPP;
      }
      io.op = wz ? blk::BlkOp::kWriteZeroes : blk::BlkOp::kDiscard;
      io.unmap = (r->flags & kBlockFlagUnmap) != 0;
      break;
    }
    default:
      err = -EINVAL;
      break;
  }
  if (err == 0 && c.outstanding >= 2u * vi.queue_depth) {
    err = -EBUSY;  // the host ignores the queue depth it was given
  }
  if (err != 0) {
    complete(c, m.tag, err, 0);
    return;
  }
  auto x = std::make_unique<Io>();
  x->tag = m.tag;
  x->bq = static_cast<std::uint16_t>(c.key.queue_id % c.vol->exp.queues);
  if (r->deadline_us != 0) {
    constexpr std::uint64_t kMaxDeadlineUs = 3600ull * 1000 * 1000;  // an hour
    x->deadline = now + std::chrono::microseconds(std::min(r->deadline_us, kMaxDeadlineUs));
  }
  if (io.op == blk::BlkOp::kRead || io.op == blk::BlkOp::kWrite) {
    x->data = aligned_buffer(r->length);
    if (!x->data) {
      complete(c, m.tag, -ENOMEM, 0);
      return;
    }
    if (io.op == blk::BlkOp::kWrite) {
      std::memcpy(x->data.get(), m.payload.data() + kBlockRequestBytes, r->length);
    }
    x->iov = iovec{x->data.get(), r->length};
    io.iov = &x->iov;
    io.iovcnt = 1;
  }
  x->io = io;
  x->io.cookie = x.get();
  auto it = channels_.find(c.key);
  x->chan = it->second;
  ++c.outstanding;
  c.vol->backlog[x->bq].push_back(x.release());
}


void VolumeTarget::complete_with(Channel& c, std::uint32_t tag, std::int32_t status,
                                 std::span<const std::byte> body) {
  std::byte head[kCompletionBytes];
  (void)encode_completion(Completion{status, static_cast<std::uint32_t>(body.size())}, head);
  (void)c.ch->send(Opcode::kCompletion, tag, head, body);
  ++stats_.completions;
  ++c.vol->st.completions;
  if (status < 0) {
    ++stats_.errors;
    ++c.vol->st.errors;
  }
}

// Sessions of a lease (or all): destroyed now, or once their last op is back.
void VolumeTarget::drop_sessions(Volume& v, std::optional<std::uint64_t> lease) {
  for (auto it = v.sessions.begin(); it != v.sessions.end();) {
    auto& s = it->second;
    if (lease && s.lease != *lease) {
      ++it;
      continue;
    }
    if (!s.dead) {
      s.dead = true;
      --v.live_sessions;
    }
    if (s.jobs == 0) {
      v.crypto->destroy_session(s.s);
      it = v.sessions.erase(it);
    } else {
      ++it;
    }
  }
}

// A crypto slot's REQUEST: session create or destroy (answered at once), or
// an op (queued for the engine). A COMPLETION's status is a virtio-crypto
// status (0 OK, 1 ERR, 2 BADMSG, 3 NOTSUPP, 4 INVSESS) for an op the slot
// took, or a negative errno for a request it refused.
void VolumeTarget::on_crypto_request(Channel& c, ChannelMessage& m, Clock::time_point now) {
  Volume& v = *c.vol;
  if (m.payload.empty()) {
    ++stats_.malformed;
    complete(c, m.tag, -EINVAL, 0);
    return;
  }
  const auto op = static_cast<std::uint8_t>(m.payload[0]);
  if (op == static_cast<std::uint8_t>(CryptoOp::kSessionCreate)) {
    auto p = decode_crypto_session(m.payload);
    if (!p) {
      ++stats_.malformed;
      complete(c, m.tag, -EINVAL, 0);
      return;
    }
    if (v.live_sessions >= v.exp.max_sessions) {
      complete(c, m.tag, -ENOSPC, 0);
      return;
    }
    auto s = v.crypto->create_session(*p);
    if (!s) {
      complete(c, m.tag,
               s.error().code == Errc::kResourceExhausted ? -ENOSPC
               : s.error().code == Errc::kUnsupported     ? -EOPNOTSUPP
                                                          : -EINVAL,
               0);
      return;
    }
    const std::uint64_t handle = v.next_session++;
    p->wipe_keys();  // the engine holds them now
    v.sessions[handle] = Volume::Session{*s, c.lease_id, *p, 0, false};
    ++v.live_sessions;
    std::byte body[8];
    for (int i = 0; i < 8; ++i) {
      body[i] = static_cast<std::byte>(handle >> (56 - 8 * i));
    }
    complete_with(c, m.tag, 0, body);
    return;
  }
  if (op == static_cast<std::uint8_t>(CryptoOp::kSessionDestroy)) {
    auto h = decode_crypto_destroy(m.payload);
    if (!h) {
      ++stats_.malformed;
      complete(c, m.tag, -EINVAL, 0);
      return;
    }
    auto it = v.sessions.find(*h);
    if (it == v.sessions.end() || it->second.lease != c.lease_id || it->second.dead) {
      complete(c, m.tag, -ENOENT, 0);
      return;
    }
    it->second.dead = true;
    --v.live_sessions;
    if (it->second.jobs == 0) {
      v.crypto->destroy_session(it->second.s);
      v.sessions.erase(it);
    }
    complete(c, m.tag, 0, 0);
    return;
  }
  auto h = decode_crypto_op(m.payload);
  if (!h) {
    ++stats_.malformed;
    complete(c, m.tag, -EINVAL, 0);
    return;
  }
  auto it = v.sessions.find(h->session);
  if (it == v.sessions.end() || it->second.dead || it->second.lease != c.lease_id) {
    complete(c, m.tag, crypto::kStatusInvSess, 0);  // another lease's handles are not yours
    return;
  }
  const std::uint32_t cap = v.exp.max_op_bytes;
  if (h->src_len > cap || h->dst_len > cap || h->aad_len > crypto::kMaxAadBytes ||
      h->digest_in_len > crypto::kMaxDigestBytes || h->digest_out_len > crypto::kMaxDigestBytes ||
      (h->digest_in_len != 0 && h->digest_out_len != 0)) {
    complete(c, m.tag, -EINVAL, 0);
    return;
  }
  if (c.outstanding >= 2u * v.exp.queue_depth) {
    complete(c, m.tag, -EBUSY, 0);
    return;
  }
  auto x = std::make_unique<Io>();
  x->is_crypto = true;
  x->tag = m.tag;
  x->session = h->session;
  x->bq = static_cast<std::uint16_t>(c.key.queue_id % v.exp.queues);
  if (h->deadline_us != 0) {
    constexpr std::uint64_t kMaxDeadlineUs = 3600ull * 1000 * 1000;
    x->deadline = now + std::chrono::microseconds(std::min(h->deadline_us, kMaxDeadlineUs));
  }
  const std::size_t in = std::size_t{h->src_len} + h->aad_len + h->digest_in_len;
  x->out_at = in;
  x->dst_len = h->dst_len;
  x->digest_out_len = h->digest_out_len;
  x->buf.resize(in + h->dst_len + h->digest_out_len);
  std::memcpy(x->buf.data(), m.payload.data() + kCryptoOpHeadBytes, in);
  crypto::CryptoJob& j = x->job;
  const auto seg = [&](crypto::Iovs& iovs, std::size_t at, std::uint32_t len) {
    iovs.n = len > 0 ? 1 : 0;
    iovs.bytes = len;
    iovs.v[0] = iovec{x->buf.data() + at, len};
  };
  j.session = it->second.s;
  j.kind = it->second.params.kind;
  j.encrypt = h->encrypt;
  j.iv_len = h->iv_len;
  std::copy(h->iv.begin(), h->iv.end(), j.iv.begin());
  seg(j.src, 0, h->src_len);
  seg(j.aad, h->src_len, h->aad_len);
  if (h->digest_in_len != 0) {
    seg(j.digest, std::size_t{h->src_len} + h->aad_len, h->digest_in_len);
  } else {
    seg(j.digest, in + h->dst_len, h->digest_out_len);
  }
  seg(j.dst, in, h->dst_len);
  j.cipher_offset = h->cipher_offset;
  j.cipher_len = h->cipher_len;
  j.auth_offset = h->auth_offset;
  j.auth_len = h->auth_len;
  j.data_len = h->data_len;
  j.cookie = x.get();
  if (const char* why = crypto::check_job(j, it->second.params, v.crypto->capabilities())) {
    // The engine would read or write past the op's buffer.
    ++stats_.malformed;
    VIOPOOL_LOG_WARN_RL("crypto op refused lease={} session={} reason=\"{}\"", c.lease_id,
                        h->session, why);
    complete(c, m.tag, crypto::kStatusBadMsg, 0);
    return;
  }
  x->chan = channels_.find(c.key)->second;
  ++c.outstanding;
  ++it->second.jobs;
  v.backlog[x->bq].push_back(x.release());
}

bool VolumeTarget::submit_crypto(Volume& v, std::uint16_t q, Clock::time_point now) {
  bool work = false;
  auto& bl = v.backlog[q];
  const auto finish_unsent = [&](Io* io, std::int32_t status) {
    std::unique_ptr<Io> x(io);
    --x->chan->outstanding;
    auto s = v.sessions.find(x->session);
    if (s != v.sessions.end() && --s->second.jobs == 0 && s->second.dead) {
      v.crypto->destroy_session(s->second.s);
      v.sessions.erase(s);
    }
    if (x->chan->open && status != 0) {
      ++stats_.expired;
      complete(*x->chan, x->tag, status, 0);
    }
  };
  while (!bl.empty() && (!bl.front()->chan->open || bl.front()->deadline < now)) {
    Io* io = bl.front();
    bl.pop_front();
    finish_unsent(io, io->chan->open ? -ETIMEDOUT : 0);
    work = true;
  }
  if (bl.empty()) {
    return work;
  }
  crypto::CryptoJob* batch[32];
  std::uint32_t n = 0;
  if (v.ops.limited()) {
    v.ops.refill(now);
  }
  for (auto i = bl.begin(); i != bl.end() && n < 32; ++i) {
    if (!v.ops.can_take()) {
      if (!(*i)->held) {
        (*i)->held = true;
        ++v.st.throttled;
      }
      break;
    }
    v.ops.take(1);
    batch[n++] = &(*i)->job;
  }
  if (n == 0) {
    return work;
  }
  const auto took = v.crypto->submit(q, batch, n);
  for (std::uint32_t k = took; k < n; ++k) {
    v.ops.refund(1);
  }
  bl.erase(bl.begin(), bl.begin() + took);
  return work || took > 0;
}

std::uint32_t VolumeTarget::reap_crypto(Volume& v, std::uint16_t q) {
  crypto::CryptoCompletion done[kReapBatch];
  const auto n = v.crypto->poll(q, done, kReapBatch);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::unique_ptr<Io> x(static_cast<Io*>(done[i].cookie));
    Channel& c = *x->chan;
    --c.outstanding;
    auto s = v.sessions.find(x->session);
    if (s != v.sessions.end() && --s->second.jobs == 0 && s->second.dead) {
      v.crypto->destroy_session(s->second.s);
      v.sessions.erase(s);
    }
    if (!c.open) {
      continue;
    }
    const std::uint8_t status = done[i].status;
    if (status == crypto::kStatusOk) {
      stats_.bytes_read += x->dst_len;
      complete_with(c, x->tag, 0,
                    std::span<const std::byte>(x->buf.data() + x->out_at,
                                               std::size_t{x->dst_len} + x->digest_out_len));
    } else {
      complete(c, x->tag, status, 0);
    }
  }
  return n;
}

bool VolumeTarget::submit_backlog(Clock::time_point now) {
  bool work = false;
  for (auto& v : volumes_) {
    if (v->nic != nullptr) {
      continue;  // frames are switched as they arrive
    }
    // Queues share a volume's limits: a round starts after the queue served
    // last, or the first queue would take every token and starve the others.
    const std::uint16_t first = v->next_queue;
    if (v->crypto) {
      for (std::uint16_t k = 0; k < v->exp.queues; ++k) {
        const auto q = static_cast<std::uint16_t>((first + k) % v->exp.queues);
        if (submit_crypto(*v, q, now)) {
          work = true;
          v->next_queue = static_cast<std::uint16_t>((q + 1) % v->exp.queues);
        }
      }
      continue;
    }
    for (std::uint16_t k = 0; k < v->exp.queues; ++k) {
      const auto q = static_cast<std::uint16_t>((first + k) % v->exp.queues);
      auto& bl = v->backlog[q];
      // Drop what nobody waits for any more: closed channels, past deadlines.
      while (!bl.empty() && (!bl.front()->chan->open || bl.front()->deadline < now)) {
        std::unique_ptr<Io> x(bl.front());
        bl.pop_front();
        --x->chan->outstanding;
        if (x->chan->open) {
          ++stats_.expired;
          complete(*x->chan, x->tag, -ETIMEDOUT, 0);
        }
        work = true;
      }
      if (bl.empty()) {
        continue;
      }
      blk::BlkIo* batch[32];
      std::uint32_t n = 0;
      const bool limited = v->ops.limited() || v->bytes.limited();
      if (limited) {
        v->ops.refill(now);
        v->bytes.refill(now);
      }
      for (auto i = bl.begin(); i != bl.end() && n < 32; ++i) {
        if (limited) {
          // Tokens are taken as I/Os are offered; one the backend refuses
          // (its ring is full) is simply charged early.
          if (!v->ops.can_take() || !v->bytes.can_take()) {
            if (!(*i)->held) {
              (*i)->held = true;
              ++v->st.throttled;
            }
            break;
          }
          const auto& io = (*i)->io;
          v->ops.take(1);
          if (io.op == blk::BlkOp::kRead || io.op == blk::BlkOp::kWrite) {
            v->bytes.take(static_cast<double>(io.length));
          }
        }
        batch[n++] = &(*i)->io;
      }
      if (n == 0) {
        continue;
      }
      const auto took = v->backend->submit(q, batch, n);
      for (std::uint32_t k = took; k < n && limited; ++k) {
        // Not taken by the backend (its ring is full): not charged.
        v->ops.refund(1);
        if (batch[k]->op == blk::BlkOp::kRead || batch[k]->op == blk::BlkOp::kWrite) {
          v->bytes.refund(static_cast<double>(batch[k]->length));
        }
      }
      bl.erase(bl.begin(), bl.begin() + took);
      if (took > 0) {
        work = true;
        v->next_queue = static_cast<std::uint16_t>((q + 1) % v->exp.queues);
      }
    }
  }
  return work;
}

bool VolumeTarget::reap() {
  bool work = false;
  for (auto& v : volumes_) {
    if (v->nic != nullptr) {
      continue;
    }
    for (std::uint16_t q = 0; q < v->exp.queues; ++q) {
      work |= (v->crypto ? reap_crypto(*v, q) : reap_blk(*v, q)) > 0;
    }
  }
  return work;
}

std::uint32_t VolumeTarget::reap_blk(Volume& v, std::uint16_t q) {
  blk::BlkCompletion done[kReapBatch];
  const auto n = v.backend->poll(q, done, kReapBatch);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::unique_ptr<Io> x(static_cast<Io*>(done[i].cookie));
    Channel& c = *x->chan;
    --c.outstanding;
    if (!c.open) {
      continue;  // its host is gone or restarted
    }
    const std::int32_t res = done[i].result;
    std::byte head[kCompletionBytes];
    if (res >= 0 && x->io.op == blk::BlkOp::kRead) {
      stats_.bytes_read += static_cast<std::uint64_t>(res);
      c.vol->st.bytes_read += static_cast<std::uint64_t>(res);
      ++c.vol->st.completions;
      (void)encode_completion(Completion{0, static_cast<std::uint32_t>(res)}, head);
      (void)c.ch->send(
          Opcode::kCompletion, x->tag, head,
          std::span<const std::byte>(x->data.get(), static_cast<std::size_t>(res)));
      ++stats_.completions;
    } else {
      if (res >= 0 && x->io.op == blk::BlkOp::kWrite) {
        stats_.bytes_written += static_cast<std::uint64_t>(res);
        c.vol->st.bytes_written += static_cast<std::uint64_t>(res);
      }
      complete(c, x->tag, std::min(res, 0), res > 0 ? static_cast<std::uint32_t>(res) : 0);
    }
  }
  return n;
}

bool VolumeTarget::poll(Clock::time_point now) {
  bool work = run_commands();
  const std::uint32_t mtu = transport_.mtu();
  for (std::size_t round = 0; round < kMaxRxBursts; ++round) {
    InFrame in[kRxBurst];
    for (std::size_t i = 0; i < kRxBurst; ++i) {
      in[i].buf = std::span(rx_bufs_).subspan(i * mtu, mtu);
    }
    const auto n = transport_.recv_burst(in);
    for (std::uint32_t i = 0; i < n; ++i) {
      on_frame(std::span<const std::byte>(in[i].buf.data(), in[i].len), in[i].peer, now);
    }
    work |= n > 0;
    if (n < kRxBurst) {
      break;
    }
  }
  if (work) {
    // Acks that may not wait go out before the I/O work of this round; the
    // others ride on its answers or leave after the channel's ack delay, so
    // a host's retransmission timer never measures our disk.
    for (auto& [key, c] : channels_) {
      messages_.clear();
      c->ch->poll(now, messages_);
    }
  }
  work |= poll_nics(now);
  flush_packets();
  work |= submit_backlog(now);
  work |= reap();
  for (auto it = channels_.begin(); it != channels_.end();) {
    auto cur = it++;
    Channel& c = *cur->second;
    send_hello_ack(c);
    messages_.clear();
    work |= c.ch->poll(now, messages_);
    if (c.ch->broken() ||
        (c.outstanding == 0 && c.ch->idle() && now - c.last_heard > o_.idle_timeout)) {
      close(cur);
    }
  }
  return work;
}

bool VolumeTarget::sleep_until(Clock::time_point deadline) {
  pollfd fds[1 + 256];
  nfds_t n = 0;
  if (transport_.wait_fd() >= 0) {
    fds[n++] = pollfd{transport_.wait_fd(), POLLIN, 0};
  }
  fds[n++] = pollfd{command_fd_, POLLIN, 0};
  for (auto& v : volumes_) {
    if (v->nic != nullptr) {
      continue;
    }
    bool waiting = false;
    for (const auto& q : v->backlog) {
      waiting |= !q.empty();
    }
    if (waiting) {  // held back by a limit: wake when tokens are back
      deadline = std::min({deadline, v->ops.ready_at(), v->bytes.ready_at()});
    }
    if (v->crypto) {
      for (std::uint16_t q = 0; q < v->exp.queues; ++q) {
        if (v->crypto->in_flight(q) > 0) {
          // An engine has no wake-up fd: look again very soon, but yield the
          // CPU (the host that waits for the answer may share it).
          deadline = std::min(deadline, Clock::now() + std::chrono::microseconds(20));
        }
      }
      continue;
    }
    for (std::uint16_t q = 0; q < v->exp.queues && n < std::size(fds); ++q) {
      if (v->backend->in_flight(q) == 0) {
        continue;
      }
      const int fd = v->backend->completion_fd(q);
      if (fd < 0 || !v->backend->prepare_sleep(q)) {
        return false;  // completions are waiting
      }
      fds[n++] = pollfd{fd, POLLIN, 0};
    }
  }
  for (const auto& [key, c] : channels_) {
    deadline = std::min(deadline, c->ch->next_timer());
  }
  const auto now = Clock::now();
  // Ports with no wake-up (OVS's vhost-user ports, most NICs): look again
  // soon, very soon while traffic flows.
  bool timed_ports = !ovs_vnics_.empty() || !patches_.empty();
  for (const auto& p : ports_) {
    if (p->nic->wait_fd() >= 0 && n < std::size(fds)) {
      fds[n++] = pollfd{p->nic->wait_fd(), POLLIN, 0};
    } else {
      timed_ports = true;
    }
  }
  if (timed_ports) {
    deadline = std::min(deadline, now + (now < nic_busy_until_ ? std::chrono::microseconds(20)
                                                                : std::chrono::microseconds(1000)));
  }
  if (deadline <= now) {
    return false;
  }
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  ::ppoll(fds, n, &ts, nullptr);
  return true;
}

void VolumeTarget::run(const std::atomic<bool>& stop, Clock::time_point until) {
  // Polls while there is work. With requests in the backends it keeps
  // polling (their completion rings cost no system call to look at) for a
  // short while, so a completion leaves without a wake-up; otherwise it
  // sleeps (on the socket, the rings and the channels' timers) once poll_idle
  // has passed without work. It yields the CPU while it looks, so a host
  // daemon sharing it still runs.
  constexpr auto kSpinForDisk = std::chrono::microseconds(200);
  auto last_work = Clock::now();
  // Marked as the poller while it runs (unless bound for longer).
  const bool bound = poller_.load() == std::this_thread::get_id();
  poller_.store(std::this_thread::get_id());
  struct Unmark {
    std::atomic<std::thread::id>& p;
    bool keep;
    ~Unmark() {
      if (!keep) {
        p.store(std::thread::id{});
      }
    }
  } unmark{poller_, bound};
  while (!stop.load(std::memory_order_relaxed)) {
    const auto now = Clock::now();
    if (now >= until) {
      return;
    }
    if (poll(now)) {
      last_work = now;
      continue;
    }
    if ((backend_busy() && now - last_work < kSpinForDisk) || now - last_work < o_.poll_idle) {
      // Yielding, not spinning: the kernel threads finishing the I/O and a
      // host daemon on the same CPU get it, and the ring's deferred
      // completions run on the way back.
      ::sched_yield();
      continue;
    }
    sleep_until(std::min(until, now + std::chrono::milliseconds(100)));
  }
}

bool VolumeTarget::backend_busy() const noexcept {
  for (const auto& v : volumes_) {
    for (std::uint16_t q = 0; q < v->exp.queues && v->nic == nullptr; ++q) {
      if (v->crypto ? v->crypto->in_flight(q) > 0 : v->backend->in_flight(q) > 0) {
        return true;
      }
    }
  }
  return false;
}

TargetStats VolumeTarget::stats() {
  TargetStats s;
  call([&] {
  s = stats_;
  s.channels = channels_.size();
  s.retransmits = retransmits_closed_;
  s.duplicates = duplicates_closed_;
  for (const auto& [key, c] : channels_) {
    s.retransmits += c->ch->stats().retransmits;
    s.duplicates += c->ch->stats().duplicates;
  }
  });
  return s;
}

std::vector<VolumeInfo> VolumeTarget::volumes() const {
  std::vector<VolumeInfo> out;
  for (const auto& v : volumes_) {
    out.push_back(v->info);
  }
  return out;
}


// ---- vNICs: the software switch (docs/fabric.md "vNICs") ----

namespace {

constexpr std::size_t kNicBurst = 32;
constexpr std::uint16_t kTpidVlan = 0x8100;

std::uint64_t l2_key(std::uint16_t vlan, const std::uint8_t* mac) noexcept {
  std::uint64_t k = vlan;
  for (int i = 0; i < 6; ++i) {
    k = (k << 8) | mac[i];
  }
  return k;
}

const std::uint8_t* u8p(const std::byte* p) noexcept {
  return reinterpret_cast<const std::uint8_t*>(p);
}

std::uint16_t be16(const std::byte* p) noexcept {
  return static_cast<std::uint16_t>(static_cast<unsigned>(p[0]) << 8 | static_cast<unsigned>(p[1]));
}

// Spreads flows over a vNIC's queues: IPv4 addresses and TCP/UDP ports.
std::uint32_t flow_hash(std::span<const std::byte> f) noexcept {
  std::uint32_t h = 2166136261u;
  auto mix = [&](std::span<const std::byte> b) {
    for (std::byte x : b) {
      h = (h ^ static_cast<std::uint8_t>(x)) * 16777619u;
    }
  };
  if (f.size() >= 34 && be16(f.data() + 12) == 0x0800) {
    mix(f.subspan(26, 8));
    const std::size_t l4 = 14 + (static_cast<std::size_t>(f[14] & std::byte{0x0f}) * 4);
    const auto proto = static_cast<std::uint8_t>(f[23]);
    if ((proto == 6 || proto == 17) && f.size() >= l4 + 4) {
      mix(f.subspan(l4, 4));
    }
  }
  return h;
}

// Admits `bytes` under both buckets (committed and peak), or drops.
bool police(TokenBucket& commit, TokenBucket& peak, double bytes,
            std::chrono::steady_clock::time_point now) noexcept {
  commit.refill(now);
  peak.refill(now);
  if (!commit.can_take() || !peak.can_take()) {
    return false;
  }
  commit.take(bytes);
  peak.take(bytes);
  return true;
}

}  // namespace

void VolumeTarget::add_patch(std::shared_ptr<NicPort> a, std::shared_ptr<NicPort> b) {
  call([&] { patches_.emplace_back(std::move(a), std::move(b)); });
}

VolumeTarget::Port* VolumeTarget::port_of(const Volume& v) noexcept {
  for (auto& p : ports_) {
    if (p->nic.get() == v.nic) {
      return p.get();
    }
  }
  return nullptr;
}

void VolumeTarget::attach_vnic(Volume& v) {
  if (v.ovs != nullptr) {
    ovs_vnics_.push_back(&v);
    return;
  }
  Port* p = port_of(v);
  if (p == nullptr) {
    ports_.push_back(std::make_unique<Port>());
    p = ports_.back().get();
    p->nic = v.exp.nic;
  }
  p->vnics.push_back(&v);
  p->fdb[l2_key(v.vinfo.vlan, v.vinfo.mac.data())] = &v;
}

void VolumeTarget::detach_vnic(Volume& v) {
  if (v.ovs != nullptr) {
    ovs_vnics_.erase(std::remove(ovs_vnics_.begin(), ovs_vnics_.end(), &v), ovs_vnics_.end());
    return;
  }
  Port* p = port_of(v);
  if (p == nullptr) {
    return;
  }
  p->vnics.erase(std::remove(p->vnics.begin(), p->vnics.end(), &v), p->vnics.end());
  const auto k = l2_key(v.vinfo.vlan, v.vinfo.mac.data());
  if (auto it = p->fdb.find(k); it != p->fdb.end() && it->second == &v) {
    p->fdb.erase(it);
  }
  if (p->vnics.empty()) {
    // The last vNIC on the port is gone; the port itself belongs to whoever
    // made it (released with the last reference).
    ports_.erase(std::remove_if(ports_.begin(), ports_.end(),
                                [&](const auto& q) { return q.get() == p; }),
                 ports_.end());
  }
}

void VolumeTarget::to_host(Volume& v, std::span<const std::byte> a, std::span<const std::byte> b,
                           Clock::time_point now) {
  const std::size_t len = a.size() + b.size();
  if (v.links.empty()) {
    ++v.st.rx_dropped;
    return;
  }
  if (!police(v.rx_commit, v.rx_peak, static_cast<double>(len), now)) {
    ++v.st.policed;
    return;
  }
  Channel& c = *v.links[v.links.size() == 1 ? 0 : flow_hash(a) % v.links.size()];
  mark_pending(c);
  if (!c.pkts->fits(len)) {
    flush_packets();
    mark_pending(c);
    if (!c.pkts->fits(len)) {
      ++v.st.rx_dropped;
      return;
    }
  }
  std::byte* dst = c.pkts->add(static_cast<std::uint32_t>(len));
  std::memcpy(dst, a.data(), a.size());
  if (!b.empty()) {
    std::memcpy(dst + a.size(), b.data(), b.size());
  }
  ++v.st.rx_packets;
  v.st.rx_bytes += len;
}

void VolumeTarget::mark_pending(Channel& c) {
  if (!c.pkts) {
    // As large as the host receives (its HELLO's mtu, bounded by ours).
    c.pkt_buf.resize(c.mtu);
    c.pkts.emplace(std::span(c.pkt_buf).subspan(kHeaderBytes));
  }
  if (!c.pkts_pending) {
    c.pkts_pending = true;
    pending_packets_.push_back(&c);
  }
}

void VolumeTarget::flush_packets() {
  if (pending_packets_.empty()) {
    return;
  }
  packets_out_.clear();
  for (Channel* c : pending_packets_) {
    c->pkts_pending = false;
    const std::size_t payload = c->pkts->finish();
    FrameHeader h;
    h.opcode = Opcode::kPackets;
    h.function_id = c->key.function_id;
    h.queue_id = c->key.queue_id;
    h.message_length = static_cast<std::uint32_t>(payload);
    // Every frame to the host tells it how far it may send.
    h.flags = kFlagAck;
    h.ack = c->pk_next;
    h.credits = o_.window;
    auto n = encode_frame_in_place(h, payload, c->pkt_buf);
    c->pkts->reset();
    if (!n || !c->auth->sign(std::span(c->pkt_buf).first(*n))) {
      continue;
    }
    packets_out_.push_back(OutFrame{std::span(c->pkt_buf).first(*n), c->key.peer, c->mtu});
  }
  pending_packets_.clear();
  std::size_t sent = 0;
  for (int tries = 0; sent < packets_out_.size() && tries < 4; ++tries) {
    sent += transport_.send_burst(std::span(packets_out_).subspan(sent));
  }
}

bool VolumeTarget::to_vnics(Port& p, const Volume* from, std::uint16_t vlan,
                            std::span<const std::byte> a, std::span<const std::byte> b,
                            bool multicast, Clock::time_point now) {
  // A frame of `vlan` reaches the vNICs of that VLAN untagged.
  if (multicast) {
    for (Volume* v : p.vnics) {
      if (v != from && v->vinfo.vlan == vlan) {
        to_host(*v, a, b, now);
      }
    }
    return true;
  }
  auto it = p.fdb.find(l2_key(vlan, u8p(a.data())));
  if (it == p.fdb.end()) {
    return false;
  }
  to_host(*it->second, a, b, now);
  return true;
}

void VolumeTarget::on_packets(Channel& c, std::span<const std::byte> payload,
                              Clock::time_point now) {
  Volume& v = *c.vol;
  std::span<const std::byte> frames[kMaxPacketsPerFrame];
  auto n = decode_packets(payload, frames);
  if (!n) {
    ++stats_.malformed;
    return;
  }
  Port* p = v.ovs != nullptr ? nullptr : port_of(v);
  if (p == nullptr && v.ovs == nullptr) {
    return;
  }
  wire_.clear();
  tagged_.resize(*n * (kMaxPacketBytes + 4));
  std::size_t tagged_at = 0;
  const std::size_t max_len = v.vinfo.mtu + 14u;
  for (std::size_t i = 0; i < *n; ++i) {
    const auto f = frames[i];
    if (f.size() > max_len || be16(f.data() + 12) == kTpidVlan) {
      ++v.st.tx_dropped;  // longer than the vNIC's MTU, or a tag of the guest's own
      continue;
    }
    if (std::memcmp(f.data() + 6, v.vinfo.mac.data(), 6) != 0) {
      ++v.st.tx_dropped;
      ++v.st.spoofed;
      continue;
    }
    if (!police(v.tx_commit, v.tx_peak, static_cast<double>(f.size()), now)) {
      ++v.st.tx_dropped;
      ++v.st.policed;
      continue;
    }
    ++v.st.tx_packets;
    v.st.tx_bytes += f.size();
    if (v.ovs != nullptr) {
      // OVS switches it (and tags it, if its port has a tag).
      wire_.push_back(NicFrame{f.data(), static_cast<std::uint32_t>(f.size())});
      continue;
    }
    const bool multicast = (static_cast<std::uint8_t>(f[0]) & 1) != 0;
    // Another vNIC on the same port and VLAN: switched here, never on the wire.
    if (!multicast && to_vnics(*p, &v, v.vinfo.vlan, f, {}, false, now)) {
      continue;
    }
    if (multicast) {
      to_vnics(*p, &v, v.vinfo.vlan, f, {}, true, now);
    }
    if (v.vinfo.vlan == 0) {
      wire_.push_back(NicFrame{f.data(), static_cast<std::uint32_t>(f.size())});
      continue;
    }
    std::byte* t = tagged_.data() + tagged_at;
    std::memcpy(t, f.data(), 12);
    t[12] = std::byte{0x81};
    t[13] = std::byte{0x00};
    t[14] = static_cast<std::byte>(v.vinfo.vlan >> 8);
    t[15] = static_cast<std::byte>(v.vinfo.vlan & 0xff);
    std::memcpy(t + 16, f.data() + 12, f.size() - 12);
    wire_.push_back(NicFrame{t, static_cast<std::uint32_t>(f.size() + 4)});
    tagged_at += f.size() + 4;
  }
  if (!wire_.empty()) {
    const auto sent = (v.ovs != nullptr ? v.ovs : p->nic.get())->tx(wire_);
    stats_.nic_tx += sent;
    v.st.tx_dropped += wire_.size() - sent;
  }
}

bool VolumeTarget::poll_nics(Clock::time_point now) {
  bool work = false;
  // Patches: a NIC port and its OVS uplink, frames passed on as they come;
  // a frame the NIC's offloaded rules marked for a vNIC goes straight to it,
  // past OVS.
  for (auto& [a, b] : patches_) {
    for (auto [from, to] : {std::pair{a.get(), b.get()}, std::pair{b.get(), a.get()}}) {
      NicFrame in[kNicBurst];
      const auto n = from->rx(in);
      if (n == 0) {
        continue;
      }
      std::uint32_t keep = 0;
      for (std::uint32_t i = 0; i < n; ++i) {
        Volume* v = nullptr;
        if (from == a.get() && in[i].mark != 0) {
          for (Volume* o : ovs_vnics_) {
            v = o->exp.function_id == in[i].mark ? o : v;
          }
        }
        if (v != nullptr) {
          to_host(*v, std::span<const std::byte>(in[i].data, in[i].len), {}, now);
          ++stats_.nic_offloaded;
        } else {
          in[keep++] = in[i];
        }
      }
      const auto sent = to->tx(std::span<const NicFrame>(in, keep));
      stats_.nic_tx += sent;
      stats_.nic_rx += n;
      from->release_rx();
      work = true;
    }
  }
  // vNICs on OVS: what OVS sends to a vNIC's port goes to its host.
  for (Volume* v : ovs_vnics_) {
    NicFrame in[kNicBurst];
    const auto n = v->ovs->rx(in);
    for (std::uint32_t i = 0; i < n; ++i) {
      to_host(*v, std::span<const std::byte>(in[i].data, in[i].len), {}, now);
    }
    if (n > 0) {
      v->ovs->release_rx();
      work = true;
    }
  }
  if (work) {
    nic_busy_until_ = now + std::chrono::milliseconds(20);
  }
  for (std::size_t pi = 0; pi < ports_.size(); ++pi) {
    Port& p = *ports_[pi];
    NicFrame in[kNicBurst];
    const auto n = p.nic->rx(in);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::span<const std::byte> f(in[i].data, in[i].len);
      if (f.size() < 14) {
        continue;
      }
      const bool multicast = (static_cast<std::uint8_t>(f[0]) & 1) != 0;
      bool delivered = false;
      if (be16(f.data() + 12) == kTpidVlan) {
        if (f.size() < 18) {
          continue;
        }
        // Stripped on the way: the guest sees its VLAN untagged. VLAN 0
        // (priority tags) is no vNIC's.
        const std::uint16_t vid = be16(f.data() + 14) & 0x0fff;
        delivered = vid != 0 && to_vnics(p, nullptr, vid, f.first(12), f.subspan(16), multicast, now);
        delivered |= vid == 0 && multicast;
      } else {
        delivered = to_vnics(p, nullptr, 0, f, {}, multicast, now);
      }
      if (!delivered) {
        ++stats_.nic_unknown;
      }
    }
    if (n > 0) {
      stats_.nic_rx += n;
      p.nic->release_rx();
      work = true;
      nic_busy_until_ = now + std::chrono::milliseconds(20);
    }
  }
  return work;
}

}  // namespace viopool::pool
