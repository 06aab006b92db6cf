// What BlkDriver and CryptoDriver share below their device's requests: the
// DeviceSession, and per request queue a DriverQueue with a fixed array of
// request slots in guest memory (one per request in flight, each holding the
// bytes the driver sends and the device writes back beside the caller's
// buffers). The drivers decide a slot's layout, fill it and decode
// completions; SlotDriver hands slots out, takes them back on completion and
// does the queue checks, kicks, waits and bounded polling that are the same
// for every device, so both drivers behave alike on their data path.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "integration/frontend/driver_queue.h"
#include "integration/frontend/guest_memory_arena.h"
#include "integration/frontend/vhost_user_frontend.h"
#include "integration/frontend/virtio_driver_session.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/virtio/features.h"

namespace viopool::frontend {

// `Slot` is the driver's per-request bookkeeping in host memory; it has at
// least `std::uint64_t cookie` (the caller's cookie of the request using it).
// DriverQueue's cookie of a chain is its slot index.
//
// Threads: as the drivers' (control-path set-up, then each queue driven by
// one thread at a time).
template <typename Slot>
class SlotDriver {
 public:
  SlotDriver(const SlotDriver&) = delete;
  SlotDriver& operator=(const SlotDriver&) = delete;

  // ---- Negotiated state ----
  virtio::FeatureSet offered_features() const noexcept { return session_.offered_features(); }
  virtio::FeatureSet features() const noexcept { return session_.features(); }
  bool has_feature(unsigned bit) const noexcept { return session_.has_feature(bit); }
  RingLayout ring_layout() const noexcept { return session_.ring_layout(); }
  std::uint64_t offered_protocol_features() const noexcept {
    return session_.offered_protocol_features();
  }
  std::uint64_t protocol_features() const noexcept { return session_.protocol_features(); }
  std::uint32_t backend_queue_count() const noexcept { return session_.backend_queue_count(); }
  // Request queues driven (crypto: data queues; the control queue is apart).
  std::uint16_t num_queues() const noexcept { return static_cast<std::uint16_t>(queues_.size()); }
  // Largest number of requests that may be in flight on one request queue.
  std::uint32_t max_in_flight() const noexcept { return slots_per_queue_; }
  GuestMemoryArena& arena() noexcept { return session_.arena(); }
  VhostUserFrontend& frontend() noexcept { return session_.frontend(); }
  DriverQueue& queue(std::uint16_t q) noexcept { return *queues_[q].vq; }

  // ---- Request queues (queue q's thread) ----
  // Publishes queued requests and notifies the device if it wants it.
  Result<bool> kick(std::uint16_t q) noexcept {
    VIOPOOL_TRY(check_queue(q));
    return queues_[q].vq->kick();
  }
  std::uint32_t in_flight(std::uint16_t q) const noexcept {
    return q < queues_.size() ? queues_[q].vq->in_flight() : 0;
  }

 protected:
  SlotDriver() = default;
  // Not virtual: drivers are never destroyed through SlotDriver. session_'s
  // destructor stops the rings (if they came up and stop() was not called)
  // and frees them before the arena.
  ~SlotDriver() = default;

  // The DeviceSessionOptions in a driver's options (BlkDriverOptions and
  // CryptoDriverOptions name these fields alike).
  template <typename DriverOptions>
  static DeviceSessionOptions session_options(const DriverOptions& o) {
    DeviceSessionOptions so;
    so.socket_path = o.socket_path;
    so.arena = o.arena;
    so.frontend = o.frontend;
    so.use_indirect = o.use_indirect;
    so.ring_layout = o.ring_layout;
    so.exclude = o.exclude;
    return so;
  }

  // Sizes the queue table before DeviceSession::setup_queues(): `count`
  // request queues of `slots` slots of `slot_bytes` (a multiple of 64) each,
  // and chains of at most `max_chain` descriptors.
  void init_queues(std::uint16_t count, std::uint32_t slots, std::uint64_t slot_bytes,
                   std::size_t max_chain) {
    queues_.resize(count);
    slots_per_queue_ = slots;
    slot_bytes_ = slot_bytes;
    max_chain_ = max_chain;
  }

  // The QueueHook part for request queue i: binds it to `vq` and allocates
  // its request slots right after its ring.
  Result<void> attach_queue(std::size_t i, DriverQueue& vq, std::string* why) {
    Queue& q = queues_[i];
    q.vq = &vq;
    // 64-byte aligned so that two requests never share a cache line.
    auto area = session_.arena().alloc(slot_bytes_ * slots_per_queue_, 64);
    if (!area) {
      return session_.failed_step(why, "request slots", area.error());
    }
    q.slot_area = *area;
    q.slots.resize(slots_per_queue_);
    q.free_slots.resize(slots_per_queue_);
    for (std::uint32_t s = 0; s < slots_per_queue_; ++s) {
      q.free_slots[s] = slots_per_queue_ - 1 - s;
    }
    q.reaped.resize(slots_per_queue_);
    q.segs.resize(max_chain_);
    return {};
  }

