// VolumeTarget: the appliance side of pooled volumes. Serves files and block
// devices (through the same io_uring BlockBackend the host uses locally) to
// hosts over one fabric Transport, as docs/fabric.md "Volumes" describes:
// HELLO opens a channel per (host address, function, queue), CONFIG_READ
// returns the volume's config space, REQUEST runs a read, write, flush,
// discard or write-zeroes and COMPLETION answers it (a read's data follows
// the completion head). Frames are verified with the key of the lease a
// channel was opened under (its HELLO names the lease; a static config gives
// lease 0); frames for unknown functions or with bad tags are dropped and
// counted, never answered. Volumes carry IOPS and bandwidth limits, enforced
// by token buckets before I/O reaches the backend. One thread polls
// (poll() or run()); add_volume, remove_volume, grant, revoke and
// volume_stats may be called from any thread and run between two rounds.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/protocol/frame_auth.h"
#include "pool-manager/target/nic_port.h"
#include "pool-manager/transport/transport.h"
#include "vhost-backend/devices/blk/blk_backends.h"
#include "vhost-backend/devices/crypto/crypto_backend.h"

namespace viopool::pool {

struct VolumeExport {
  std::string name;
  std::uint32_t function_id = 0;  // > 0, unique on the target
  std::optional<AuthKey> key;  // a static grant (lease 0); leases add theirs with grant()
  blk::UringBackendOptions backend;  // path, read_only, direct, queue_depth, block_size, extent
  std::uint16_t queues = 4;                 // fabric queues served, [1, 64]
  std::uint32_t max_io_bytes = 256 * 1024;  // largest read or write, [4 KiB, 1 MiB]
  std::uint64_t iops_limit = 0;             // requests (crypto: ops) per second, 0: none
  std::uint64_t bps_limit = 0;              // bytes read + written per second, 0: none
  // Set: a crypto slot on this engine (docs/fabric.md "Crypto slots") instead
  // of a volume; `backend` is then unused. The target starts and stops it.
  std::shared_ptr<crypto::CryptoBackend> crypto;
  std::uint32_t max_sessions = 64;        // crypto: sessions at once, all leases together
  std::uint32_t max_op_bytes = 64 * 1024;  // crypto: largest src, dst, aad or digest of an op
  std::uint16_t queue_depth = 128;        // crypto: ops per queue taken at once
  // Set: a vNIC on this NIC port (docs/fabric.md "vNICs"), switched by its
  // MAC and VLAN (`vnic`: mac, vlan, mtu, rates; queues from `queues`).
  std::shared_ptr<NicPort> nic;
  VnicInfo vnic;
  // Set (instead of `nic`): the vNIC is a port of an Open vSwitch bridge
  // (a vhost-user port OVS connects to): its frames go to OVS and come from
  // it, and OVS switches them (docs/offload.md "Slow path").
  std::shared_ptr<NicPort> ovs_port;
};

// Per volume, for the appliance API.
struct VolumeStats {
  std::uint64_t requests = 0;
  std::uint64_t completions = 0;
  std::uint64_t errors = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t throttled = 0;  // requests held back by the IOPS or bandwidth limit
  std::uint64_t sessions = 0;   // crypto: open now
  std::uint64_t channels = 0;   // open now
  std::uint64_t grants = 0;     // leases whose frames verify
  // vNICs, named from the guest's side: tx = guest to network.
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_dropped = 0;  // a foreign source MAC, a VLAN tag, too long, or the NIC full
  std::uint64_t rx_dropped = 0;  // no link from the host yet
  std::uint64_t spoofed = 0;     // of tx_dropped: a source MAC not the vNIC's
  std::uint64_t policed = 0;     // dropped over the committed or peak rate, both ways
};

struct TargetOptions {
  std::vector<VolumeExport> volumes;
  std::uint32_t node_id = 1;
  std::uint16_t window = 256;  // frames a host may send beyond our ack
  // A channel that hears nothing for this long, with nothing in flight, closes.
  std::chrono::milliseconds idle_timeout{60000};
  // Channels (host queue links) open at once per volume; a HELLO beyond gets
  // NAK "no resources", so no host can make the appliance hold unbounded state.
  std::uint32_t max_channels_per_volume = 256;
  // How long the poller keeps looking (yielding the CPU between looks) after
  // a round with work before it sleeps: a request that follows within it is
  // taken without a wake-up. Yielding leaves a CPU shared with the host
  // daemon to it; 0 sleeps at once.
  std::chrono::microseconds poll_idle{100};
};

struct TargetStats {
  std::uint64_t frames = 0;
  std::uint64_t malformed = 0;         // undecodable frames and messages
  std::uint64_t unknown_function = 0;  // dropped: no such function here
  std::uint64_t auth_failures = 0;     // dropped: no grant for the lease, or a bad tag
  std::uint64_t naks = 0;              // sent: frames for channels not established
  std::uint64_t hellos = 0;            // channels opened or reset
  std::uint64_t channels_closed = 0;
  std::uint64_t requests = 0;
  std::uint64_t completions = 0;
  std::uint64_t errors = 0;   // completions with a negative status
  std::uint64_t expired = 0;  // requests dropped past their deadline
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t retransmits = 0;  // of channels closed so far and open now
  std::uint64_t duplicates = 0;   // frames received twice (dropped, acked again)
  std::uint64_t channels = 0;     // open now
  std::uint64_t nic_rx = 0;       // frames received on NIC ports
  std::uint64_t nic_tx = 0;       // frames sent on NIC ports
  std::uint64_t nic_unknown = 0;  // unicast frames for no vNIC here: dropped
  std::uint64_t nic_offloaded = 0;  // frames the NIC's rules sent to a vNIC past OVS
};

class VolumeTarget {
 public:
  using Clock = std::chrono::steady_clock;

