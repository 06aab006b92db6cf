// VhostRings: rte_vhost's memory table and vrings turned into our GuestMemory
// and AnyQueues, and back.
#include "vhost-backend/vhost/vhost_rings.h"

#include <rte_vhost.h>
#include <sys/eventfd.h>

#include <cstdlib>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("vhost")

namespace viopool::vhost {

Result<std::uint64_t> VhostRings::attach(int vid, std::span<const std::uint16_t> which,
                                         const std::array<std::string, kMaxRings>& log_ids,
                                         const std::string& dev_name) noexcept {
  std::uint64_t features = 0;
  rte_vhost_get_negotiated_features(vid, &features);
  rte_vhost_memory* table = nullptr;
  if (rte_vhost_get_mem_table(vid, &table) != 0 || table == nullptr) {
    VIOPOOL_LOG_ERROR("no memory table dev={} vid={}", dev_name, vid);
    return fail(Errc::kProtocol, "no memory table");
  }
  mem_.clear();
  bool mem_ok = true;
  for (std::uint32_t i = 0; i < table->nregions; ++i) {
    const auto& r = table->regions[i];
    if (r.size == 0) {
      continue;
    }
    auto added = mem_.add_region(virtio::MemoryRegion{
        GuestAddr(r.guest_phys_addr), r.size,
        reinterpret_cast<std::byte*>(static_cast<std::uintptr_t>(r.host_user_addr))});
    mem_ok = mem_ok && added.has_value();
  }
  std::free(table);
  if (!mem_ok) {
    VIOPOOL_LOG_ERROR("frontend memory table rejected dev={} vid={}", dev_name, vid);
    return fail(Errc::kProtocol, "memory table rejected");
  }

  const auto event_idx = (features >> virtio::kFeatureRingEventIdx) & 1 ? virtio::EventIdx::kYes
                                                                        : virtio::EventIdx::kNo;
  for (const std::uint16_t q : which) {
    if (q >= kMaxRings) {
      continue;
    }
    rte_vhost_vring vr{};
    std::uint16_t last_avail = 0;
    std::uint16_t last_used = 0;
    if (rte_vhost_get_vhost_vring(vid, q, &vr) != 0 ||
        rte_vhost_get_vring_base(vid, q, &last_avail, &last_used) != 0) {
      VIOPOOL_LOG_ERROR("cannot read vring dev={} vid={} q={}", dev_name, vid, q);
      return fail(Errc::kProtocol, "cannot read vring");
    }
    Result<virtio::AnyQueue> sq = fail(Errc::kInternal, "no queue");
    if ((features >> virtio::kFeatureRingPacked) & 1) {
      virtio::PackedQueueConfig pc;
      pc.desc = reinterpret_cast<std::byte*>(vr.desc_packed);
      pc.driver_event = reinterpret_cast<std::byte*>(vr.driver_event);
      pc.device_event = reinterpret_cast<std::byte*>(vr.device_event);
      pc.size = vr.size;
      pc.memory = &mem_;
      pc.event_idx = event_idx;
      // rte_vhost hands packed positions over with the wrap counter in bit 15.
      pc.set_vring_base(last_avail, last_used);
      pc.log_id = log_ids[q];
      sq = virtio::AnyQueue::create(pc);
    } else {
      virtio::SplitQueueConfig qc;
      qc.desc = reinterpret_cast<std::byte*>(vr.desc);
      qc.avail = reinterpret_cast<std::byte*>(vr.avail);
      qc.used = reinterpret_cast<std::byte*>(vr.used);
      qc.size = vr.size;
      qc.memory = &mem_;
      qc.event_idx = event_idx;
      qc.last_avail_idx = last_avail;
      qc.last_used_idx = last_used;
      qc.log_id = log_ids[q];
      sq = virtio::AnyQueue::create(qc);
    }
    if (!sq) {
      VIOPOOL_LOG_ERROR("frontend ring rejected dev={} vid={} q={} size={} error=\"{}\"", dev_name,
                        vid, q, vr.size, sq.error().what);
      return unexpected(sq.error());
    }
    auto& ring = rings_[q];
    ring.vq.emplace(std::move(*sq));
    ring.vq->set_notifications(virtio::Notifications::kDisabled);  // polling
    ring.broken_logged = false;
    ring.kick_slot = -1;
  }
  return features;
}

void VhostRings::detach(int vid) noexcept {
  for (std::uint16_t q = 0; q < kMaxRings; ++q) {
    auto& ring = rings_[q];
    if (ring.vq) {
      // GET_VRING_BASE (which triggered the detach) reports these to the
      // frontend (packed: with the wrap counters in bit 15).
      std::uint16_t avail = 0;
      std::uint16_t used = 0;
      ring.vq->vring_base(avail, used);
      rte_vhost_set_vring_base(vid, q, avail, used);
      ring.vq.reset();
    }
  }
}

bool VhostRings::pop(std::uint16_t q, virtio::DescChain& out, const std::string& log_id) noexcept {
  auto& ring = rings_[q];
  auto popped = ring.vq->pop_into(out);
  if (!popped) {
    if (!ring.broken_logged) {
      ring.broken_logged = true;
      VIOPOOL_LOG_ERROR("guest corrupted the ring {} error=\"{}\"; queue stopped until reset",
                        log_id, popped.error().what);
    }
    return false;
  }
  return *popped;
}

bool VhostRings::notify(int vid, std::uint16_t q) noexcept {
  auto& ring = rings_[q];
  if (!ring.vq || !ring.vq->need_notify()) {
    return false;
  }
  // The call fd may be replaced by the frontend at any time (QEMU does so
  // when the guest masks the vector): read the current one.
  rte_vhost_vring vr{};
  if (rte_vhost_get_vhost_vring(vid, q, &vr) == 0 && vr.callfd >= 0) {
    eventfd_write(vr.callfd, 1);
    return true;
  }
  return false;
}

bool VhostRings::arm(int vid, std::uint16_t q, runtime::WaitSet& ws) noexcept {
  auto& ring = rings_[q];
  ring.kick_slot = -1;
  if (!ring.vq) {
    return false;
  }
  // set_notifications() fences before has_pending() reads the ring.
  ring.vq->set_notifications(virtio::Notifications::kEnabled);
  const bool pending = ring.vq->has_pending();
  rte_vhost_vring vr{};
  if (rte_vhost_get_vhost_vring(vid, q, &vr) == 0 && vr.kickfd >= 0) {
    ring.kickfd = vr.kickfd;
    ring.kick_slot = ws.add(vr.kickfd);
  }
  if (ring.kick_slot < 0) {
    ws.wake_within_us(1000);  // no fd to wait on: look again soon
  }
  return pending;
}

std::uint64_t VhostRings::disarm(std::uint16_t q, const runtime::WaitSet& ws) noexcept {
  auto& ring = rings_[q];
  std::uint64_t kicks = 0;
  if (ring.vq) {
    ring.vq->set_notifications(virtio::Notifications::kDisabled);
  }
  if (ws.readable(ring.kick_slot)) {
    eventfd_t cnt = 0;
    // Readable eventfd: this read does not block.
    if (eventfd_read(ring.kickfd, &cnt) == 0) {
      kicks = cnt;
    }
  }
  ring.kick_slot = -1;
  return kicks;
}

}  // namespace viopool::vhost
