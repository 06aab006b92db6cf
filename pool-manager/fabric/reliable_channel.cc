// ReliableChannel: sequence numbers, acks, retransmission, reassembly.
#include "pool-manager/fabric/reliable_channel.h"

#include <algorithm>
#include <cstring>

namespace viopool::pool {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

constexpr microseconds kClockGranularity{50};

}  // namespace

ReliableChannel::ReliableChannel(Transport& transport, PeerAddress peer, FrameAuthenticator* auth,
                                 ChannelOptions o)
    : transport_(transport), peer_(peer), auth_(auth), o_(o), rto_(o.min_rto * 5) {
  if (o_.mtu == 0 || o_.mtu > transport_.mtu()) {
    o_.mtu = transport_.mtu();
  }
  tx_bufs_.resize(std::size_t{kTxBurst} * o_.mtu);
  tx_.reserve(kTxBurst);
  if (o_.receive) {
    rx_bufs_.resize(std::size_t{kRxBurst} * transport_.mtu());
  }
}

Result<void> ReliableChannel::send(Opcode op, std::uint32_t tag,
                                   std::span<const std::byte> payload) {
  return send(op, tag, payload, {});
}

Result<void> ReliableChannel::send(Opcode op, std::uint32_t tag, std::span<const std::byte> head,
                                   std::span<const std::byte> body) {
  const std::size_t total = head.size() + body.size();
  if (broken_) {
    return fail(Errc::kIo, "fabric: channel broken");
  }
  if (total > o_.max_message) {
    return fail(Errc::kInvalidArgument, "fabric: message too long");
  }
  if (o_.mtu <= kHeaderBytes) {
    return fail(Errc::kInvalidArgument, "fabric: MTU below a frame header");
  }
  const std::size_t chunk = o_.mtu - kHeaderBytes;
  std::size_t off = 0;
  do {
    const std::size_t n = std::min(chunk, total - off);
    // An acknowledged frame's node, payload buffer included, when there is
    // one: no allocation per frame in the steady state.
    FrameNode node;
    if (!spare_.empty()) {
      node = std::move(spare_.back());
      spare_.pop_back();
    } else {
      FrameMap fresh;
      node = fresh.extract(fresh.emplace(0, OutFrameState{}).first);
    }
    OutFrameState& s = node.mapped();
    std::vector<std::byte> buffer = std::move(s.frame);
    s = OutFrameState{};
    s.frame = std::move(buffer);
    s.header.opcode = op;
    s.header.queue_id = o_.queue_id;
    s.header.function_id = o_.function_id;
    s.header.tag = tag;
    s.header.seq = next_seq_++;
    s.header.frag_offset = static_cast<std::uint32_t>(off);
    s.header.message_length = static_cast<std::uint32_t>(total);
    s.header.flags = off + n < total ? kFlagMore : 0;
    s.frame.resize(kHeaderBytes + n);
    // Bytes [off, off + n) of head ++ body, after the header's room.
    std::byte* const payload = s.frame.data() + kHeaderBytes;
    std::size_t done = 0;
    if (off < head.size()) {
      done = std::min(n, head.size() - off);
      std::memcpy(payload, head.data() + off, done);
    }
    if (done < n) {
      std::memcpy(payload + done, body.data() + (off + done - head.size()), n - done);
    }
    node.key() = s.header.seq;
    unsent_.insert(std::move(node));
    off += n;
  } while (off < total);
  return {};
}

void ReliableChannel::recycle(FrameNode node) {
  if (spare_.size() < std::min<std::size_t>(o_.window, kMaxSpareFrames)) {
    spare_.push_back(std::move(node));
  }
}

bool ReliableChannel::emit(const FrameHeader& h, std::span<const std::byte> payload) {
  if (tx_.size() == kTxBurst) {
    flush_tx();
  }
  const std::span<std::byte> buf = std::span(tx_bufs_).subspan(tx_.size() * o_.mtu, o_.mtu);
  if (buf.size() < kHeaderBytes + payload.size()) {
    return false;
  }
  if (!payload.empty()) {
    std::memcpy(buf.data() + kHeaderBytes, payload.data(), payload.size());
  }
  return emit_in_place(h, buf.first(kHeaderBytes + payload.size()));
}

bool ReliableChannel::emit_in_place(const FrameHeader& h, std::span<std::byte> frame) {
  if (tx_.size() == kTxBurst) {
    flush_tx();
  }
  if (!encode_frame_in_place(h, frame.size() - kHeaderBytes, frame) ||
      (auth_ != nullptr && !auth_->sign(frame))) {
    return false;
  }
  // Frames of one poll share datagrams up to the MTU the peer receives.
  tx_.push_back(OutFrame{frame, peer_, o_.mtu});
  return true;
}