  Result<void> check_queue(std::uint16_t q) const noexcept {
    if (q >= queues_.size()) {
      return fail(Errc::kInvalidArgument, "no such queue");
    }
    return {};
  }
  // kBusy unless queue q exists and has nothing in flight: execute()-style
  // calls take the first completion as theirs.
  Result<void> check_idle(std::uint16_t q, const char* busy_message) const noexcept {
    VIOPOOL_TRY(check_queue(q));
    if (in_flight(q) != 0) {
      return fail(Errc::kBusy, busy_message);
    }
    return {};
  }
  // kInvalidArgument unless every buffer is non-empty and inside the arena.
  Result<void> check_buffers(std::span<const GuestBuffer> bufs) const noexcept {
    for (const auto& b : bufs) {
      if (b.len == 0 || session_.arena().host(b.addr, b.len) == nullptr) {
        return fail(Errc::kInvalidArgument, "buffer empty or outside guest memory");
      }
    }
    return {};
  }

  std::byte* slot_base(std::uint16_t q, std::uint32_t slot) const noexcept {
    return queues_[q].slot_area.host + slot_bytes_ * slot;
  }
  GuestAddr slot_gpa(std::uint16_t q, std::uint32_t slot) const noexcept {
    return GuestAddr{queues_[q].slot_area.gpa.value + slot_bytes_ * slot};
  }
  // Queue q's scratch for building a chain: max_chain entries, sized once so
  // that a request does not zero a whole chain's worth on the stack.
  std::span<DriverSegment> segment_scratch(std::uint16_t q) noexcept { return queues_[q].segs; }

  // Checks the queue and returns the slot the next request takes (its
  // contents are the caller's to fill), or kResourceExhausted.
  Result<std::uint32_t> next_slot(std::uint16_t q) const noexcept {
    VIOPOOL_TRY(check_queue(q));
    if (queues_[q].free_slots.empty()) {
      return fail(Errc::kResourceExhausted, "queue is full");
    }
    return queues_[q].free_slots.back();
  }
  // Adds `segs` as the chain of `slot` (next_slot()'s, filled by the caller)
  // and takes the slot; on failure the slot stays free.
  Result<void> commit_slot(std::uint16_t q, std::uint32_t slot, std::span<const DriverSegment> segs,
                           const Slot& s) noexcept {
    Queue& qu = queues_[q];
    VIOPOOL_TRY(qu.vq->add(segs, slot));
    // next_slot() handed out the back of the free list and nothing took it since.
    qu.free_slots.pop_back();
    qu.slots[slot] = s;
    return {};
  }

  // Reaps up to out.size() completions of queue q, calls
  // decode(slot, const Slot&, used_len, Completion&) for each (before its slot
  // is free again) and returns the count.
  template <typename Completion, typename Decode>
  Result<std::size_t> reap_slots(std::uint16_t q, std::span<Completion> out,
                                 Decode&& decode) noexcept {
    VIOPOOL_TRY(check_queue(q));
    Queue& qu = queues_[q];
    const std::size_t want = std::min(out.size(), qu.reaped.size());
    auto n = qu.vq->reap(std::span<DriverCompletion>(qu.reaped.data(), want));
    if (!n) {
      return unexpected(n.error());
    }
    for (std::size_t i = 0; i < *n; ++i) {
      const auto slot = static_cast<std::uint32_t>(qu.reaped[i].cookie);
      decode(slot, qu.slots[slot], qu.reaped[i].len, out[i]);
      qu.free_slots.push_back(slot);
    }
    return *n;
  }

  // The drivers' wait(): sleeps on queue q's call eventfd up to `limit`, then
  // returns poll() (0 on timeout). Leaves the queue's interrupts enabled.
  template <typename Poll>
  Result<std::size_t> wait_then_poll(std::uint16_t q, std::chrono::milliseconds limit,
                                     Poll&& poll) noexcept {
    VIOPOOL_TRY(check_queue(q));
    auto ready = queues_[q].vq->wait_used(limit);
    if (!ready) {
      return unexpected(ready.error());
    }
    if (!*ready) {
      return std::size_t{0};
    }
    return poll();
  }

  // For execute()-style calls on an idle queue: kicks queue q, then
  // busy-polls (yielding the CPU in between) until poll(span of one) returns
  // the completion or `limit` passes (kTimeout; the request stays in flight).
  template <typename Completion, typename Poll>
  Result<Completion> kick_and_poll_one(std::uint16_t q, std::chrono::milliseconds limit,
                                       Poll&& poll) {
    VIOPOOL_TRY(kick(q));
    const auto deadline = std::chrono::steady_clock::now() + limit;
    Completion c;
    for (;;) {
      auto n = poll(std::span<Completion>(&c, 1));
      if (!n) {
        return unexpected(n.error());
      }
      if (*n == 1) {
        return c;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return fail(Errc::kTimeout, "request did not complete in time");
      }
      std::this_thread::yield();
    }
  }

  // Connection, arena and rings; stops the rings when destroyed.
  DeviceSession session_;

 private:
  struct Queue {
    DriverQueue* vq = nullptr;  // owned by session_
    ArenaBlock slot_area;       // slots_per_queue_ slots of slot_bytes_
    std::vector<std::uint32_t> free_slots;
    std::vector<Slot> slots;
    std::vector<DriverCompletion> reaped;  // scratch for reap_slots()
    std::vector<DriverSegment> segs;       // segment_scratch()
  };
  // Declared after session_: destroyed first, before the rings they point at.
  std::vector<Queue> queues_;
  std::uint32_t slots_per_queue_ = 0;
  std::uint64_t slot_bytes_ = 0;
  std::size_t max_chain_ = 0;
};

}  // namespace viopool::frontend
