// VhostRings: the guest memory and the virtqueues of a device that walks its
// rings itself (blk, crypto): built from rte_vhost's view of a connection at
// new_device, handed back (with the ring positions) at destroy_device, and
// the notification plumbing (call eventfd, kick eventfd in a WaitSet) of the
// polling thread. Devices own one and keep their request state beside it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vhost-backend/control/config.h"
#include "vhost-backend/runtime/poll_loop.h"
#include "vhost-backend/virtio/any_queue.h"
#include "vhost-backend/virtio/guest_memory.h"

namespace viopool::vhost {

// Enough for 16 data queues plus a control queue.
inline constexpr std::uint16_t kMaxRings = control::kMaxQueuePairs + 1;

class VhostRings {
 public:
  struct Ring {
    std::optional<virtio::AnyQueue> vq;  // split or packed, as negotiated
    int kickfd = -1;
    int kick_slot = -1;
    bool broken_logged = false;
  };

  // rte_vhost thread, new_device: loads the memory table and creates the
  // rings listed in `which` (vring indices below kMaxRings; others stay
  // empty), with notifications disabled (the device polls). `log_ids[i]`
  // names ring i on log lines. Returns the negotiated features; on failure
  // the reason has been logged.
  Result<std::uint64_t> attach(int vid, std::span<const std::uint16_t> which,
                               const std::array<std::string, kMaxRings>& log_ids,
                               const std::string& dev_name) noexcept;
  // rte_vhost thread, destroy_device, after the data path stopped: reports
  // each ring's position to rte_vhost (GET_VRING_BASE answers with it) and
  // drops the rings.
  void detach(int vid) noexcept;

  // Polling thread: pops the next chain of ring q into `out`. False when the
  // ring is empty or broken; a broken ring (the guest corrupted it) is logged
  // once, with `log_id`, and stays stopped until the device is reset.
  bool pop(std::uint16_t q, virtio::DescChain& out, const std::string& log_id) noexcept;
  // Polling thread: signals the call eventfd of ring q if the driver wants an
  // interrupt. Returns true if it signalled.
  bool notify(int vid, std::uint16_t q) noexcept;
  // Polling thread, before sleeping: enables notifications on ring q and adds
  // its kick eventfd to `ws`. Returns true if requests arrived meanwhile (do
  // not sleep).
  bool arm(int vid, std::uint16_t q, runtime::WaitSet& ws) noexcept;
  // Polling thread, after waking: disables notifications again and returns
  // the number of kicks consumed from ring q's eventfd.
  std::uint64_t disarm(std::uint16_t q, const runtime::WaitSet& ws) noexcept;

  Ring& ring(std::uint16_t q) noexcept { return rings_[q]; }
  const virtio::GuestMemory& memory() const noexcept { return mem_; }
  std::size_t regions() const noexcept { return mem_.regions().size(); }

 private:
  virtio::GuestMemory mem_;
  std::array<Ring, kMaxRings> rings_;
};

}  // namespace viopool::vhost
