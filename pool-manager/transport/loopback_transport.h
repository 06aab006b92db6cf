// LoopbackTransport: two in-process endpoints joined by a link that can drop,
// reorder, duplicate, delay and corrupt frames at given rates, reproducibly
// from a seed (as Seastar's loopback network with error injection). Tests of
// the fabric's reliability run on it without a network; viopool-chaos does
// the same to real UDP traffic.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "pool-manager/transport/transport.h"

namespace viopool::pool {

struct FaultRates {
  double drop = 0;       // probability a frame is lost
  double reorder = 0;    // ... held back behind the next frame
  double duplicate = 0;  // ... delivered twice
  double corrupt = 0;    // ... has one byte flipped
  double delay = 0;      // ... arrives `delay_by` late
  std::chrono::microseconds delay_by{1000};
  std::uint64_t seed = 1;
};

struct FaultStats {
  std::uint64_t dropped = 0;
  std::uint64_t reordered = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupted = 0;
  std::uint64_t delayed = 0;
};

class LoopbackTransport;

// A one-way medium with faults: frames pushed in come out of pop() dropped,
// reordered, duplicated, delayed or corrupted at the configured rates.
// Thread-safe: the two sides may run on their own threads. One direction of
// a LoopbackTransport pair, and of viopool-chaos.
class FaultyLink {
 public:
  explicit FaultyLink(const FaultRates& f) : faults_(f), rng_(f.seed) {}
  void push(std::span<const std::byte> frame, const PeerAddress& from) noexcept;
  std::uint32_t pop(std::span<InFrame> out, TransportStats& st) noexcept;
  FaultStats fault_stats() const;
  std::size_t queued() const;

 private:
  struct Item {
    std::vector<std::byte> data;
    PeerAddress from;
    std::chrono::steady_clock::time_point ready;
  };
  bool roll(double p) noexcept { return p > 0 && dist_(rng_) < p; }

  const FaultRates faults_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> dist_{0.0, 1.0};
  std::deque<Item> inbox_;
  std::optional<Item> held_;  // a frame reordered behind the next one
  FaultStats fstats_;
};

class LoopbackTransport final : public Transport {
 public:
  // Endpoints A (address 1) and B (address 2); `a_to_b` are the faults of
  // frames A sends.
  static std::pair<std::unique_ptr<LoopbackTransport>, std::unique_ptr<LoopbackTransport>>
  make_pair(std::uint32_t mtu, const FaultRates& a_to_b = {}, const FaultRates& b_to_a = {});

  const char* kind() const noexcept override { return "loopback"; }
  std::uint32_t mtu() const noexcept override { return mtu_; }
  std::uint32_t send_burst(std::span<const OutFrame> frames) noexcept override;
  std::uint32_t recv_burst(std::span<InFrame> frames) noexcept override;
  const TransportStats& stats() const noexcept override { return stats_; }
  const PeerAddress& local() const noexcept { return self_; }
  // Faults applied to the frames this endpoint sent.
  FaultStats fault_stats() const { return out_->fault_stats(); }

 private:
  LoopbackTransport(std::uint32_t mtu, PeerAddress self, std::shared_ptr<FaultyLink> out,
                    std::shared_ptr<FaultyLink> in)
      : mtu_(mtu), self_(self), out_(std::move(out)), in_(std::move(in)) {}

  std::uint32_t mtu_;
  PeerAddress self_;
  std::shared_ptr<FaultyLink> out_;
  std::shared_ptr<FaultyLink> in_;
  TransportStats stats_;
};

}  // namespace viopool::pool
