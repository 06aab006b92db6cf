// AnyQueue: one virtqueue of either layout (SplitQueue or PackedQueue), chosen
// at negotiation time by VIRTIO_F_RING_PACKED, so devices (blk, crypto) drive
// both through one API. Calls are forwarded by a branch on the held type: no
// virtual calls and no allocation on the data path.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <variant>

#include "vhost-backend/base/result.h"
#include "vhost-backend/virtio/packed_queue.h"
#include "vhost-backend/virtio/split_queue.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::virtio {

// A completion for either layout: id is DescChain::id(), desc_count is
// DescChain::desc_count() (ignored by a split ring). Same type as PackedUsedElem
// so packed batches are forwarded without a copy.
using UsedElem = PackedUsedElem;

// Same threading and error contracts as the queue it holds (split_queue.h,
// packed_queue.h): owned and driven by one polling thread, nothing blocks.
class AnyQueue {
 public:
  explicit AnyQueue(SplitQueue&& q) noexcept : q_(std::in_place_type<SplitQueue>, std::move(q)) {}
  explicit AnyQueue(PackedQueue&& q) noexcept : q_(std::in_place_type<PackedQueue>, std::move(q)) {}

  // Control path: create the underlying queue (errors as its create()).
  static Result<AnyQueue> create(const SplitQueueConfig& config) {
    auto q = SplitQueue::create(config);
    if (!q) {
      return unexpected(q.error());
    }
    return AnyQueue(std::move(q).value());
  }
  static Result<AnyQueue> create(const PackedQueueConfig& config) {
    auto q = PackedQueue::create(config);
    if (!q) {
      return unexpected(q.error());
    }
    return AnyQueue(std::move(q).value());
  }

  AnyQueue(AnyQueue&&) noexcept = default;
  AnyQueue& operator=(AnyQueue&&) noexcept = default;
  AnyQueue(const AnyQueue&) = delete;
  AnyQueue& operator=(const AnyQueue&) = delete;

  bool packed() const noexcept { return std::holds_alternative<PackedQueue>(q_); }
  // The held queue, or nullptr if it is of the other layout.
  SplitQueue* split_queue() noexcept { return std::get_if<SplitQueue>(&q_); }
  PackedQueue* packed_queue() noexcept { return std::get_if<PackedQueue>(&q_); }

  Result<bool> pop_into(DescChain& out) noexcept {
    if (auto* p = packed_queue()) {
      return p->pop_into(out);
    }
    return split().pop_into(out);
  }

  // Completes chains in order. A split ring gets them in one used->idx update
  // per kSplitBatch elements (converted on the stack), a packed ring in one
  // publication for the whole span.
  void push_used(std::span<const UsedElem> elems) noexcept {
    if (auto* p = packed_queue()) {
      p->push_used(elems);
      return;
    }
    std::array<VringUsedElem, kSplitBatch> buf;
    while (!elems.empty()) {
      const std::size_t n = std::min(elems.size(), buf.size());
      for (std::size_t i = 0; i < n; ++i) {
        buf[i] = VringUsedElem{elems[i].id, elems[i].len};
      }
      split().push_used(std::span<const VringUsedElem>(buf.data(), n));
      elems = elems.subspan(n);
    }
  }
  void push_used(std::uint16_t id, std::uint32_t len, std::uint16_t desc_count) noexcept {
    if (auto* p = packed_queue()) {
      p->push_used(id, len, desc_count);
      return;
    }
    split().push_used(id, len);
  }
  // Completes a popped chain with `len` bytes written.
  void push_used(const DescChain& chain, std::uint32_t len) noexcept {
    push_used(chain.id(), len, chain.desc_count());
  }

  bool need_notify() noexcept {
    if (auto* p = packed_queue()) {
      return p->need_notify();
    }
    return split().need_notify();
  }
  void set_notifications(Notifications n) noexcept {
    if (auto* p = packed_queue()) {
      p->set_notifications(n);
      return;
    }
    split().set_notifications(n);
  }
  bool has_pending() const noexcept {
    if (const auto* p = std::get_if<PackedQueue>(&q_)) {
      return p->has_pending();
    }
    return split().has_pending();
  }
  bool broken() const noexcept {
    if (const auto* p = std::get_if<PackedQueue>(&q_)) {
      return p->broken();
    }
    return split().broken();
  }
  std::uint32_t size() const noexcept {
    if (const auto* p = std::get_if<PackedQueue>(&q_)) {
      return p->size();
    }
    return split().size();
  }
  const SplitQueueStats& stats() const noexcept {
    if (const auto* p = std::get_if<PackedQueue>(&q_)) {
      return p->stats();
    }
    return split().stats();
  }

  // The values to hand to rte_vhost_set_vring_base (and to answer
  // GET_VRING_BASE with): split, the free-running indices; packed, the
  // positions with the wrap counter in bit 15 (DPDK 22.11's encoding).
  void vring_base(std::uint16_t& avail, std::uint16_t& used) const noexcept {
    if (const auto* p = std::get_if<PackedQueue>(&q_)) {
      avail = p->last_avail_idx_encoded();
      used = p->last_used_idx_encoded();
      return;
    }
    const auto& s = split();
    avail = s.last_avail_idx();
    used = s.last_used_idx();
  }

 private:
  // Split completions converted per stack batch: a poll burst is ~32.
  static constexpr std::size_t kSplitBatch = 64;

  // Only called when packed_queue() returned nullptr: the variant holds a
  // SplitQueue (it is never valueless: both types move without throwing).
  SplitQueue& split() noexcept { return *std::get_if<SplitQueue>(&q_); }
  const SplitQueue& split() const noexcept { return *std::get_if<SplitQueue>(&q_); }

  std::variant<SplitQueue, PackedQueue> q_;
};

}  // namespace viopool::virtio
