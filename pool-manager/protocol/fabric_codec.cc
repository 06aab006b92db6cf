// Fabric frame and payload encoding (docs/fabric.md).
#include "pool-manager/protocol/fabric_codec.h"

#include <cstring>

namespace viopool::pool {
namespace {

// Big-endian cursor over an output span whose size was checked up front.
class Writer {
 public:
  explicit Writer(std::span<std::byte> out) noexcept : p_(out.data()) {}
  void u8(std::uint8_t v) noexcept { *p_++ = static_cast<std::byte>(v); }
  void u16(std::uint16_t v) noexcept {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) noexcept {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void u64(std::uint64_t v) noexcept {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
  }
  void bytes(const std::uint8_t* b, std::size_t n) noexcept {
    std::memcpy(p_, b, n);
    p_ += n;
  }

 private:
  std::byte* p_;
};

// Big-endian cursor over an input span whose size was checked up front.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) noexcept : p_(in.data()) {}
  std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(*p_++); }
  std::uint16_t u16() noexcept {
    const std::uint16_t hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  std::uint32_t u32() noexcept {
    const std::uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  std::uint64_t u64() noexcept {
    const std::uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  void bytes(std::uint8_t* b, std::size_t n) noexcept {
    std::memcpy(b, p_, n);
    p_ += n;
  }

 private:
  const std::byte* p_;
};

bool known_opcode(std::uint8_t o) noexcept {
  return o >= static_cast<std::uint8_t>(Opcode::kHello) &&
         o <= static_cast<std::uint8_t>(Opcode::kGoodbye);
}

Result<std::size_t> too_small() noexcept {
  return fail(Errc::kInvalidArgument, "fabric: output buffer too small");
}

}  // namespace

const char* to_string(Opcode o) noexcept {
  switch (o) {
    case Opcode::kHello:
      return "HELLO";
    case Opcode::kHelloAck:
      return "HELLO_ACK";
    case Opcode::kConfigRead:
      return "CONFIG_READ";
    case Opcode::kConfigData:
      return "CONFIG_DATA";
    case Opcode::kRequest:
      return "REQUEST";
    case Opcode::kData:
      return "DATA";
    case Opcode::kCompletion:
      return "COMPLETION";
    case Opcode::kAck:
      return "ACK";
    case Opcode::kNak:
      return "NAK";
    case Opcode::kKeepalive:
      return "KEEPALIVE";
    case Opcode::kGoodbye:
      return "GOODBYE";
  }
  return "?";
}

Result<std::size_t> encode_frame(FrameHeader h, std::span<const std::byte> payload,
                                 std::span<std::byte> out) noexcept {
  if (payload.size() > UINT32_MAX - kHeaderBytes) {
    return fail(Errc::kInvalidArgument, "fabric: payload too long");
  }
  h.length = static_cast<std::uint32_t>(payload.size());
  const std::uint64_t end = std::uint64_t{h.frag_offset} + h.length;
  if (end > h.message_length || (((h.flags & kFlagMore) == 0) != (end == h.message_length)) ||
      (h.flags & ~kFlagsKnown) != 0 || !known_opcode(static_cast<std::uint8_t>(h.opcode))) {
    return fail(Errc::kInvalidArgument, "fabric: inconsistent frame header");
  }
  if (out.size() < kHeaderBytes + payload.size()) {
    return too_small();
  }
  Writer w(out);
  w.u16(kMagic);
  w.u8(kVersion);
  w.u8(static_cast<std::uint8_t>(h.opcode));
  w.u16(h.flags);
  w.u16(h.queue_id);
  w.u32(h.function_id);
  w.u32(h.tag);
  w.u32(h.seq);
  w.u32(h.ack);
  w.u16(h.credits);
  w.u16(0);  // reserved
  w.u32(h.length);
  w.u32(h.frag_offset);
  w.u32(h.message_length);
  w.bytes(h.auth.data(), kAuthBytes);
  if (!payload.empty()) {
    std::memcpy(out.data() + kHeaderBytes, payload.data(), payload.size());
  }
  return kHeaderBytes + payload.size();
}

Result<Frame> decode_frame(std::span<const std::byte> in) noexcept {
  if (in.size() < kHeaderBytes) {
    return fail(Errc::kProtocol, "fabric: frame shorter than its header");
  }
  Reader r(in);
  if (r.u16() != kMagic) {
    return fail(Errc::kProtocol, "fabric: bad magic");
  }
  if (r.u8() != kVersion) {
    return fail(Errc::kProtocol, "fabric: unsupported version");
  }
  const std::uint8_t op = r.u8();
  if (!known_opcode(op)) {
    return fail(Errc::kProtocol, "fabric: unknown opcode");
  }
  Frame f;
  auto& h = f.header;
  h.opcode = static_cast<Opcode>(op);
  h.flags = r.u16();
  h.queue_id = r.u16();
  h.function_id = r.u32();
  h.tag = r.u32();
  h.seq = r.u32();
  h.ack = r.u32();
  h.credits = r.u16();
  const std::uint16_t reserved = r.u16();
  h.length = r.u32();
  h.frag_offset = r.u32();
  h.message_length = r.u32();
  r.bytes(h.auth.data(), kAuthBytes);
  if (reserved != 0 || (h.flags & ~kFlagsKnown) != 0) {
    return fail(Errc::kProtocol, "fabric: reserved bits set");
  }
  if (h.length != in.size() - kHeaderBytes) {
    return fail(Errc::kProtocol, "fabric: length does not match the frame");
  }
  const std::uint64_t end = std::uint64_t{h.frag_offset} + h.length;
  if (end > h.message_length) {
    return fail(Errc::kProtocol, "fabric: fragment beyond its message");
  }
  if (((h.flags & kFlagMore) == 0) != (end == h.message_length)) {
    return fail(Errc::kProtocol, "fabric: MORE flag disagrees with the fragment's end");
  }
  f.payload = in.subspan(kHeaderBytes);
  return f;
}

Result<std::size_t> encode_hello(const Hello& h, std::span<std::byte> out) noexcept {
  if (out.size() < kHelloBytes) {
    return too_small();
  }
  Writer w(out);
  w.u64(h.lease_id);
  w.u32(h.node_id);
  w.u16(h.mtu);
  w.u16(h.window);
  w.bytes(h.nonce.data(), h.nonce.size());
  return kHelloBytes;
}

Result<Hello> decode_hello(std::span<const std::byte> in) noexcept {
  if (in.size() != kHelloBytes) {
    return fail(Errc::kProtocol, "fabric: HELLO payload is not 32 bytes");
  }
  Reader r(in);
  Hello h;
  h.lease_id = r.u64();
  h.node_id = r.u32();
  h.mtu = r.u16();
  h.window = r.u16();
  r.bytes(h.nonce.data(), h.nonce.size());
  if (h.mtu < kHeaderBytes + kBlockRequestBytes || h.window == 0) {
    return fail(Errc::kProtocol, "fabric: HELLO with an unusable mtu or window");
  }
  return h;
}

Result<std::size_t> encode_config_range(const ConfigRange& c, std::span<std::byte> out) noexcept {
  if (out.size() < kConfigRangeBytes) {
    return too_small();
  }
  Writer w(out);
  w.u32(c.offset);
  w.u32(c.size);
  return kConfigRangeBytes;
}

Result<ConfigRange> decode_config_range(std::span<const std::byte> in) noexcept {
  if (in.size() < kConfigRangeBytes) {
    return fail(Errc::kProtocol, "fabric: config range shorter than 8 bytes");
  }
  Reader r(in);
  ConfigRange c;
  c.offset = r.u32();
  c.size = r.u32();
  if (c.size > kMaxConfigBytes || c.offset > kMaxConfigBytes - c.size) {
    return fail(Errc::kProtocol, "fabric: config range beyond 4096 bytes");
  }
  return c;
}

Result<std::size_t> encode_block_request(const BlockRequest& q, std::span<std::byte> out) noexcept {
  if (out.size() < kBlockRequestBytes) {
    return too_small();
  }
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(q.op));
  w.u8(q.flags);
  w.u16(0);
  w.u32(q.length);
  w.u64(q.offset);
  w.u64(q.deadline_us);
  return kBlockRequestBytes;
}

Result<BlockRequest> decode_block_request(std::span<const std::byte> in) noexcept {
  if (in.size() < kBlockRequestBytes) {
    return fail(Errc::kProtocol, "fabric: request header shorter than 24 bytes");
  }
  Reader r(in);
  BlockRequest q;
  const std::uint8_t op = r.u8();
  q.flags = r.u8();
  const std::uint16_t reserved = r.u16();
  q.length = r.u32();
  q.offset = r.u64();
  q.deadline_us = r.u64();
  if (op > static_cast<std::uint8_t>(BlockOp::kWriteZeroes)) {
    return fail(Errc::kProtocol, "fabric: unknown block op");
  }
  q.op = static_cast<BlockOp>(op);
  if (reserved != 0 || (q.flags & ~kBlockFlagUnmap) != 0 ||
      (q.flags != 0 && q.op != BlockOp::kWriteZeroes)) {
    return fail(Errc::kProtocol, "fabric: reserved request bits set");
  }
  if (q.offset > UINT64_MAX - q.length) {
    return fail(Errc::kProtocol, "fabric: request range wraps");
  }
  if (q.op == BlockOp::kWrite && in.size() - kBlockRequestBytes != q.length) {
    return fail(Errc::kProtocol, "fabric: write data length differs from the request");
  }
  if (q.op != BlockOp::kWrite && in.size() != kBlockRequestBytes) {
    return fail(Errc::kProtocol, "fabric: data after a request that carries none");
  }
  return q;
}

Result<std::size_t> encode_completion(const Completion& c, std::span<std::byte> out) noexcept {
  if (out.size() < kCompletionBytes) {
    return too_small();
  }
  Writer w(out);
  w.u32(static_cast<std::uint32_t>(c.status));
  w.u32(c.bytes);
  return kCompletionBytes;
}

Result<Completion> decode_completion(std::span<const std::byte> in) noexcept {
  if (in.size() < kCompletionBytes) {
    return fail(Errc::kProtocol, "fabric: COMPLETION payload shorter than 8 bytes");
  }
  Reader r(in);
  Completion c;
  c.status = static_cast<std::int32_t>(r.u32());
  c.bytes = r.u32();
  if (c.status > 0 || c.status < -4095) {
    return fail(Errc::kProtocol, "fabric: completion status is neither 0 nor an errno");
  }
  return c;
}

Result<std::size_t> encode_volume_info(const VolumeInfo& v, std::span<std::byte> out) noexcept {
  if (out.size() < kVolumeInfoBytes) {
    return too_small();
  }
  Writer w(out);
  w.u32(v.function_class);
  w.u32(v.block_size);
  w.u64(v.capacity_bytes);
  w.u32(v.flags);
  w.u16(v.queues);
  w.u16(v.queue_depth);
  w.u32(v.max_io_bytes);
  w.u8(v.physical_block_exp);
  w.u8(0);
  w.u16(0);
  return kVolumeInfoBytes;
}

Result<VolumeInfo> decode_volume_info(std::span<const std::byte> in) noexcept {
  if (in.size() < kVolumeInfoBytes) {
    return fail(Errc::kProtocol, "fabric: volume config shorter than 32 bytes");
  }
  Reader r(in);
  VolumeInfo v;
  v.function_class = r.u32();
  v.block_size = r.u32();
  v.capacity_bytes = r.u64();
  v.flags = r.u32();
  v.queues = r.u16();
  v.queue_depth = r.u16();
  v.max_io_bytes = r.u32();
  v.physical_block_exp = r.u8();
  const std::uint32_t reserved = (std::uint32_t{r.u8()} << 16) | r.u16();
  if (v.function_class != kFunctionClassVolume) {
    return fail(Errc::kProtocol, "fabric: config space is not a volume's");
  }
  if (v.block_size < 512 || v.block_size > 65536 || (v.block_size & (v.block_size - 1)) != 0) {
    return fail(Errc::kProtocol, "fabric: volume block size not a power of two in [512, 65536]");
  }
  if (v.capacity_bytes % v.block_size != 0) {
    return fail(Errc::kProtocol, "fabric: volume capacity not a multiple of its block size");
  }
  if ((v.flags & ~kVolumeFlagsKnown) != 0 || reserved != 0) {
    return fail(Errc::kProtocol, "fabric: unknown volume flags or reserved bytes set");
  }
  if (v.queues == 0 || v.queue_depth == 0) {
    return fail(Errc::kProtocol, "fabric: volume without queues");
  }
  if (v.max_io_bytes < v.block_size || v.max_io_bytes % v.block_size != 0 ||
      v.physical_block_exp > 16) {
    return fail(Errc::kProtocol, "fabric: volume I/O limits out of range");
  }
  return v;
}

Result<std::size_t> encode_sack(const Sack& s, std::span<std::byte> out) noexcept {
  if (s.count > kMaxSackBlocks) {
    return fail(Errc::kInvalidArgument, "fabric: more than 8 SACK blocks");
  }
  if (out.size() < s.count * 8) {
    return too_small();
  }
  Writer w(out);
  for (std::size_t i = 0; i < s.count; ++i) {
    w.u32(s.blocks[i].start);
    w.u32(s.blocks[i].end);
  }
  return s.count * 8;
}

Result<Sack> decode_sack(std::span<const std::byte> in) noexcept {
  if (in.size() % 8 != 0 || in.size() / 8 > kMaxSackBlocks) {
    return fail(Errc::kProtocol, "fabric: SACK payload is not 0-8 blocks of 8 bytes");
  }
  Reader r(in);
  Sack s;
  s.count = in.size() / 8;
  for (std::size_t i = 0; i < s.count; ++i) {
    s.blocks[i].start = r.u32();
    s.blocks[i].end = r.u32();
    // Sequence numbers wrap: a block is [start, end) in serial arithmetic,
    // non-empty and shorter than half the space.
    const std::uint32_t span = s.blocks[i].end - s.blocks[i].start;
    if (span == 0 || span > (1u << 31)) {
      return fail(Errc::kProtocol, "fabric: empty or inverted SACK block");
    }
  }
  return s;
}

Result<std::size_t> encode_nak(NakReason n, std::span<std::byte> out) noexcept {
  if (out.size() < 4) {
    return too_small();
  }
  Writer w(out);
  w.u32(static_cast<std::uint32_t>(n));
  return 4;
}

Result<NakReason> decode_nak(std::span<const std::byte> in) noexcept {
  if (in.size() != 4) {
    return fail(Errc::kProtocol, "fabric: NAK payload is not 4 bytes");
  }
  Reader r(in);
  const std::uint32_t v = r.u32();
  if (v < 1 || v > 3) {
    return fail(Errc::kProtocol, "fabric: unknown NAK reason");
  }
  return static_cast<NakReason>(v);
}

}  // namespace viopool::pool