void ReliableChannel::flush_tx() {
  // Frames the transport cannot take now count as lost: the retransmission
  // timer (data) or the next ack (acks) covers them.
  if (!tx_.empty()) {
    transport_.send_burst(tx_);
    tx_.clear();
  }
}

void ReliableChannel::send_unsequenced(Opcode op, std::span<const std::byte> payload) {
  FrameHeader h;
  h.opcode = op;
  h.queue_id = o_.queue_id;
  h.function_id = o_.function_id;
  h.ack = rcv_next_;
  h.credits = o_.window;
  h.flags = kFlagAck;
  h.message_length = static_cast<std::uint32_t>(payload.size());
  emit(h, payload);
  flush_tx();
  if (rcv_ahead_.empty()) {
    acked();  // the cumulative ack rode on it (a gap still wants its SACK)
  }
}

ReliableChannel::Clock::time_point ReliableChannel::next_timer() const noexcept {
  auto t = Clock::time_point::max();
  for (const auto& [seq, s] : inflight_) {
    const auto timeout =
        std::min(o_.max_rto, rto_ * (1u << std::min<std::uint32_t>(s.retries, 10)));
    t = std::min(t, s.last_sent + timeout);
  }
  if (ack_due_) {
    // Already due when it may not wait: its own past time (not time_point::min(),
    // which callers' arithmetic would overflow).
    t = std::min(t, ack_now_ ? ack_due_since_ : ack_due_since_ + o_.ack_delay);
  }
  return t;
}

void ReliableChannel::owe_ack(Clock::time_point now, bool urgent) noexcept {
  if (!ack_due_) {
    ack_due_ = true;
    ack_due_since_ = now;
  }
  ack_now_ |= urgent || ++unacked_frames_ >= std::max<std::uint32_t>(1, o_.window / 4u);
}

void ReliableChannel::acked() noexcept {
  ack_due_ = false;
  ack_now_ = false;
  unacked_frames_ = 0;
}

void ReliableChannel::transmit(OutFrameState& s, Clock::time_point now, bool retransmit) {
  acked();  // the ack rides on this frame
  s.header.ack = rcv_next_;
  s.header.credits = o_.window;
  s.header.flags |= kFlagAck;
  if (retransmit) {
    s.header.flags |= kFlagRetx;
    ++s.retries;
    ++stats_.retransmits;
  } else {
    s.first_sent = now;
    s.sent = true;
  }
  s.last_sent = now;
  oldest_sent_ = std::min(oldest_sent_, now);
  ++stats_.frames_sent;
  emit_in_place(s.header, s.frame);
}

bool ReliableChannel::send_due(Clock::time_point now) {
  bool work = false;
  bool timed_out = false;
  // No frame times out sooner than one RTO after the oldest was sent: until
  // then, the frames in flight (a window's worth) are not looked at.
  if (!inflight_.empty() && now - oldest_sent_ >= std::min(o_.max_rto, rto_)) {
    auto oldest = now;
    for (auto& [seq, s] : inflight_) {
      const auto timeout =
          std::min(o_.max_rto, rto_ * (1u << std::min<std::uint32_t>(s.retries, 10)));
      if (now - s.last_sent >= timeout) {
        if (s.retries >= o_.max_retries) {
          broken_ = true;
          return work;
        }
        transmit(s, now, true);
        work = true;
        timed_out = true;
      }
      oldest = std::min(oldest, s.last_sent);
    }
    oldest_sent_ = oldest;
  }
  if (timed_out) {
    // As TCP does (RFC 6298 5.5): the timer backs off and stays backed off
    // until an unambiguous sample arrives. Karn's rule keeps retransmitted
    // frames out of the estimate, so without this a path whose delay jumped
    // (a descheduled peer) would see every frame time out early.
    rto_ = std::min(o_.max_rto, rto_ * 2);
  }
  // The peer takes frames up to its cumulative ack plus its credits.
  while (!unsent_.empty() && unsent_.begin()->first - peer_acked_ < peer_credits_) {
    auto node = unsent_.extract(unsent_.begin());
    transmit(node.mapped(), now, false);
    inflight_.insert(std::move(node));
    work = true;
  }
  return work;
}

