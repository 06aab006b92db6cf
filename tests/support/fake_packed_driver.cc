// Driver side of a packed ring for tests: arena allocation, ring and event
// suppression layout, chain building with buffer-id management, and raw pokes.
// It follows the driver's half of the memory-ordering protocol (virtio 1.2
// 2.8.21): a chain's descriptors before its head flags, used flags before id/len.
#include "tests/support/fake_packed_driver.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "vhost-backend/base/check.h"

namespace viopool::testing {
namespace {

using virtio::PackedDesc;

constexpr std::uint64_t kRingAreaAlign = 64;

std::uint16_t load16(std::uint16_t* p) {
  return std::atomic_ref<std::uint16_t>(*p).load(std::memory_order_relaxed);
}
void store16(std::uint16_t* p, std::uint16_t v) {
  std::atomic_ref<std::uint16_t>(*p).store(v, std::memory_order_relaxed);
}

std::uint16_t used_bits(bool wrap) {
  return wrap ? static_cast<std::uint16_t>(virtio::kPackedDescAvail | virtio::kPackedDescUsed) : 0;
}

}  // namespace

FakePackedDriver::FakePackedDriver(const FakePackedDriverOptions& options)
    : size_(options.queue_size),
      arena_(options.base, options.region_bytes, options.layout),
      start_idx_(options.start_idx),
      start_wrap_(options.start_wrap),
      avail_idx_(options.start_idx),
      avail_wrap_(options.start_wrap),
      used_idx_(options.start_idx),
      used_wrap_(options.start_wrap),
      slots_of_id_(options.queue_size, 0) {
  VIOPOOL_CHECK(size_ >= 1 && size_ <= virtio::kMaxQueueSize);
  VIOPOOL_CHECK(start_idx_ < size_);
  const auto area = [this](std::uint64_t len) { return host(alloc(len, kRingAreaAlign), len); };
  desc_ = area(virtio::packed_desc_ring_bytes(size_));
  driver_event_ = area(sizeof(virtio::PackedEventSuppress));
  device_event_ = area(sizeof(virtio::PackedEventSuppress));
  // As after a long run: slots before start_idx were used in this lap, the
  // others in the previous lap (opposite wrap counter). A fresh ring (index 0,
  // wrap 1) is all zeroes.
  for (std::uint32_t i = 0; i < size_; ++i) {
    store16(flags_ptr(static_cast<std::uint16_t>(i)),
            used_bits(i < start_idx_ ? start_wrap_ : !start_wrap_));
  }
  // Hand out low ids first so tests read naturally.
  for (std::uint32_t i = size_; i-- > 0;) {
    free_ids_.push_back(static_cast<std::uint16_t>(i));
  }
}

virtio::PackedQueueConfig FakePackedDriver::queue_config(virtio::EventIdx event_idx) const {
  virtio::PackedQueueConfig c;
  c.desc = desc_;
  c.driver_event = driver_event_;
  c.device_event = device_event_;
  c.size = size_;
  c.memory = &arena_.memory();
  c.event_idx = event_idx;
  c.last_avail_idx = start_idx_;
  c.avail_wrap_counter = start_wrap_;
  c.last_used_idx = start_idx_;
  c.used_wrap_counter = start_wrap_;
  c.log_id = "dev=fake q=0";
  return c;
}

GuestAddr FakePackedDriver::make_indirect_table(std::span<const PackedDesc> descs) {
  const GuestAddr table = alloc(descs.size_bytes(), virtio::kPackedDescAlign);
  write(table, std::as_bytes(descs));
  return table;
}

std::uint16_t FakePackedDriver::avail_bits(bool wrap) noexcept {
  return wrap ? virtio::kPackedDescAvail : virtio::kPackedDescUsed;
}

std::uint16_t* FakePackedDriver::flags_ptr(std::uint16_t slot) const {
  VIOPOOL_CHECK(slot < size_);
  return reinterpret_cast<std::uint16_t*>(desc_ + std::size_t{slot} * sizeof(PackedDesc) +
                                          offsetof(PackedDesc, flags));
}

std::uint32_t FakePackedDriver::linear(std::uint32_t idx, bool wrap) const noexcept {
  return (idx + (wrap ? size_ : 0)) % (2 * size_);
}

std::uint16_t FakePackedDriver::take_id() {
  VIOPOOL_CHECK(!free_ids_.empty());
  const std::uint16_t id = free_ids_.back();
  free_ids_.pop_back();
  return id;
}

std::uint16_t FakePackedDriver::add_chain(std::span<const FakeBuf> readable,
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

std::uint16_t FakePackedDriver::add_segments(std::span<const FakeSegment> segments,
                                             Indirect indirect) {
  VIOPOOL_CHECK(!segments.empty());
  const std::uint16_t id = take_id();
  std::vector<PackedDesc> descs;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    const auto write_flag =
        segments[i].writable == Writable::kYes ? virtio::kDescWrite : std::uint16_t{0};
    descs.push_back(PackedDesc{segments[i].addr.value, segments[i].len, kUnusedId,
                               static_cast<std::uint16_t>(write_flag)});
    if (!last && indirect == Indirect::kNo) {
      descs.back().flags |= virtio::kDescNext;
    }
  }
  if (indirect == Indirect::kYes) {
    // 2.8.7: table entries carry only WRITE; id is ignored there.
    for (PackedDesc& d : descs) {
      d.id = 0;
    }
    const GuestAddr table = make_indirect_table(descs);
    const PackedDesc ring{table.value,
                          static_cast<std::uint32_t>(descs.size() * sizeof(PackedDesc)), id,
                          virtio::kDescIndirect};
    add_raw({&ring, 1});
    return id;
  }
  descs.back().id = id;
  add_raw(descs);
  return id;
}

std::uint16_t FakePackedDriver::add_raw(std::span<const PackedDesc> descs) {
  VIOPOOL_CHECK(!descs.empty() && descs.size() <= free_slots());
  kick_old_ = linear(avail_idx_, avail_wrap_);
  const std::uint16_t head = avail_idx_;
  std::uint16_t head_flags = 0;
  for (std::size_t i = 0; i < descs.size(); ++i) {
    PackedDesc d = descs[i];
    d.flags = static_cast<std::uint16_t>(
        (d.flags & ~(virtio::kPackedDescAvail | virtio::kPackedDescUsed)) |
        avail_bits(avail_wrap_));
    if (i == 0) {
      head_flags = d.flags;
      d.flags = load16(flags_ptr(avail_idx_));  // left as is until published
    }
    write_desc(avail_idx_, d);
    if (++avail_idx_ == size_) {
      avail_idx_ = 0;
      avail_wrap_ = !avail_wrap_;
    }
  }
  const std::uint16_t id = descs.back().id;
  if (id < size_) {
    std::erase(free_ids_, id);
    slots_of_id_[id] = static_cast<std::uint16_t>(descs.size());
  }
  in_use_slots_ += static_cast<std::uint32_t>(descs.size());
  // Orders every descriptor written above before the head flags store that
  // makes the chain available (the driver half of the device's acquire fence).
  std::atomic_thread_fence(std::memory_order_release);
  store16(flags_ptr(head), head_flags);
  kick_new_ = linear(avail_idx_, avail_wrap_);
  return head;
}

std::optional<FakePackedUsed> FakePackedDriver::pop_used() {
  const std::uint16_t flags = load16(flags_ptr(used_idx_));
  const bool avail = (flags & virtio::kPackedDescAvail) != 0;
  const bool used = (flags & virtio::kPackedDescUsed) != 0;
  if (avail != used || used != used_wrap_) {
    return std::nullopt;
  }
  // Orders the flags load above before reading id and len (the driver half of
  // the device's release fence).
  std::atomic_thread_fence(std::memory_order_acquire);
  const PackedDesc d = read_desc(used_idx_);
  std::uint32_t slots = 1;
  if (d.id < size_ && slots_of_id_[d.id] != 0) {
    slots = slots_of_id_[d.id];
    slots_of_id_[d.id] = 0;
    free_ids_.push_back(d.id);
  }
  in_use_slots_ -= std::min(slots, in_use_slots_);
  std::uint32_t next = used_idx_ + slots;
  if (next >= size_) {
    next -= size_;
    used_wrap_ = !used_wrap_;
  }
  used_idx_ = static_cast<std::uint16_t>(next);
  return FakePackedUsed{d.id, d.len};
}

bool FakePackedDriver::last_add_needs_kick() const {
  // The device event structure in one read, as Linux does.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint32_t word = event_word(device_event_);
  const auto off_wrap = static_cast<std::uint16_t>(word & 0xffff);
  const auto flags = static_cast<std::uint16_t>(word >> 16);
  if (flags == virtio::kPackedEventDisable) {
    return false;
  }
  if (flags != virtio::kPackedEventDesc) {
    return true;
  }
  const std::uint32_t two = 2 * size_;
  const std::uint32_t event = linear(off_wrap & 0x7fff, (off_wrap & 0x8000) != 0);
  return (event + two - kick_old_) % two < (kick_new_ + two - kick_old_) % two;
}

PackedDesc FakePackedDriver::read_desc(std::uint16_t slot) const {
  VIOPOOL_CHECK(slot < size_);
  PackedDesc d;
  std::memcpy(&d, desc_ + std::size_t{slot} * sizeof(PackedDesc), sizeof(d));
  return d;
}

void FakePackedDriver::write_desc(std::uint16_t slot, const PackedDesc& desc) {
  VIOPOOL_CHECK(slot < size_);
  std::memcpy(desc_ + std::size_t{slot} * sizeof(PackedDesc), &desc, sizeof(desc));
}

void FakePackedDriver::set_desc_flags(std::uint16_t slot, std::uint16_t flags) {
  store16(flags_ptr(slot), flags);
}

std::uint32_t FakePackedDriver::event_word(const std::byte* area) const {
  return std::atomic_ref<std::uint32_t>(
             *reinterpret_cast<std::uint32_t*>(const_cast<std::byte*>(area)))
      .load(std::memory_order_relaxed);
}

void FakePackedDriver::set_driver_event(std::uint16_t flags, std::uint16_t off_wrap) {
  const std::uint32_t v = std::uint32_t{off_wrap} | (std::uint32_t{flags} << 16);
  std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(driver_event_))
      .store(v, std::memory_order_relaxed);
}

std::uint16_t FakePackedDriver::device_event_flags() const {
  return static_cast<std::uint16_t>(event_word(device_event_) >> 16);
}

std::uint16_t FakePackedDriver::device_event_off_wrap() const {
  return static_cast<std::uint16_t>(event_word(device_event_) & 0xffff);
}

}  // namespace viopool::testing
