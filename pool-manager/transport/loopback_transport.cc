// LoopbackTransport: an in-process link with fault injection.
#include "pool-manager/transport/loopback_transport.h"

#include <algorithm>
#include <cstring>

namespace viopool::pool {

void FaultyLink::push(std::span<const std::byte> frame, const PeerAddress& from) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (roll(faults_.drop)) {
    ++fstats_.dropped;
    return;
  }
  Item it{std::vector<std::byte>(frame.begin(), frame.end()), from,
          std::chrono::steady_clock::now()};
  if (!it.data.empty() && roll(faults_.corrupt)) {
    const std::size_t at = static_cast<std::size_t>(rng_() % it.data.size());
    it.data[at] ^= static_cast<std::byte>(1u << (rng_() % 8));
    ++fstats_.corrupted;
  }
  if (roll(faults_.delay)) {
    it.ready += faults_.delay_by;
    ++fstats_.delayed;
  }
  const bool dup = roll(faults_.duplicate);
  if (!held_ && roll(faults_.reorder)) {
    held_ = std::move(it);  // goes out behind the next frame
    ++fstats_.reordered;
    return;
  }
  if (dup) {
    inbox_.push_back(it);
    ++fstats_.duplicated;
  }
  inbox_.push_back(std::move(it));
  if (held_) {
    inbox_.push_back(std::move(*held_));
    held_.reset();
  }
}

std::uint32_t FaultyLink::pop(std::span<InFrame> out, TransportStats& st) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::uint32_t n = 0;
  for (auto it = inbox_.begin(); it != inbox_.end() && n < out.size();) {
    if (it->ready > now) {
      ++it;  // delayed: later frames may overtake it
      continue;
    }
    if (it->data.size() > out[n].buf.size()) {
      ++st.truncated;
    } else {
      std::memcpy(out[n].buf.data(), it->data.data(), it->data.size());
      out[n].len = static_cast<std::uint32_t>(it->data.size());
      out[n].peer = it->from;
      ++n;
    }
    it = inbox_.erase(it);
  }
  st.received += n;
  return n;
}

FaultStats FaultyLink::fault_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fstats_;
}

std::size_t FaultyLink::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inbox_.size() + (held_ ? 1 : 0);
}

std::pair<std::unique_ptr<LoopbackTransport>, std::unique_ptr<LoopbackTransport>>
LoopbackTransport::make_pair(std::uint32_t mtu, const FaultRates& a_to_b,
                             const FaultRates& b_to_a) {
  auto ab = std::make_shared<FaultyLink>(a_to_b);
  auto ba = std::make_shared<FaultyLink>(b_to_a);
  PeerAddress a;
  a.len = 1;
  a.bytes[0] = 1;
  PeerAddress b;
  b.len = 1;
  b.bytes[0] = 2;
  std::unique_ptr<LoopbackTransport> ea(new LoopbackTransport(mtu, a, ab, ba));
  std::unique_ptr<LoopbackTransport> eb(new LoopbackTransport(mtu, b, ba, ab));
  return {std::move(ea), std::move(eb)};
}

std::uint32_t LoopbackTransport::send_burst(std::span<const OutFrame> frames) noexcept {
  std::uint32_t n = 0;
  for (const auto& f : frames) {
    if (f.data.size() > mtu_) {
      ++stats_.send_errors;  // as a network refuses an oversized datagram
    } else {
      out_->push(f.data, self_);
      ++stats_.sent;
    }
    ++n;
  }
  return n;
}

std::uint32_t LoopbackTransport::recv_burst(std::span<InFrame> frames) noexcept {
  return in_->pop(frames, stats_);
}

}  // namespace viopool::pool
