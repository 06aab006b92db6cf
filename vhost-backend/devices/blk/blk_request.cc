// virtio-blk request parsing and completion.
#include "vhost-backend/devices/blk/blk_request.h"

#include <algorithm>
#include <cstring>

#include "vhost-backend/virtio/chain_stream.h"

namespace viopool::blk {
namespace {

using Stream = virtio::ChainStream;

void reject(BlkRequest& req, BlkReject why, std::uint8_t status) noexcept {
  req.needs_io = false;
  req.reject = why;
  req.immediate_status = status;
}

struct Header {
  std::uint32_t type;
  std::uint32_t reserved;
  std::uint64_t sector;
};
static_assert(sizeof(Header) == kHeaderBytes);

struct Segment {
  std::uint64_t sector;
  std::uint32_t num_sectors;
  std::uint32_t flags;  // bit 0: unmap (write-zeroes only)
};
static_assert(sizeof(Segment) == kSegmentBytes);
constexpr std::uint32_t kSegmentFlagUnmap = 1;

// True if [sector, sector + count) lies within the capacity, overflow-safe.
bool in_range(std::uint64_t sector, std::uint64_t count, std::uint64_t capacity) noexcept {
  return sector <= capacity && count <= capacity - sector;
}

}  // namespace

const char* to_string(BlkReject r) noexcept {
  switch (r) {
    case BlkReject::kNone: return "none";
    case BlkReject::kNoStatus: return "no_status";
    case BlkReject::kBadChain: return "bad_chain";
    case BlkReject::kBadHeader: return "bad_header";
    case BlkReject::kBadAddress: return "bad_address";
    case BlkReject::kOutOfRange: return "out_of_range";
    case BlkReject::kBadLength: return "bad_length";
    case BlkReject::kTooManySegs: return "too_many_segments";
    case BlkReject::kReadOnly: return "read_only";
    case BlkReject::kUnsupported: return "unsupported";
  }
  return "?";
}

void parse_request(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                   const BlkLimits& lim, std::string_view serial, BlkRequest& req) noexcept {
  req.head = chain.id();
  req.desc_count = chain.desc_count();
  req.type = 0;
  req.sector = 0;
  req.status = nullptr;
  req.needs_io = false;
  req.immediate_status = kStatusOk;
  req.reject = BlkReject::kNone;
  req.data_len = 0;
  req.io = BlkIo{};
  req.io.cookie = &req;

  // The status byte is the last byte of the device-writable part. Without it
  // nothing can be reported: the chain completes with used length 0.
  auto writable = chain.writable();
  while (!writable.empty() && writable.back().len == 0) {
    writable = writable.first(writable.size() - 1);
  }
  if (writable.empty()) {
    reject(req, BlkReject::kNoStatus, kStatusIoErr);
    return;
  }
  const auto& last = writable.back();
  // last.len >= 1 (zero-length buffers were dropped above); the guest chose
  // the address, translate() checks it.
  auto st = mem.translate(GuestAddr(last.addr.value + last.len - 1), 1);
  if (!st) {
    reject(req, BlkReject::kNoStatus, kStatusIoErr);
    return;
  }
  req.status = st->data();
  if (!chain.ok()) {
    reject(req, BlkReject::kBadChain, kStatusIoErr);
    return;
  }

  Stream in(chain.readable(), mem);
  Header h{};
  if (!in.copy_out(&h, sizeof(h))) {
    reject(req, BlkReject::kBadHeader, kStatusIoErr);
    return;
  }
  // Little-endian on the wire; viopool runs on little-endian hosts only.
  req.type = h.type;
  req.sector = h.sector;

  // Device-writable data: everything but the status byte.
  std::uint64_t wdata = 0;
  for (const auto& b : writable) {
    wdata += b.len;
  }
  wdata -= 1;

  bool too_many = false;
  bool too_big = false;
  std::uint32_t cnt = 0;
  switch (h.type) {
    case kTypeIn:
    case kTypeOut: {
      const bool is_in = h.type == kTypeIn;
      const std::uint64_t len = is_in ? wdata : in.remaining();
      if (len % kSectorSize != 0 || len > UINT32_MAX) {
        reject(req, BlkReject::kBadLength, kStatusIoErr);
        return;
      }
      if (!in_range(h.sector, len / kSectorSize, lim.capacity_sectors)) {
        reject(req, BlkReject::kOutOfRange, kStatusIoErr);
        return;
      }
      if (!is_in && lim.read_only) {
        reject(req, BlkReject::kReadOnly, kStatusIoErr);
        return;
      }
      if (len == 0) {
        return;  // nothing to move: completes OK at once
      }
      bool ok;
      if (is_in) {
        Stream out(writable, mem);
        ok = out.take_iov(len, req.iov.data(), std::min(lim.seg_max, kMaxDataSegments), cnt,
                          lim.size_max, too_many, too_big);
      } else {
        ok = in.take_iov(len, req.iov.data(), std::min(lim.seg_max, kMaxDataSegments), cnt,
                         lim.size_max, too_many, too_big);
      }
      if (!ok) {
        reject(req,
               too_many  ? BlkReject::kTooManySegs
               : too_big ? BlkReject::kBadLength
                         : BlkReject::kBadAddress,
               kStatusIoErr);
        return;
      }
      req.data_len = static_cast<std::uint32_t>(len);
      req.needs_io = true;
      req.io.op = is_in ? BlkOp::kRead : BlkOp::kWrite;
      req.io.offset = h.sector * kSectorSize;
      req.io.length = len;
      req.io.iov = req.iov.data();
      req.io.iovcnt = cnt;
      return;
    }
    case kTypeFlush:
      req.needs_io = true;
      req.io.op = BlkOp::kFlush;
      return;
    case kTypeGetId: {
      // Up to 20 bytes, NUL-padded; no NUL when the serial fills all 20.
      std::array<char, kIdBytes> id{};
      std::memcpy(id.data(), serial.data(), std::min<std::size_t>(serial.size(), kIdBytes));
      const std::uint64_t n = std::min<std::uint64_t>(wdata, kIdBytes);
      std::uint64_t done = 0;
      for (const auto& b : writable) {
        if (done == n) {
          break;
        }
        const std::uint64_t take = std::min<std::uint64_t>(b.len, n - done);
        auto dst = mem.translate(b.addr, take);
        if (!dst) {
          reject(req, BlkReject::kBadAddress, kStatusIoErr);
          return;
        }
        std::memcpy(dst->data(), id.data() + done, take);
        done += take;
      }
      req.data_len = static_cast<std::uint32_t>(n);
      return;
    }
    case kTypeDiscard:
    case kTypeWriteZeroes: {
      const bool discard = h.type == kTypeDiscard;
      if (discard ? !lim.discard : !lim.write_zeroes) {
        reject(req, BlkReject::kUnsupported, kStatusUnsupp);
        return;
      }
      if (lim.read_only) {
        reject(req, BlkReject::kReadOnly, kStatusIoErr);
        return;
      }
      // We advertise max_*_seg = 1: exactly one 16-byte range.
      if (in.remaining() != kSegmentBytes) {
        reject(req, BlkReject::kTooManySegs, kStatusIoErr);
        return;
      }
      Segment seg{};
      if (!in.copy_out(&seg, sizeof(seg))) {
        reject(req, BlkReject::kBadAddress, kStatusIoErr);
        return;
      }
      const std::uint32_t allowed = discard ? 0 : kSegmentFlagUnmap;
      if ((seg.flags & ~allowed) != 0) {
        reject(req, BlkReject::kUnsupported, kStatusUnsupp);
        return;
      }
      const std::uint32_t max = discard ? lim.max_discard_sectors : lim.max_write_zeroes_sectors;
      if (!in_range(seg.sector, seg.num_sectors, lim.capacity_sectors) ||
          (max != 0 && seg.num_sectors > max)) {
        reject(req, BlkReject::kOutOfRange, kStatusIoErr);
        return;
      }
      if (seg.num_sectors == 0) {
        return;
      }
      req.needs_io = true;
      req.io.op = discard ? BlkOp::kDiscard : BlkOp::kWriteZeroes;
      req.io.unmap = (seg.flags & kSegmentFlagUnmap) != 0;
      req.io.offset = seg.sector * kSectorSize;
      req.io.length = static_cast<std::uint64_t>(seg.num_sectors) * kSectorSize;
      return;
    }
    default:
      reject(req, BlkReject::kUnsupported, kStatusUnsupp);
      return;
  }
}

std::uint32_t complete_request(BlkRequest& req, std::uint8_t status) noexcept {
  if (req.status == nullptr) {
    return 0;
  }
  // A single byte store; the used-ring release fence in SplitQueue::push_used
  // orders it (and the data) before the guest sees the completion.
  *req.status = static_cast<std::byte>(status);
  const bool reads_data = req.type == kTypeIn || req.type == kTypeGetId;
  return (status == kStatusOk && reads_data ? req.data_len : 0) + 1;
}

}  // namespace viopool::blk
