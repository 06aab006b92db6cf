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
         o <= static_cast<std::uint8_t>(Opcode::kPackets);
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
    case Opcode::kPackets:
      return "PACKETS";
  }
  return "?";
}

Result<std::size_t> encode_frame_in_place(FrameHeader h, std::size_t payload_len,
                                          std::span<std::byte> out) noexcept {
  if (payload_len > UINT32_MAX - kHeaderBytes) {
    return fail(Errc::kInvalidArgument, "fabric: payload too long");
  }
  h.length = static_cast<std::uint32_t>(payload_len);
  const std::uint64_t end = std::uint64_t{h.frag_offset} + h.length;
  if (end > h.message_length || (((h.flags & kFlagMore) == 0) != (end == h.message_length)) ||
      (h.flags & ~kFlagsKnown) != 0 || !known_opcode(static_cast<std::uint8_t>(h.opcode))) {
    return fail(Errc::kInvalidArgument, "fabric: inconsistent frame header");
  }
  if (out.size() < kHeaderBytes + payload_len) {
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
  return kHeaderBytes + payload_len;
}

Result<std::size_t> encode_frame(FrameHeader h, std::span<const std::byte> payload,
                                 std::span<std::byte> out) noexcept {
  auto n = encode_frame_in_place(h, payload.size(), out);
  if (n && !payload.empty()) {
    std::memcpy(out.data() + kHeaderBytes, payload.data(), payload.size());
  }
  return n;
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
  // 0, a negative errno, or a function class's own status (crypto slots:
  // the virtio-crypto status of an op, 1-255).
  if (c.status > 255 || c.status < -4095) {
    return fail(Errc::kProtocol, "fabric: completion status out of range");
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

Result<std::size_t> encode_vnic_info(const VnicInfo& v, std::span<std::byte> out) noexcept {
  if (out.size() < kVnicInfoBytes) {
    return too_small();
  }
  Writer w(out);
  w.u32(v.function_class);
  w.u16(v.queues);
  w.u16(v.mtu);
  w.bytes(v.mac.data(), v.mac.size());
  w.u16(v.vlan);
  w.u32(v.flags);
  w.u32(v.rate_mbps);
  w.u32(v.peak_mbps);
  w.u32(0);
  return kVnicInfoBytes;
}

Result<VnicInfo> decode_vnic_info(std::span<const std::byte> in) noexcept {
  if (in.size() < kVnicInfoBytes) {
    return fail(Errc::kProtocol, "fabric: vNIC config shorter than 32 bytes");
  }
  Reader r(in);
  VnicInfo v;
  v.function_class = r.u32();
  v.queues = r.u16();
  v.mtu = r.u16();
  r.bytes(v.mac.data(), v.mac.size());
  v.vlan = r.u16();
  v.flags = r.u32();
  v.rate_mbps = r.u32();
  v.peak_mbps = r.u32();
  const std::uint32_t reserved = r.u32();
  if (v.function_class != kFunctionClassVnic) {
    return fail(Errc::kProtocol, "fabric: config space is not a vNIC's");
  }
  if (v.queues == 0 || v.mtu < 68 || v.mtu > kMaxPacketBytes - 18) {
    return fail(Errc::kProtocol, "fabric: vNIC without queues or with an MTU outside [68, 9198]");
  }
  if (v.vlan > 4094 || (v.flags & ~kVnicFlagsKnown) != 0 || reserved != 0) {
    return fail(Errc::kProtocol, "fabric: vNIC VLAN above 4094, unknown flags or reserved bytes");
  }
  if ((v.mac[0] & 1) != 0) {
    return fail(Errc::kProtocol, "fabric: vNIC MAC is a multicast address");
  }
  return v;
}

std::byte* PacketsWriter::add(std::uint32_t len) noexcept {
  std::byte* p = out_.data() + used_;
  Writer(std::span(p, kPacketRecordHead)).u16(static_cast<std::uint16_t>(len));
  used_ += kPacketRecordHead + len;
  ++count_;
  return p + kPacketRecordHead;
}

std::size_t PacketsWriter::finish() noexcept {
  Writer w(out_);
  w.u16(count_);
  w.u16(0);
  return used_;
}

Result<std::size_t> decode_packets(std::span<const std::byte> in,
                                   std::span<std::span<const std::byte>> out) noexcept {
  if (in.size() < kPacketsHeadBytes) {
    return fail(Errc::kProtocol, "fabric: PACKETS shorter than its head");
  }
  Reader r(in);
  const std::uint16_t count = r.u16();
  if (r.u16() != 0) {
    return fail(Errc::kProtocol, "fabric: PACKETS reserved bytes set");
  }
  if (count > kMaxPacketsPerFrame || count > out.size()) {
    return fail(Errc::kProtocol, "fabric: too many packets in one PACKETS frame");
  }
  std::size_t at = kPacketsHeadBytes;
  for (std::uint16_t i = 0; i < count; ++i) {
    if (in.size() - at < kPacketRecordHead) {
      return fail(Errc::kProtocol, "fabric: PACKETS record head past the payload");
    }
    const std::uint32_t len = Reader(in.subspan(at)).u16();
    at += kPacketRecordHead;
    if (len < kMinPacketBytes || len > kMaxPacketBytes || in.size() - at < len) {
      return fail(Errc::kProtocol, "fabric: PACKETS record too short, too long or past the payload");
    }
    out[i] = in.subspan(at, len);
    at += len;
  }
  if (at != in.size()) {
    return fail(Errc::kProtocol, "fabric: bytes after the last PACKETS record");
  }
  return count;
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

namespace viopool::pool {

namespace {

void write_range(Writer& w, const crypto::SizeRange& r) noexcept {
  w.u16(r.min);
  w.u16(r.max);
  w.u16(r.inc);
}

crypto::SizeRange read_range(Reader& r) noexcept {
  crypto::SizeRange s;
  s.min = r.u16();
  s.max = r.u16();
  s.inc = r.u16();
  return s;
}

bool valid_range(const crypto::SizeRange& r) noexcept { return r.min <= r.max; }

Error bad_crypto(const char* what) noexcept { return Error{Errc::kProtocol, 0, what}; }

}  // namespace

Result<std::size_t> encode_crypto_slot_info(const CryptoSlotInfo& c,
                                            std::span<std::byte> out) noexcept {
  std::size_t n = 0;
  const std::array<const std::array<std::optional<crypto::AlgoCaps>, crypto::CryptoCapabilities::kAlgos>*, 4>
      fams = {&c.caps.cipher, &c.caps.hash, &c.caps.mac, &c.caps.aead};
  for (const auto* f : fams) {
    for (const auto& a : *f) {
      n += a.has_value() ? 1 : 0;
    }
  }
  const std::size_t total = kCryptoSlotHeadBytes + n * kCryptoCapBytes;
  if (out.size() < total) {
    return fail(Errc::kInvalidArgument, "fabric: buffer too small for the crypto slot");
  }
  Writer w(out);
  w.u32(c.function_class);
  w.u16(c.queues);
  w.u16(c.queue_depth);
  w.u32(c.max_sessions);
  w.u32(c.max_op_bytes);
  w.u16(static_cast<std::uint16_t>(n));
  w.u16(c.caps.max_queues);
  std::memset(out.data() + 20, 0, kCryptoSlotHeadBytes - 20);  // reserved, then the name
  Writer e(out.subspan(kCryptoSlotHeadBytes));
  for (std::uint8_t fam = 0; fam < 4; ++fam) {
    for (std::size_t algo = 0; algo < fams[fam]->size(); ++algo) {
      const auto& a = (*fams[fam])[algo];
      if (!a) {
        continue;
      }
      e.u8(fam);
      e.u8(static_cast<std::uint8_t>(algo));
      write_range(e, a->key);
      write_range(e, a->digest);
      write_range(e, a->iv);
      write_range(e, a->aad);
      e.u16(a->block_size);
    }
  }
  return total;
}

Result<CryptoSlotInfo> decode_crypto_slot_info(std::span<const std::byte> in) noexcept {
  if (in.size() < kCryptoSlotHeadBytes) {
    return unexpected(bad_crypto("fabric: crypto slot config shorter than 96 bytes"));
  }
  Reader r(in);
  CryptoSlotInfo c;
  c.function_class = r.u32();
  c.queues = r.u16();
  c.queue_depth = r.u16();
  c.max_sessions = r.u32();
  c.max_op_bytes = r.u32();
  const std::uint16_t n = r.u16();
  c.caps.max_queues = r.u16();
  if (c.function_class != kFunctionClassCrypto) {
    return unexpected(bad_crypto("fabric: config space is not a crypto slot's"));
  }
  if (c.queues == 0 || c.queue_depth == 0 || c.max_sessions == 0 || c.max_op_bytes == 0) {
    return unexpected(bad_crypto("fabric: crypto slot without queues, sessions or op size"));
  }
  for (std::size_t i = 20; i < 32; ++i) {
    if (in[i] != std::byte{0}) {
      return unexpected(bad_crypto("fabric: crypto slot reserved bytes set"));
    }
  }
  if (n > kMaxCryptoCaps || in.size() < kCryptoSlotHeadBytes + n * kCryptoCapBytes) {
    return unexpected(bad_crypto("fabric: crypto slot capability table truncated"));
  }
  Reader e(in.subspan(kCryptoSlotHeadBytes));
  for (std::uint16_t i = 0; i < n; ++i) {
    const std::uint8_t fam = e.u8();
    const std::uint8_t algo = e.u8();
    crypto::AlgoCaps a;
    a.key = read_range(e);
    a.digest = read_range(e);
    a.iv = read_range(e);
    a.aad = read_range(e);
    a.block_size = e.u16();
    if (fam > 3 || algo >= crypto::CryptoCapabilities::kAlgos || !valid_range(a.key) ||
        !valid_range(a.digest) || !valid_range(a.iv) || !valid_range(a.aad) || a.block_size == 0) {
      return unexpected(bad_crypto("fabric: bad crypto capability entry"));
    }
    auto& slot = fam == 0 ? c.caps.cipher : fam == 1 ? c.caps.hash : fam == 2 ? c.caps.mac : c.caps.aead;
    if (slot[algo]) {
      return unexpected(bad_crypto("fabric: crypto capability listed twice"));
    }
    slot[algo] = a;
  }
  return c;
}

Result<std::size_t> encode_crypto_session(const crypto::SessionParams& p,
                                          std::span<std::byte> out) noexcept {
  if (out.size() < kCryptoSessionBytes) {
    return fail(Errc::kInvalidArgument, "fabric: buffer too small for a session");
  }
  if (p.key_len > crypto::kMaxKeyBytes || p.auth_key_len > crypto::kMaxAuthKeyBytes) {
    return fail(Errc::kInvalidArgument, "fabric: session key too long");
  }
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(CryptoOp::kSessionCreate));
  w.u8(static_cast<std::uint8_t>(p.kind));
  w.u8(static_cast<std::uint8_t>((p.encrypt ? 1 : 0) | (p.auth_is_mac ? 2 : 0) |
                                 (p.cipher_first ? 4 : 0)));
  w.u8(0);
  w.u32(p.cipher_algo);
  w.u32(p.aead_algo);
  w.u32(p.auth_algo);
  w.u32(p.iv_len);
  w.u32(p.key_len);
  w.u32(p.auth_key_len);
  w.u32(p.digest_len);
  w.u32(p.aad_len);
  w.bytes(p.key.data(), p.key.size());
  w.bytes(p.auth_key.data(), p.auth_key.size());
  return kCryptoSessionBytes;
}

Result<crypto::SessionParams> decode_crypto_session(std::span<const std::byte> in) noexcept {
  if (in.size() != kCryptoSessionBytes) {
    return unexpected(bad_crypto("fabric: a session is 228 bytes"));
  }
  Reader r(in);
  crypto::SessionParams p;
  const std::uint8_t op = r.u8();
  const std::uint8_t kind = r.u8();
  const std::uint8_t flags = r.u8();
  const std::uint8_t pad = r.u8();
  p.cipher_algo = r.u32();
  p.aead_algo = r.u32();
  p.auth_algo = r.u32();
  p.iv_len = r.u32();
  p.key_len = r.u32();
  p.auth_key_len = r.u32();
  p.digest_len = r.u32();
  p.aad_len = r.u32();
  r.bytes(p.key.data(), p.key.size());
  r.bytes(p.auth_key.data(), p.auth_key.size());
  if (op != static_cast<std::uint8_t>(CryptoOp::kSessionCreate) || pad != 0 || (flags & ~7u) != 0 ||
      kind > static_cast<std::uint8_t>(crypto::SessionKind::kAead)) {
    return unexpected(bad_crypto("fabric: malformed session head"));
  }
  if (p.key_len > crypto::kMaxKeyBytes || p.auth_key_len > crypto::kMaxAuthKeyBytes ||
      p.iv_len > crypto::kMaxIvBytes || p.digest_len > crypto::kMaxDigestBytes ||
      p.aad_len > crypto::kMaxAadBytes || p.cipher_algo >= crypto::CryptoCapabilities::kAlgos ||
      p.aead_algo >= crypto::CryptoCapabilities::kAlgos ||
      p.auth_algo >= crypto::CryptoCapabilities::kAlgos) {
    return unexpected(bad_crypto("fabric: session lengths or algorithms out of range"));
  }
  p.kind = static_cast<crypto::SessionKind>(kind);
  p.encrypt = (flags & 1) != 0;
  p.auth_is_mac = (flags & 2) != 0;
  p.cipher_first = (flags & 4) != 0;
  return p;
}

Result<std::size_t> encode_crypto_destroy(std::uint64_t handle, std::span<std::byte> out) noexcept {
  if (out.size() < kCryptoDestroyBytes) {
    return fail(Errc::kInvalidArgument, "fabric: buffer too small");
  }
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(CryptoOp::kSessionDestroy));
  for (int i = 0; i < 7; ++i) {
    w.u8(0);
  }
  w.u64(handle);
  return kCryptoDestroyBytes;
}

Result<std::uint64_t> decode_crypto_destroy(std::span<const std::byte> in) noexcept {
  if (in.size() != kCryptoDestroyBytes) {
    return unexpected(bad_crypto("fabric: a session destroy is 16 bytes"));
  }
  Reader r(in);
  if (r.u8() != static_cast<std::uint8_t>(CryptoOp::kSessionDestroy)) {
    return unexpected(bad_crypto("fabric: not a session destroy"));
  }
  for (int i = 0; i < 7; ++i) {
    if (r.u8() != 0) {
      return unexpected(bad_crypto("fabric: session destroy reserved bytes set"));
    }
  }
  return r.u64();
}

Result<std::size_t> encode_crypto_op(const CryptoOpHead& h, std::span<std::byte> out) noexcept {
  if (out.size() < kCryptoOpHeadBytes || h.iv_len > crypto::kMaxIvBytes) {
    return fail(Errc::kInvalidArgument, "fabric: cannot encode the crypto op");
  }
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(CryptoOp::kOp));
  w.u8(h.encrypt ? 1 : 0);
  w.u8(h.iv_len);
  w.u8(0);
  w.u32(0);
  w.u64(h.session);
  w.bytes(h.iv.data(), h.iv.size());
  for (std::uint32_t v : {h.cipher_offset, h.cipher_len, h.auth_offset, h.auth_len, h.data_len,
                          h.src_len, h.aad_len, h.digest_in_len, h.dst_len, h.digest_out_len}) {
    w.u32(v);
  }
  w.u64(h.deadline_us);
  return kCryptoOpHeadBytes;
}

Result<CryptoOpHead> decode_crypto_op(std::span<const std::byte> in) noexcept {
  if (in.size() < kCryptoOpHeadBytes) {
    return unexpected(bad_crypto("fabric: crypto op head shorter than 80 bytes"));
  }
  Reader r(in);
  CryptoOpHead h;
  const std::uint8_t op = r.u8();
  const std::uint8_t flags = r.u8();
  h.iv_len = r.u8();
  const std::uint8_t pad = r.u8();
  const std::uint32_t reserved = r.u32();
  h.session = r.u64();
  r.bytes(h.iv.data(), h.iv.size());
  std::uint32_t* const fields[] = {&h.cipher_offset, &h.cipher_len, &h.auth_offset, &h.auth_len,
                                   &h.data_len, &h.src_len, &h.aad_len, &h.digest_in_len,
                                   &h.dst_len, &h.digest_out_len};
  for (auto* f : fields) {
    *f = r.u32();
  }
  h.deadline_us = r.u64();
  h.encrypt = (flags & 1) != 0;
  if (op != static_cast<std::uint8_t>(CryptoOp::kOp) || (flags & ~1u) != 0 || pad != 0 ||
      reserved != 0 || h.iv_len > crypto::kMaxIvBytes) {
    return unexpected(bad_crypto("fabric: malformed crypto op head"));
  }
  const std::uint64_t in_bytes =
      std::uint64_t{h.src_len} + h.aad_len + h.digest_in_len;
  if (in.size() - kCryptoOpHeadBytes != in_bytes) {
    return unexpected(bad_crypto("fabric: crypto op data does not match its lengths"));
  }
  return h;
}

}  // namespace viopool::pool