  // Opens every volume (control thread; may block). kInvalidArgument for bad
  // options, duplicate names or function ids, or a backend that cannot be
  // opened, with the volume's name and the reason in `why`. `transport`
  // outlives the target.
  static Result<std::unique_ptr<VolumeTarget>> create(Transport& transport, TargetOptions o,
                                                      std::string& why);
  ~VolumeTarget();
  VolumeTarget(const VolumeTarget&) = delete;
  VolumeTarget& operator=(const VolumeTarget&) = delete;

  // One round: receive, run, complete, acknowledge, retransmit. True if it
  // moved anything. Never blocks.
  bool poll(Clock::time_point now);
  // Polls until `stop` or `until`; sleeps on the transport, the backends and
  // the channels' timers when idle.
  void run(const std::atomic<bool>& stop, Clock::time_point until = Clock::time_point::max());

  // Thread-safe (taken on the polling thread).
  TargetStats stats();
  // Marks the calling thread as the one that polls, across run() calls (the
  // appliance's loop); commands from other threads then always wait for it.
  void bind_poller() { poller_.store(std::this_thread::get_id()); }
  void unbind_poller() { poller_.store(std::thread::id{}); }
  std::vector<VolumeInfo> volumes() const;

  // Thread-safe control (see the top of the file). A call from a thread other
  // than the polling one waits until the next round runs it (kTimeout after
  // 10 s if no thread polls).
  // Opens and starts serving a volume; the same checks as create().
  Result<void> add_volume(VolumeExport e, std::string& why);
  // Closes the volume's channels (GOODBYE), lets its backend I/O finish
  // (bounded) and stops it. Unknown ids are ignored.
  void remove_volume(std::uint32_t function_id);
  // Frames naming `lease_id` in their channel's HELLO verify with `key`.
  void grant(std::uint32_t function_id, std::uint64_t lease_id, const AuthKey& key);
  // The lease's channels close (GOODBYE) and its frames stop verifying.
  void revoke(std::uint32_t function_id, std::uint64_t lease_id);
  std::optional<VolumeStats> volume_stats(std::uint32_t function_id);
  // Joins two ports both ways (a NIC port and its uplink port on an OVS
  // bridge): every frame one receives, the other sends.
  void add_patch(std::shared_ptr<NicPort> a, std::shared_ptr<NicPort> b);

 private:
  struct Volume;
  struct Channel;
  struct Io;
  struct Port;
  struct Key {
    PeerAddress peer;
    std::uint32_t function_id = 0;
    std::uint16_t queue_id = 0;
    bool operator<(const Key& o) const noexcept;
    bool operator==(const Key& o) const noexcept = default;
  };