void ReliableChannel::send_ack() {
  FrameHeader h;
  h.opcode = Opcode::kAck;
  h.queue_id = o_.queue_id;
  h.function_id = o_.function_id;
  h.ack = rcv_next_;
  h.credits = o_.window;
  h.flags = kFlagAck;
  Sack sack;
  for (auto it = rcv_ahead_.begin(); it != rcv_ahead_.end() && sack.count < kMaxSackBlocks;) {
    const std::uint32_t start = *it;
    std::uint32_t end = start + 1;
    ++it;
    while (it != rcv_ahead_.end() && *it == end) {
      ++end;
      ++it;
    }
    sack.blocks[sack.count++] = SackBlock{start, end};
  }
  std::byte payload[kMaxSackBlocks * 8];
  std::size_t len = 0;
  if (sack.count > 0) {
    h.flags |= kFlagSack;
    len = encode_sack(sack, payload).value_or(0);
  }
  h.message_length = static_cast<std::uint32_t>(len);
  ++stats_.acks_sent;
  emit(h, std::span<const std::byte>(payload, len));
}

void ReliableChannel::on_ack(std::uint32_t ack, Clock::time_point now) {
  peer_acked_ = std::max(peer_acked_, ack);
  while (!inflight_.empty() && inflight_.begin()->first < ack) {
    const auto& s = inflight_.begin()->second;
    if (s.retries == 0) {  // Karn: only unambiguous samples
      const auto r = duration_cast<microseconds>(now - s.first_sent);
      if (srtt_.count() == 0) {
        srtt_ = r;
        rttvar_ = r / 2;
      } else {
        const auto diff = srtt_ > r ? srtt_ - r : r - srtt_;
        rttvar_ = (rttvar_ * 3 + diff) / 4;
        srtt_ = (srtt_ * 7 + r) / 8;
      }
      rto_ = std::clamp(srtt_ + std::max(kClockGranularity, rttvar_ * 4), o_.min_rto, o_.max_rto);
    }
    recycle(inflight_.extract(inflight_.begin()));
  }
}

void ReliableChannel::on_frame(const Frame& f, Clock::time_point now,
                               std::vector<ChannelMessage>& out) {
  const auto& h = f.header;
  ++stats_.frames_received;
  peer_credits_ = std::max<std::uint32_t>(1, h.credits);
  if ((h.flags & kFlagAck) != 0) {
    on_ack(h.ack, now);
  }
  if (h.opcode == Opcode::kAck) {
    if ((h.flags & kFlagSack) != 0) {
      auto sack = decode_sack(f.payload);
      if (!sack) {
        ++stats_.malformed;
        return;
      }
      for (std::size_t i = 0; i < sack->count; ++i) {
        // Received: never retransmitted. A range, whatever its width, costs
        // only the frames we actually hold in it.
        const auto& b = sack->blocks[i];
        if (b.start < b.end) {
          for (auto it = inflight_.lower_bound(b.start); it != inflight_.end() && it->first < b.end;) {
            recycle(inflight_.extract(it++));
          }
        }
      }
    }
    return;
  }
  if (h.opcode == Opcode::kKeepalive) {
    owe_ack(now, true);  // the peer asks whether we are alive
    return;
  }
  if (h.seq == 0 && (h.opcode == Opcode::kNak || h.opcode == Opcode::kGoodbye)) {
    out.push_back(ChannelMessage{h.opcode, h.tag, {f.payload.begin(), f.payload.end()}});
    return;
  }
  if (h.seq == 0) {
    ++stats_.malformed;
    return;
  }
  if (h.seq < rcv_next_ || rcv_ahead_.count(h.seq) != 0) {
    ++stats_.duplicates;  // delivered already: acked again, not applied again
    owe_ack(now, true);   // the peer retransmits: our ack was lost or late
    return;
  }
  // A gap (this frame is not the next one) is reported at once, with SACK.
  owe_ack(now, h.seq != rcv_next_ || !rcv_ahead_.empty());
  if (h.seq - rcv_next_ >= o_.window) {
    ++stats_.out_of_window;  // beyond the credits we gave: a confused or hostile sender
    return;
  }
  if (h.message_length > o_.max_message) {
    ++stats_.malformed;
    return;
  }
  auto rit = reassembly_.find(h.tag);
  if (rit == reassembly_.end() && h.frag_offset == 0 && h.length == h.message_length) {
    // A whole message in one frame (the common case): delivered as it is,
    // without a reassembly record. It is not held, so the reassembly budget
    // does not apply to it.
    record_received(h.seq);
    out.push_back(ChannelMessage{h.opcode, h.tag, {f.payload.begin(), f.payload.end()}});
    ++stats_.messages_delivered;
    return;
  }
  if (rit == reassembly_.end()) {
    if (reassembly_bytes_ + h.message_length > o_.max_reassembly_bytes) {
      ++stats_.out_of_window;  // not recorded, so not acked: sent again once room is made
      return;
    }
    rit = reassembly_.emplace(h.tag, Reassembly{}).first;
    rit->second.opcode = h.opcode;
    rit->second.message_length = h.message_length;
    rit->second.bytes.resize(h.message_length);
    reassembly_bytes_ += h.message_length;
  }
  Reassembly& r = rit->second;
  if (r.message_length != h.message_length || r.opcode != h.opcode) {
    ++stats_.malformed;  // a fragment that does not belong: the sender is confused
    return;
  }
  // Fragments of one message never overlap: one that does is dropped (it
  // would make `have` count bytes twice and deliver a message with holes).
  if (h.length > 0 || h.message_length == 0) {
    auto next = r.pieces.lower_bound(h.frag_offset);
    const bool overlaps_next = next != r.pieces.end() && next->first < h.frag_offset + h.length;
    const bool overlaps_prev = next != r.pieces.begin() &&
                               std::prev(next)->first + std::prev(next)->second > h.frag_offset;
    const bool same_empty = next != r.pieces.end() && next->first == h.frag_offset && h.length == 0;
    if (overlaps_next || overlaps_prev || same_empty) {
      ++stats_.malformed;
      return;
    }
    r.pieces.emplace(h.frag_offset, h.length);
  }
  record_received(h.seq);
  if (!f.payload.empty()) {
    std::memcpy(r.bytes.data() + h.frag_offset, f.payload.data(), f.payload.size());
  }
  r.have += h.length;
  if (r.have == r.message_length) {
    out.push_back(ChannelMessage{r.opcode, h.tag, std::move(r.bytes)});
    reassembly_bytes_ -= r.message_length;
    reassembly_.erase(rit);
    ++stats_.messages_delivered;
  }
}

