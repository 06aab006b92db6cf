// Driver side of a split ring for tests: arena allocation, ring layout, chain
// building with free-list descriptor management, and raw ring pokes. It follows
// the driver's half of the memory-ordering protocol, as a Linux guest does.
#include "tests/support/fake_guest_driver.h"

#include <atomic>
#include <cstring>
#include <new>

#include "vhost-backend/base/check.h"

namespace viopool::testing {
namespace {

using virtio::VringDesc;

// Host arenas are page-aligned like real guest RAM mappings.
constexpr std::align_val_t kArenaAlign{4096};
// Ring areas start on their own cache lines, as Linux's vring layout roughly does.
constexpr std::uint64_t kRingAreaAlign = 64;

std::uint16_t load16(std::uint16_t* p) {
  return std::atomic_ref<std::uint16_t>(*p).load(std::memory_order_relaxed);
}
void store16(std::uint16_t* p, std::uint16_t v) {
  std::atomic_ref<std::uint16_t>(*p).store(v, std::memory_order_relaxed);
}

}  // namespace

FakeGuestArena::FakeGuestArena(GuestAddr base, std::uint64_t region_bytes, RegionLayout layout) {
  std::uint64_t gpa = base.value;
  const int n_regions = layout == RegionLayout::kOne ? 1 : 2;
  for (int i = 0; i < n_regions; ++i) {
    auto* host = static_cast<std::byte*>(::operator new(region_bytes, kArenaAlign));
    std::memset(host, 0, region_bytes);
    regions_.push_back(Region{GuestAddr{gpa}, region_bytes, host, 0});
    VIOPOOL_CHECK(memory_.add_region({GuestAddr{gpa}, region_bytes, host}).has_value());
    gpa += region_bytes;
    if (layout == RegionLayout::kTwoWithGap) {
      gpa += region_bytes;  // leave an unmapped hole as large as a region
    }
  }
}

FakeGuestArena::~FakeGuestArena() {
  for (const Region& r : regions_) {
    ::operator delete(r.host, kArenaAlign);
  }
}

GuestAddr FakeGuestArena::alloc(std::uint64_t len, std::uint64_t align) {
  for (Region& r : regions_) {
    const std::uint64_t start = (r.next + align - 1) / align * align;
    if (start <= r.size && len <= r.size - start) {
      r.next = start + len;
      std::memset(r.host + start, 0, len);
      return GuestAddr{r.base.value + start};
    }
  }
  check_failed("FakeGuestArena exhausted", __FILE__, __LINE__);
}

std::byte* FakeGuestArena::host(GuestAddr addr, std::uint64_t len) const {
  for (const Region& r : regions_) {
    if (addr.value >= r.base.value && addr.value - r.base.value <= r.size &&
        len <= r.size - (addr.value - r.base.value)) {
      return r.host + (addr.value - r.base.value);
    }
  }
  check_failed("FakeGuestArena: address not in one region", __FILE__, __LINE__);
}

void FakeGuestArena::write(GuestAddr addr, std::span<const std::byte> data) {
  std::memcpy(host(addr, data.size()), data.data(), data.size());
}

std::vector<std::byte> FakeGuestArena::read(GuestAddr addr, std::uint64_t len) const {
  const std::byte* p = host(addr, len);
  return std::vector<std::byte>(p, p + len);
}

FakeGuestDriver::FakeGuestDriver(const FakeGuestDriverOptions& options)
    : size_(options.queue_size),
      start_idx_(options.start_idx),
      arena_(options.base, options.region_bytes, options.layout),
      avail_shadow_(options.start_idx),
      last_used_seen_(options.start_idx),
      chain_descs_(options.queue_size) {
  VIOPOOL_CHECK(size_ >= 1 && size_ <= virtio::kMaxQueueSize);
  const auto area = [this](std::uint64_t len) { return host(alloc(len, kRingAreaAlign), len); };
  desc_ = area(virtio::desc_table_bytes(size_));
  avail_ = area(virtio::avail_ring_bytes(size_));
  used_ = area(virtio::used_ring_bytes(size_));
  store16(avail_field(offsetof(virtio::VringAvail, idx)), start_idx_);
  store16(used_field(offsetof(virtio::VringUsed, idx)), start_idx_);
  // Hand out low indices first so tests read naturally.
  for (std::uint32_t i = size_; i-- > 0;) {
    free_.push_back(static_cast<std::uint16_t>(i));
  }
}

virtio::SplitQueueConfig FakeGuestDriver::queue_config(virtio::EventIdx event_idx) const {
  virtio::SplitQueueConfig c;
  c.desc = desc_;
  c.avail = avail_;
  c.used = used_;
  c.size = size_;
  c.memory = &arena_.memory();
  c.event_idx = event_idx;
  c.last_avail_idx = start_idx_;
  c.last_used_idx = start_idx_;
  c.log_id = "dev=fake q=0";
  return c;
}

GuestAddr FakeGuestDriver::make_indirect_table(std::span<const VringDesc> descs) {
  const GuestAddr table = alloc(descs.size_bytes(), virtio::kDescTableAlign);
  write(table, std::as_bytes(descs));
  return table;
}

std::uint16_t* FakeGuestDriver::avail_field(std::size_t offset) const {
  return reinterpret_cast<std::uint16_t*>(avail_ + offset);
}

std::uint16_t* FakeGuestDriver::used_field(std::size_t offset) const {
  return reinterpret_cast<std::uint16_t*>(used_ + offset);
}

std::uint16_t FakeGuestDriver::add_chain(std::span<const FakeBuf> readable,
                                         std::span<const FakeBuf> writable, Indirect indirect) {
  std::vector<FakeSegment> segments;
  for (const FakeBuf& b : readable) {
    segments.push_back({b.addr, b.len, Writable::kNo});
  }
  for (const FakeBuf& b : writable) {
    segments.push_back({b.addr, b.len, Writable::kYes});
  }
  return add_segments(segments, indirect);
}

std::uint16_t FakeGuestDriver::add_segments(std::span<const FakeSegment> segments,
                                            Indirect indirect) {
  const std::uint16_t head = build_chain(segments, indirect);
  push_avail(head);
  return head;
}

std::uint16_t FakeGuestDriver::build_chain(std::span<const FakeSegment> segments,
                                           Indirect indirect) {
  VIOPOOL_CHECK(!segments.empty());
  std::vector<VringDesc> descs;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    descs.push_back(
        VringDesc{segments[i].addr.value, segments[i].len,
                  static_cast<std::uint16_t>(
                      (last ? 0 : virtio::kDescNext) |
                      (segments[i].writable == Writable::kYes ? virtio::kDescWrite : 0)),
                  0});
  }
  if (indirect == Indirect::kYes) {
    for (std::size_t i = 0; i + 1 < descs.size(); ++i) {
      descs[i].next = static_cast<std::uint16_t>(i + 1);
    }
    const GuestAddr table = make_indirect_table(descs);
    const std::uint16_t head = alloc_desc();
    write_desc(head,
               VringDesc{table.value, static_cast<std::uint32_t>(descs.size() * sizeof(VringDesc)),
                         virtio::kDescIndirect, 0});
    return head;
  }
  VIOPOOL_CHECK(descs.size() <= free_.size());
  std::vector<std::uint16_t> ids;
  for (std::size_t i = 0; i < descs.size(); ++i) {
    ids.push_back(alloc_desc());
  }
  for (std::size_t i = 0; i < descs.size(); ++i) {
    if (i + 1 < descs.size()) {
      descs[i].next = ids[i + 1];
    }
    write_desc(ids[i], descs[i]);
  }
  // alloc_desc recorded each id as its own chain; keep them all under the head.
  for (std::size_t i = 1; i < ids.size(); ++i) {
    chain_descs_[ids[i]].clear();
  }
  chain_descs_[ids[0]] = ids;
  return ids[0];
}

