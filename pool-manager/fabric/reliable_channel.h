// ReliableChannel: one fabric channel (function, queue) over any Transport,
// loss-tolerant as docs/fabric.md "Reliability" describes: per-frame
// sequence numbers, cumulative and selective acks, retransmission with an
// adaptive timeout (RFC 6298, Karn's rule, per-frame backoff), duplicate
// suppression (each seq is delivered once, so a retransmitted write is never
// applied twice), credit-based flow control and fragmentation to the MTU.
// Frames are signed and verified per lease; a bad tag or a frame for another
// channel is dropped and counted. Single-threaded: poll() drives everything.
// Outgoing frames of one poll() leave in one transport burst, and an ack
// rides on the data frames when there are any; without one it waits up to
// ack_delay for one before it goes alone.
//
// A channel reads its own transport (one socket per channel, the host side)
// or, with `receive = false`, is fed frames by its owner through ingest()
// (many channels behind one socket, the target side).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <vector>

#include "pool-manager/protocol/fabric_codec.h"
#include "pool-manager/protocol/frame_auth.h"
#include "pool-manager/transport/transport.h"
#include "vhost-backend/base/result.h"

namespace viopool::pool {

struct ChannelOptions {
  std::uint32_t function_id = 0;
  std::uint16_t queue_id = 0;
  std::uint16_t window = 64;  // frames we accept beyond our cumulative ack (our credits)
  std::chrono::microseconds min_rto{1000};
  // How long an ack may wait for an outgoing data frame to ride on (as TCP's
  // delayed ack): a request answered within it costs no ack datagram either
  // way. Well below the peer's min_rto. A frame out of order or filling a
  // gap, a duplicate, a keepalive, or a quarter window unacked is acked at once.
  std::chrono::microseconds ack_delay{100};
  std::chrono::microseconds max_rto{200000};
  std::uint32_t max_retries = 30;  // then the channel is broken
  std::uint32_t max_message = 1u << 20;
  bool receive = true;  // poll() reads the transport; false: the owner calls ingest()
  // Largest frame this channel sends (0: the transport's MTU); the peer's
  // receive buffers may be smaller than ours.
  std::uint32_t mtu = 0;
  // Bytes of partly received messages held at once; a frame that would start
  // one more is dropped (and retransmitted by its sender later). A message
  // that arrives whole in one frame is delivered at once, whatever is held.
  std::uint32_t max_reassembly_bytes = 4u << 20;
};

struct ChannelMessage {
  Opcode opcode = Opcode::kData;
  std::uint32_t tag = 0;
  std::vector<std::byte> payload;
};

struct ChannelStats {
  std::uint64_t frames_sent = 0;
  std::uint64_t retransmits = 0;
  std::uint64_t acks_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t auth_failures = 0;
  std::uint64_t malformed = 0;
  std::uint64_t foreign = 0;        // frames for another function or queue
  std::uint64_t out_of_window = 0;  // beyond what we advertised, or no room to reassemble
  std::uint64_t messages_delivered = 0;
};

class ReliableChannel {
 public:
  using Clock = std::chrono::steady_clock;

  // `auth` may be null (tests of the transport only); it and `transport`
  // outlive the channel.
  ReliableChannel(Transport& transport, PeerAddress peer, FrameAuthenticator* auth,
                  ChannelOptions o);

  // Queues a message, fragmented to the transport's MTU. kInvalidArgument
  // above max_message; kIo once the channel is broken.
  Result<void> send(Opcode op, std::uint32_t tag, std::span<const std::byte> payload);
  // The same, for a message made of a head and a body (no copy to join them).
  Result<void> send(Opcode op, std::uint32_t tag, std::span<const std::byte> head,
                    std::span<const std::byte> body);
  // Sends an unsequenced frame (seq 0, not retransmitted): NAK, GOODBYE,
  // KEEPALIVE. The peer's channel hands NAK and GOODBYE up as messages.
  void send_unsequenced(Opcode op, std::span<const std::byte> payload);
  // Receives (unless `receive` is off), (re)transmits, acknowledges (at once
  // or after ack_delay, see ChannelOptions); appends whole messages to `out`.
  // Returns true if it did anything.
  bool poll(Clock::time_point now, std::vector<ChannelMessage>& out);
  // poll() without receiving: queued frames the peer's credits allow,
  // retransmissions and a due ack go out. For an owner that just queued
  // messages and has received already.
  bool send_now(Clock::time_point now);
  // Sends an owed ack now, whatever its age: for an owner that will not poll
  // this channel again soon (a blocking exchange that got its answer).
  void flush_ack() noexcept;
  // A frame for this channel that its owner received, decoded and verified
  // (`receive` off). Acks go out with a later poll() (see poll()).
  void ingest(const Frame& f, Clock::time_point now, std::vector<ChannelMessage>& out);

  // When poll() must run next to retransmit or to send a delayed ack
  // (time_point::max() if neither): an idle owner sleeps at most until then.
  Clock::time_point next_timer() const noexcept;