void ReliableChannel::record_received(std::uint32_t seq) {
  if (seq == rcv_next_) {
    ++rcv_next_;
    while (!rcv_ahead_.empty() && rcv_ahead_.erase(rcv_next_) != 0) {
      ++rcv_next_;
    }
  } else {
    rcv_ahead_.insert(seq);
  }
}

bool ReliableChannel::receive(Clock::time_point now, std::vector<ChannelMessage>& out) {
  InFrame in[kRxBurst];
  const std::size_t mtu = transport_.mtu();
  bool work = false;
  for (;;) {
    for (std::size_t i = 0; i < kRxBurst; ++i) {
      in[i].buf = std::span(rx_bufs_).subspan(i * mtu, mtu);
    }
    const auto n = transport_.recv_burst(std::span(in, kRxBurst));
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::span<const std::byte> frame(in[i].buf.data(), in[i].len);
      auto f = decode_frame(frame);
      if (!f) {
        ++stats_.malformed;
        continue;
      }
      if (auth_ != nullptr && !auth_->verify(frame)) {
        ++stats_.auth_failures;  // dropped silently: no oracle for forgers
        continue;
      }
      if (f->header.function_id != o_.function_id || f->header.queue_id != o_.queue_id) {
        ++stats_.foreign;
        continue;
      }
      on_frame(*f, now, out);
      work = true;
    }
    if (n < kRxBurst) {
      return work;
    }
  }
}

void ReliableChannel::ingest(const Frame& f, Clock::time_point now,
                             std::vector<ChannelMessage>& out) {
  if (f.header.function_id != o_.function_id || f.header.queue_id != o_.queue_id) {
    ++stats_.foreign;
    return;
  }
  on_frame(f, now, out);
}

bool ReliableChannel::poll(Clock::time_point now, std::vector<ChannelMessage>& out) {
  const bool received = o_.receive && receive(now, out);
  return send_now(now) || received;
}

void ReliableChannel::flush_ack() noexcept {
  if (ack_due_) {
    send_ack();
    acked();
    flush_tx();
  }
}

bool ReliableChannel::send_now(Clock::time_point now) {
  bool work = false;
  if (!broken_) {
    work |= send_due(now);
  }
  // No data frame carried the ack: it goes alone when it may not wait or
  // has waited long enough.
  if (ack_due_ && (ack_now_ || now - ack_due_since_ >= o_.ack_delay)) {
    send_ack();
    acked();
    work = true;
  }
  flush_tx();
  return work;
}

}  // namespace viopool::pool