std::uint16_t FakeGuestDriver::alloc_desc() {
  VIOPOOL_CHECK(!free_.empty());
  const std::uint16_t id = free_.back();
  free_.pop_back();
  chain_descs_[id] = {id};
  return id;
}

void FakeGuestDriver::write_desc(std::uint16_t idx, const VringDesc& desc) {
  VIOPOOL_CHECK(idx < size_);
  std::memcpy(desc_ + std::size_t{idx} * sizeof(VringDesc), &desc, sizeof(desc));
}

VringDesc FakeGuestDriver::read_desc(std::uint16_t idx) const {
  VIOPOOL_CHECK(idx < size_);
  VringDesc d;
  std::memcpy(&d, desc_ + std::size_t{idx} * sizeof(VringDesc), sizeof(d));
  return d;
}

void FakeGuestDriver::set_desc_next(std::uint16_t idx, std::uint16_t next) {
  VringDesc d = read_desc(idx);
  d.next = next;
  write_desc(idx, d);
}

void FakeGuestDriver::set_desc_flags(std::uint16_t idx, std::uint16_t flags) {
  VringDesc d = read_desc(idx);
  d.flags = flags;
  write_desc(idx, d);
}

void FakeGuestDriver::push_avail(std::uint16_t head) {
  set_avail_slot(static_cast<std::uint16_t>(avail_shadow_ & (size_ - 1)), head);
  ++avail_shadow_;
  // Orders the descriptor and avail slot writes before the avail->idx store
  // that publishes them (the driver half of the device's acquire fence).
  std::atomic_thread_fence(std::memory_order_release);
  store16(avail_field(offsetof(virtio::VringAvail, idx)), avail_shadow_);
}

