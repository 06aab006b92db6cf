// BlkDriver: virtio-blk config and feature choice on top of DeviceSession (the
// vhost-user set-up in the order QEMU's vhost-user-blk uses), and
// virtio-blk requests built from per-request slots in guest memory (header,
// status byte, DISCARD/WRITE_ZEROES ranges) plus the caller's data buffers.
#include "integration/frontend/blk_driver.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "vhost-backend/base/log.h"
#include "vhost-backend/virtio/virtio_defs.h"

VIOPOOL_LOG_MODULE("frontend.blk")

namespace viopool::frontend {

namespace {

// Per-request slot in guest memory: header at 0, status byte at 16, ranges at
// 64. 64-byte aligned so that two requests never share a cache line.
constexpr std::uint64_t kSlotHeader = 0;
constexpr std::uint64_t kSlotStatus = 16;
constexpr std::uint64_t kSlotRanges = 64;
constexpr std::uint64_t kSlotBytes =
    kSlotRanges + sizeof(BlkDiscardWriteZeroes) * BlkDriver::kMaxRanges;
static_assert(kSlotBytes % 64 == 0);

// A chain is at most this long: header, data, status (our stack arrays use it).
constexpr std::size_t kMaxChain = 256;
constexpr std::uint32_t kMaxDataSegments = kMaxChain - 3;

// What we ack when offered.
constexpr unsigned kWantedBits[] = {
    virtio::kFeatureVersion1,
    virtio::kFeatureRingEventIdx,
    virtio::kFeatureRingIndirectDesc,
    blk::kFeatSizeMax,
    blk::kFeatSegMax,
    blk::kFeatRo,
    blk::kFeatBlkSize,
    blk::kFeatFlush,
    blk::kFeatTopology,
    blk::kFeatMq,
    blk::kFeatDiscard,
    blk::kFeatWriteZeroes,
};

std::uint64_t mix64(std::uint64_t z) noexcept {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ull;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebull;
  z ^= z >> 31;
  return z;
}

std::uint64_t pattern_word(std::uint64_t seed_hash, std::uint64_t word_index) noexcept {
  return mix64(seed_hash ^ (word_index * 0x9e3779b97f4a7c15ull));
}

void note(std::string* why, const std::string& s) {
  if (why != nullptr) {
    *why = s;
  }
}

}  // namespace

const char* blk_feature_name(unsigned bit) noexcept {
  switch (bit) {
    case blk::kFeatSizeMax:
      return "SIZE_MAX";
    case blk::kFeatSegMax:
      return "SEG_MAX";
    case blk::kFeatGeometry:
      return "GEOMETRY";
    case blk::kFeatRo:
      return "RO";
    case blk::kFeatBlkSize:
      return "BLK_SIZE";
    case blk::kFeatFlush:
      return "FLUSH";
    case blk::kFeatTopology:
      return "TOPOLOGY";
    case blk::kFeatConfigWce:
      return "CONFIG_WCE";
    case blk::kFeatMq:
      return "MQ";
    case blk::kFeatDiscard:
      return "DISCARD";
    case blk::kFeatWriteZeroes:
      return "WRITE_ZEROES";
    case 15:
      return "LIFETIME";
    case 16:
      return "SECURE_ERASE";
    default:
      return virtio::feature_name(bit);
  }
}

const char* blk_status_name(std::uint8_t status) noexcept {
  switch (status) {
    case blk::kStatusOk:
      return "OK";
    case blk::kStatusIoErr:
      return "IOERR";
    case blk::kStatusUnsupp:
      return "UNSUPP";
    case kBlkStatusNone:
      return "NONE";
    default:
      return "INVALID";
  }
}

BlkConfig parse_blk_config(std::span<const std::byte> raw, virtio::FeatureSet offered) noexcept {
  // Offsets from virtio 1.2, 5.2.4 (struct virtio_blk_config).
  BlkConfig c;
  c.capacity_sectors = config_le<std::uint64_t>(raw, 0);
  if (offered.has(blk::kFeatSizeMax)) {
    c.size_max = config_le<std::uint32_t>(raw, 8);
  }
  if (offered.has(blk::kFeatSegMax)) {
    c.seg_max = config_le<std::uint32_t>(raw, 12);
  }
  if (offered.has(blk::kFeatBlkSize)) {
    c.blk_size = config_le<std::uint32_t>(raw, 20);
  }
  if (offered.has(blk::kFeatTopology)) {
    c.physical_block_exp = config_le<std::uint8_t>(raw, 24);
    c.alignment_offset = config_le<std::uint8_t>(raw, 25);
    c.min_io_size = config_le<std::uint16_t>(raw, 26);
    c.opt_io_size = config_le<std::uint32_t>(raw, 28);
  }
  c.writeback = config_le<std::uint8_t>(raw, 32);
  if (offered.has(blk::kFeatMq)) {
    c.num_queues = config_le<std::uint16_t>(raw, 34);
  }
  if (offered.has(blk::kFeatDiscard)) {
    c.max_discard_sectors = config_le<std::uint32_t>(raw, 36);
    c.max_discard_seg = config_le<std::uint32_t>(raw, 40);
    c.discard_sector_alignment = config_le<std::uint32_t>(raw, 44);
  }
  if (offered.has(blk::kFeatWriteZeroes)) {
    c.max_write_zeroes_sectors = config_le<std::uint32_t>(raw, 48);
    c.max_write_zeroes_seg = config_le<std::uint32_t>(raw, 52);
    c.write_zeroes_may_unmap = config_le<std::uint8_t>(raw, 56);
  }
  return c;
}

Result<std::unique_ptr<BlkDriver>> BlkDriver::connect(const BlkDriverOptions& options,
                                                      std::string* why) {
  std::unique_ptr<BlkDriver> d(new BlkDriver());
  VIOPOOL_TRY(d->setup(options, why));
  return d;
}

// SlotDriver's session_ stops the rings (if they came up and stop() was not
// called) and frees them before the arena.
BlkDriver::~BlkDriver() = default;

Result<void> BlkDriver::setup(const BlkDriverOptions& o, std::string* why) {
  VIOPOOL_TRY(session_.open(session_options(o), why));

  std::array<std::byte, kBlkConfigBytes> raw{};
  VIOPOOL_TRY(session_.read_config(raw, why));
  config_ = parse_blk_config(raw, session_.offered_features());
  if (config_.num_queues == 0) {
    config_.num_queues = 1;
  }
  const std::uint32_t device_queues = std::min<std::uint32_t>(
      session_.offered_features().has(blk::kFeatMq) ? config_.num_queues : 1,
      session_.backend_queue_count());
  if (o.num_queues == 0 || o.num_queues > device_queues) {
    note(why, "queues: " + std::to_string(o.num_queues) + " requested, the device offers " +
                  std::to_string(device_queues));
    return fail(Errc::kInvalidArgument, "more queues requested than the device offers");
  }

  VIOPOOL_TRY(session_.negotiate(kWantedBits, why));
  VIOPOOL_TRY(session_.setup_memory(why));

  init_queues(o.num_queues, o.queue_size, kSlotBytes, kMaxChain);
  std::vector<std::uint16_t> rings(o.num_queues);
  for (std::uint16_t i = 0; i < o.num_queues; ++i) {
    rings[i] = i;
  }
  SessionQueueOptions qo;
  qo.size = o.queue_size;
  qo.max_indirect = static_cast<std::uint16_t>(max_data_segments() + 3);
  // Each queue's request slots are allocated right after its ring.
  auto alloc_slots = [this](std::size_t i, DriverQueue& vq, std::string* w) {
    return attach_queue(i, vq, w);
  };
  VIOPOOL_TRY(session_.setup_queues(rings, qo, alloc_slots, why));
  VIOPOOL_LOG_DEBUG("connected socket={} features={} ring={} queues={} capacity={}", o.socket_path,
                    virtio::to_string(session_.features()),
                    session_.ring_layout() == RingLayout::kPacked ? "packed" : "split",
                    o.num_queues, config_.capacity_sectors);
  return {};
}

Result<std::vector<std::uint32_t>> BlkDriver::stop() { return session_.stop(); }

std::uint32_t BlkDriver::max_data_segments() const noexcept {
  std::uint32_t n = kMaxDataSegments;
  if (config_.seg_max != 0) {
    n = std::min(n, config_.seg_max);
  }
  // Without indirect tables the whole chain (plus header and status) must
  // fit in the ring.
  if (max_in_flight() > 2) {
    n = std::min<std::uint32_t>(n, max_in_flight() - 2);
  }
  return n;
}

Result<void> BlkDriver::check_data(std::span<const BlkBuffer> data) const noexcept {
  if (data.empty()) {
    return fail(Errc::kInvalidArgument, "request needs a data buffer");
  }
  if (data.size() > max_data_segments()) {
    return fail(Errc::kInvalidArgument, "more data segments than seg_max");
  }
  std::uint64_t total = 0;
  for (const auto& b : data) {
    if (b.len == 0 || session_.arena().host(b.addr, b.len) == nullptr) {
      return fail(Errc::kInvalidArgument, "data buffer empty or outside guest memory");
    }
    if (session_.has_feature(blk::kFeatSizeMax) && config_.size_max != 0 &&
        b.len > config_.size_max) {
      return fail(Errc::kInvalidArgument, "data segment larger than size_max");
    }
    total += b.len;
  }
  if (total % blk::kSectorSize != 0) {
    return fail(Errc::kInvalidArgument, "data length is not a multiple of 512");
  }
  return {};
}

Result<void> BlkDriver::submit_slot(std::uint16_t q, std::uint32_t type, std::uint64_t sector,
                                    std::span<const BlkBuffer> out, std::uint32_t range_bytes,
                                    std::span<const BlkBuffer> in, std::uint64_t cookie,
                                    const BlkRange* ranges, std::size_t nranges) noexcept {
  VIOPOOL_TRY(check_queue(q));
  const std::size_t nseg = 2 + out.size() + (range_bytes ? 1 : 0) + in.size();
  if (nseg > kMaxChain) {
    return fail(Errc::kInvalidArgument, "request has too many buffers");
  }
  auto next = next_slot(q);
  if (!next) {
    return unexpected(next.error());
  }
  const std::uint32_t slot = *next;
  std::byte* base = slot_base(q, slot);
  const BlkOutHdr hdr{type, 0, sector};
  std::memcpy(base + kSlotHeader, &hdr, sizeof(hdr));
  base[kSlotStatus] = std::byte{kBlkStatusNone};
  for (std::size_t i = 0; i < nranges; ++i) {
    const BlkDiscardWriteZeroes r{ranges[i].sector, ranges[i].num_sectors,
                                  ranges[i].unmap ? kBlkWriteZeroesUnmap : 0};
    std::memcpy(base + kSlotRanges + i * sizeof(r), &r, sizeof(r));
  }

  const GuestAddr gpa = slot_gpa(q, slot);
  const std::span<DriverSegment> segs = segment_scratch(q);
  std::size_t n = 0;
  segs[n++] = DriverSegment{GuestAddr{gpa.value + kSlotHeader}, sizeof(BlkOutHdr), Writable::kNo};
  for (const auto& b : out) {
    segs[n++] = DriverSegment{b.addr, b.len, Writable::kNo};
  }
  if (range_bytes != 0) {
    segs[n++] = DriverSegment{GuestAddr{gpa.value + kSlotRanges}, range_bytes, Writable::kNo};
  }
  for (const auto& b : in) {
    segs[n++] = DriverSegment{b.addr, b.len, Writable::kYes};
  }
  segs[n++] = DriverSegment{GuestAddr{gpa.value + kSlotStatus}, 1, Writable::kYes};
  return commit_slot(q, slot, segs.first(n), BlkSlot{cookie});
}

Result<void> BlkDriver::read(std::uint16_t q, std::uint64_t sector, std::span<const BlkBuffer> data,
                             std::uint64_t cookie) noexcept {
  VIOPOOL_TRY(check_data(data));
  return submit_slot(q, blk::kTypeIn, sector, {}, 0, data, cookie, nullptr, 0);
}

Result<void> BlkDriver::write(std::uint16_t q, std::uint64_t sector,
                              std::span<const BlkBuffer> data, std::uint64_t cookie) noexcept {
  VIOPOOL_TRY(check_data(data));
  return submit_slot(q, blk::kTypeOut, sector, data, 0, {}, cookie, nullptr, 0);
}

Result<void> BlkDriver::flush(std::uint16_t q, std::uint64_t cookie) noexcept {
  return submit_slot(q, blk::kTypeFlush, 0, {}, 0, {}, cookie, nullptr, 0);
}

Result<void> BlkDriver::get_id(std::uint16_t q, BlkBuffer id, std::uint64_t cookie) noexcept {
  if (id.len == 0 || session_.arena().host(id.addr, id.len) == nullptr) {
    return fail(Errc::kInvalidArgument, "id buffer empty or outside guest memory");
  }
  return submit_slot(q, blk::kTypeGetId, 0, {}, 0, std::span<const BlkBuffer>(&id, 1), cookie,
                     nullptr, 0);
}

Result<void> BlkDriver::submit_ranges(std::uint16_t q, std::uint32_t type,
                                      std::span<const BlkRange> ranges,
                                      std::uint64_t cookie) noexcept {
  if (ranges.empty() || ranges.size() > kMaxRanges) {
    return fail(Errc::kInvalidArgument, "1 to 16 ranges per request");
  }
  return submit_slot(q, type, 0, {},
                     static_cast<std::uint32_t>(ranges.size() * sizeof(BlkDiscardWriteZeroes)), {},
                     cookie, ranges.data(), ranges.size());
}

Result<void> BlkDriver::discard(std::uint16_t q, std::span<const BlkRange> ranges,
                                std::uint64_t cookie) noexcept {
  return submit_ranges(q, blk::kTypeDiscard, ranges, cookie);
}

Result<void> BlkDriver::write_zeroes(std::uint16_t q, std::span<const BlkRange> ranges,
                                     std::uint64_t cookie) noexcept {
  return submit_ranges(q, blk::kTypeWriteZeroes, ranges, cookie);
}

Result<void> BlkDriver::submit_raw(std::uint16_t q, std::uint32_t type, std::uint64_t sector,
                                   std::span<const BlkBuffer> out, std::span<const BlkBuffer> in,
                                   std::uint64_t cookie) noexcept {
  VIOPOOL_TRY(check_buffers(out));
  VIOPOOL_TRY(check_buffers(in));
  return submit_slot(q, type, sector, out, 0, in, cookie, nullptr, 0);
}

Result<std::size_t> BlkDriver::poll(std::uint16_t q, std::span<BlkCompletion> out) noexcept {
  return reap_slots(q, out,
                    [this, q](std::uint32_t slot, const BlkSlot& s, std::uint32_t used_len,
                              BlkCompletion& c) noexcept {
                      // The status byte was written by the device before it published the
                      // used entry; reap()'s acquire load of used->idx makes it visible here.
                      const auto status =
                          static_cast<std::uint8_t>(slot_base(q, slot)[kSlotStatus]);
                      c = BlkCompletion{s.cookie, status, used_len};
                    });
}

Result<std::size_t> BlkDriver::wait(std::uint16_t q, std::span<BlkCompletion> out,
                                    std::chrono::milliseconds limit) noexcept {
  return wait_then_poll(q, limit, [&]() noexcept { return poll(q, out); });
}

Result<BlkCompletion> BlkDriver::execute(std::uint16_t q, std::uint32_t type, std::uint64_t sector,
                                         std::span<const BlkBuffer> out,
                                         std::span<const BlkBuffer> in,
                                         std::chrono::milliseconds limit) {
  VIOPOOL_TRY(check_idle(q, "execute() needs an idle queue"));
  VIOPOOL_TRY(submit_raw(q, type, sector, out, in, 0));
  return kick_and_poll_one<BlkCompletion>(
      q, limit, [this, q](std::span<BlkCompletion> c) noexcept { return poll(q, c); });
}

void fill_pattern(std::span<std::byte> buf, std::uint64_t device_offset,
                  std::uint64_t seed) noexcept {
  const std::uint64_t h = mix64(seed + 0x632be59bd9b4e019ull);
  const std::uint64_t first = device_offset / 8;
  const std::size_t words = buf.size() / 8;
  for (std::size_t i = 0; i < words; ++i) {
    const std::uint64_t w = pattern_word(h, first + i);
    std::memcpy(buf.data() + i * 8, &w, 8);
  }
}

std::optional<std::size_t> find_pattern_mismatch(std::span<const std::byte> buf,
                                                 std::uint64_t device_offset,
                                                 std::uint64_t seed) noexcept {
  const std::uint64_t h = mix64(seed + 0x632be59bd9b4e019ull);
  const std::uint64_t first = device_offset / 8;
  const std::size_t words = buf.size() / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t got = 0;
    std::memcpy(&got, buf.data() + i * 8, 8);
    if (got != pattern_word(h, first + i)) {
      return i * 8;
    }
  }
  return std::nullopt;
}

bool all_zero(std::span<const std::byte> buf) noexcept {
  return std::all_of(buf.begin(), buf.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace viopool::frontend