  VolumeTarget(Transport& t, TargetOptions o);
  static Result<std::unique_ptr<Volume>> open_volume(const VolumeExport& e, std::string& why);
  static Result<void> static_grant(Volume& v, const VolumeExport& e, const std::string& who,
                                   std::string& why);
  Volume* find_volume(std::uint32_t function_id) noexcept;
  // Runs `fn` on the polling thread (inline when called from it, or when no
  // thread polls); false on timeout.
  bool call(std::function<void()> fn);
  bool run_commands();
  void close_lease_channels(std::uint32_t function_id, std::optional<std::uint64_t> lease_id);
  void drain(Volume& v);
  void on_frame(std::span<const std::byte> bytes, const PeerAddress& from, Clock::time_point now);
  void on_message(Channel& c, ChannelMessage& m, Clock::time_point now);
  void send_hello_ack(Channel& c);
  void on_request(Channel& c, ChannelMessage& m, Clock::time_point now);
  void on_crypto_request(Channel& c, ChannelMessage& m, Clock::time_point now);
  void complete_with(Channel& c, std::uint32_t tag, std::int32_t status,
                     std::span<const std::byte> body);
  bool submit_crypto(Volume& v, std::uint16_t q, Clock::time_point now);
  // Up to kReapBatch of a queue's completions, queued on their channels
  // (sent by the channels' poll that follows); how many.
  std::uint32_t reap_crypto(Volume& v, std::uint16_t q);
  std::uint32_t reap_blk(Volume& v, std::uint16_t q);
  void drop_sessions(Volume& v, std::optional<std::uint64_t> lease);
  void complete(Channel& c, std::uint32_t tag, std::int32_t status, std::uint32_t bytes);
  void send_nak(FrameAuthenticator& auth, const FrameHeader& about, const PeerAddress& to,
                NakReason why);
  void close(std::map<Key, std::shared_ptr<Channel>>::iterator it);
  bool submit_backlog(Clock::time_point now);
  // One small batch of completions per queue (see kReapBatch).
  bool reap();
  bool sleep_until(Clock::time_point deadline);
  bool backend_busy() const noexcept;
  // vNICs: the software switch between NIC ports and hosts.
  void attach_vnic(Volume& v);
  void detach_vnic(Volume& v);
  Port* port_of(const Volume& v) noexcept;
  void on_packets(Channel& c, std::span<const std::byte> payload, Clock::time_point now);
  bool poll_nics(Clock::time_point now);
  // Hands a frame (its bytes `a` then `b`) to the host of `v`.
  void to_host(Volume& v, std::span<const std::byte> a, std::span<const std::byte> b,
               Clock::time_point now);
  // Hands a frame of `vlan` (bytes `a` then `b`) to the vNICs of that VLAN
  // on `p` other than `from`: all of them (multicast) or the one of its
  // destination MAC; false if no vNIC has that MAC.
  bool to_vnics(Port& p, const Volume* from, std::uint16_t vlan, std::span<const std::byte> a,
                std::span<const std::byte> b, bool multicast, Clock::time_point now);
  void flush_packets();
  // The channel's PACKETS frame (possibly empty: an ack) leaves this round.
  void mark_pending(Channel& c);

  Transport& transport_;
  TargetOptions o_;
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::map<Key, std::shared_ptr<Channel>> channels_;
  std::vector<std::byte> rx_bufs_;
  std::vector<ChannelMessage> messages_;
  TargetStats stats_;
  std::uint64_t retransmits_closed_ = 0;
  std::uint64_t duplicates_closed_ = 0;
  int command_fd_ = -1;  // eventfd: a command is waiting
  std::mutex command_mu_;
  std::vector<std::function<void()>> commands_;
  std::atomic<std::thread::id> poller_{};
  std::vector<std::unique_ptr<Port>> ports_;
  std::vector<Volume*> ovs_vnics_;  // vNICs attached to OVS
  std::vector<std::pair<std::shared_ptr<NicPort>, std::shared_ptr<NicPort>>> patches_;
  std::vector<Channel*> pending_packets_;  // channels with a PACKETS frame being filled
  std::vector<std::byte> packets_tx_;      // encoded PACKETS frames of this round
  std::vector<OutFrame> packets_out_;
  std::vector<std::byte> tagged_;          // host frames given a VLAN tag, for one NIC burst
  std::vector<NicFrame> wire_;             // host frames for one NIC burst
  Clock::time_point nic_busy_until_{};     // NIC traffic seen lately: look often
};

}  // namespace viopool::pool