void FakeGuestDriver::set_avail_slot(std::uint16_t slot, std::uint16_t head) {
  VIOPOOL_CHECK(slot < size_);
  store16(avail_field(virtio::kAvailRingOffset + sizeof(std::uint16_t) * slot), head);
}

void FakeGuestDriver::set_avail_idx(std::uint16_t idx) {
  avail_shadow_ = idx;
  std::atomic_thread_fence(std::memory_order_release);  // as in push_avail
  store16(avail_field(offsetof(virtio::VringAvail, idx)), idx);
}

std::uint16_t FakeGuestDriver::avail_idx() const {
  return load16(avail_field(offsetof(virtio::VringAvail, idx)));
}

void FakeGuestDriver::set_avail_flags(std::uint16_t flags) {
  store16(avail_field(offsetof(virtio::VringAvail, flags)), flags);
}

void FakeGuestDriver::set_used_event(std::uint16_t idx) {
  store16(avail_field(virtio::used_event_offset(size_)), idx);
}

std::uint16_t FakeGuestDriver::used_flags() const {
  return load16(used_field(offsetof(virtio::VringUsed, flags)));
}

std::uint16_t FakeGuestDriver::used_idx() const {
  return load16(used_field(offsetof(virtio::VringUsed, idx)));
}

std::uint16_t FakeGuestDriver::avail_event() const {
  return load16(used_field(virtio::avail_event_offset(size_)));
}

virtio::VringUsedElem FakeGuestDriver::used_elem(std::uint16_t slot) const {
  VIOPOOL_CHECK(slot < size_);
  virtio::VringUsedElem e;
  std::memcpy(&e, used_ + virtio::kUsedRingOffset + sizeof(e) * slot, sizeof(e));
  return e;
}

std::optional<virtio::VringUsedElem> FakeGuestDriver::pop_used() {
  if (used_idx() == last_used_seen_) {
    return std::nullopt;
  }
  // Orders the used->idx load above before reading the entry it publishes (the
  // driver half of the device's release fence).
  std::atomic_thread_fence(std::memory_order_acquire);
  const virtio::VringUsedElem e =
      used_elem(static_cast<std::uint16_t>(last_used_seen_ & (size_ - 1)));
  ++last_used_seen_;
  if (e.id < size_) {
    for (std::uint16_t id : chain_descs_[e.id]) {
      free_.push_back(id);
    }
    chain_descs_[e.id].clear();
  }
  return e;
}

}  // namespace viopool::testing