  // An ack is owed to the peer (poll() sends it when due: see next_timer()).
  bool ack_owed() const noexcept { return ack_due_; }
  // Nothing queued or waiting for an ack.
  bool idle() const noexcept { return unsent_.empty() && inflight_.empty(); }
  // A frame was retransmitted max_retries times without an ack.
  bool broken() const noexcept { return broken_; }
  // Sequence numbers are compared as plain integers: past 2^31 frames either
  // way the owner must open a new channel (a new HELLO) before they wrap.
  bool needs_renewal() const noexcept { return next_seq_ > (1u << 31) || rcv_next_ > (1u << 31); }
  // Frames sent and not yet acknowledged (at most the peer's credits).
  std::size_t in_flight() const noexcept { return inflight_.size(); }
  const ChannelStats& stats() const noexcept { return stats_; }
  std::chrono::microseconds rto() const noexcept { return rto_; }

 private:
  struct OutFrameState {
    FrameHeader header;
    // The frame as it leaves: room for the header (written, with its tag, at
    // each transmission), then the payload. The transport sends it from here.
    std::vector<std::byte> frame;
    Clock::time_point first_sent{};
    Clock::time_point last_sent{};
    std::uint32_t retries = 0;
    bool sent = false;
  };
  struct Reassembly {
    Opcode opcode = Opcode::kData;
    std::uint32_t message_length = 0;
    std::uint32_t have = 0;
    std::map<std::uint32_t, std::uint32_t> pieces;  // offset -> length received
    std::vector<std::byte> bytes;
  };

  bool receive(Clock::time_point now, std::vector<ChannelMessage>& out);
  void on_frame(const Frame& f, Clock::time_point now, std::vector<ChannelMessage>& out);
  // `seq` arrived (new, within the window): advances the cumulative ack.
  void record_received(std::uint32_t seq);
  void on_ack(std::uint32_t ack, Clock::time_point now);
  void transmit(OutFrameState& s, Clock::time_point now, bool retransmit);
  bool send_due(Clock::time_point now);
  void send_ack();
  // An ack is owed for a frame received at `now`; `urgent`: send it with the
  // next poll() rather than wait for a data frame.
  void owe_ack(Clock::time_point now, bool urgent) noexcept;
  void acked() noexcept;
  // Encodes and signs a frame into the next transmit buffer (acks, unsequenced
  // frames) or, in place, a data frame's own buffer, and queues it for
  // flush_tx(), which every public member that emits calls before returning:
  // a queued frame's buffer is never recycled before it is sent.
  bool emit(const FrameHeader& h, std::span<const std::byte> payload);
  bool emit_in_place(const FrameHeader& h, std::span<std::byte> frame);
  void flush_tx();

  Transport& transport_;
  PeerAddress peer_;
  FrameAuthenticator* auth_;
  ChannelOptions o_;

  std::uint32_t next_seq_ = 1;
  using FrameMap = std::map<std::uint32_t, OutFrameState>;
  using FrameNode = FrameMap::node_type;
  FrameMap unsent_;    // by seq, not yet sent (credits)
  FrameMap inflight_;  // by seq, sent, not acked
  // Nodes of acknowledged frames (with their frame buffers, up to an MTU
  // each), reused by send(): as many as a host's default window keeps in
  // flight, at most our own window.
  static constexpr std::size_t kMaxSpareFrames = 64;
  std::vector<FrameNode> spare_;
  void recycle(FrameNode node);
  // No frame in flight was last sent before this (a lower bound: frames
  // acked since the last retransmission scan may have been older).
  Clock::time_point oldest_sent_ = Clock::time_point::max();
  std::uint32_t peer_credits_ = 8;                   // until the peer tells us
  std::uint32_t peer_acked_ = 1;                     // the peer's cumulative ack

  std::uint32_t rcv_next_ = 1;                      // next seq expected (our cumulative ack)
  std::set<std::uint32_t> rcv_ahead_;               // received beyond rcv_next_
  std::map<std::uint32_t, Reassembly> reassembly_;  // by tag
  std::uint64_t reassembly_bytes_ = 0;              // sum of their message lengths
  bool ack_due_ = false;
  bool ack_now_ = false;                // ack_due_ and it may not wait
  std::uint32_t unacked_frames_ = 0;    // received since our last ack went out
  Clock::time_point ack_due_since_{};   // when ack_due_ became true

  std::chrono::microseconds srtt_{0};
  std::chrono::microseconds rttvar_{0};
  std::chrono::microseconds rto_;
  bool broken_ = false;
  ChannelStats stats_;
  static constexpr std::size_t kTxBurst = 32;
  std::vector<std::byte> tx_bufs_;  // kTxBurst outgoing frames of one MTU
  std::vector<OutFrame> tx_;        // encoded, not yet handed to the transport
  static constexpr std::size_t kRxBurst = 32;
  std::vector<std::byte> rx_bufs_;  // kRxBurst receive buffers of one MTU, allocated once
};

}  // namespace viopool::pool
