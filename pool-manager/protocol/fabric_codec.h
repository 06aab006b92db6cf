// The fabric's wire format (docs/fabric.md): frame header, message payloads,
// encode and decode. Pure C++ on byte spans, no DPDK and no allocation; every
// decoder validates what it reads and never touches bytes outside its input
// (they are fuzzed: tests/fuzz). Integers are big-endian on the wire.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "vhost-backend/base/result.h"
#include "vhost-backend/devices/crypto/crypto_backend.h"

namespace viopool::pool {

inline constexpr std::uint16_t kMagic = 0x5650;  // "VP"
inline constexpr std::uint8_t kVersion = 2;
inline constexpr std::size_t kHeaderBytes = 56;
inline constexpr std::size_t kAuthOffset = 40;
inline constexpr std::size_t kAuthBytes = 16;
inline constexpr std::uint16_t kEtherType = 0x88B5;  // IEEE local experimental

enum class Opcode : std::uint8_t {
  kHello = 1,
  kHelloAck = 2,
  kConfigRead = 3,
  kConfigData = 4,
  kRequest = 5,
  kData = 6,
  kCompletion = 7,
  kAck = 8,
  kNak = 9,
  kKeepalive = 10,
  kGoodbye = 11,
  kPackets = 12,  // a vNIC's Ethernet frames: unsequenced, never fragmented
};
const char* to_string(Opcode o) noexcept;

inline constexpr std::uint16_t kFlagAck = 1u << 0;   // `ack` is valid
inline constexpr std::uint16_t kFlagMore = 1u << 1;  // more fragments follow
inline constexpr std::uint16_t kFlagRetx = 1u << 2;  // a retransmission
inline constexpr std::uint16_t kFlagSack = 1u << 3;  // ACK payload carries SACK blocks
inline constexpr std::uint16_t kFlagsKnown = kFlagAck | kFlagMore | kFlagRetx | kFlagSack;

struct FrameHeader {
  Opcode opcode = Opcode::kKeepalive;
  std::uint16_t flags = 0;
  std::uint16_t queue_id = 0;
  std::uint32_t function_id = 0;
  std::uint32_t tag = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint16_t credits = 0;
  std::uint32_t length = 0;          // payload bytes in this frame
  std::uint32_t frag_offset = 0;     // offset of this payload in its message
  std::uint32_t message_length = 0;  // the whole message's payload
  std::array<std::uint8_t, kAuthBytes> auth{};
};

struct Frame {
  FrameHeader header;
  std::span<const std::byte> payload;  // points into the decoded buffer
};

// Header plus payload into `out`; header.length is set from the payload.
// kInvalidArgument if `out` is too small or the fragment fields are
// inconsistent (frag_offset + length > message_length, or MORE clear on a
// fragment that does not end the message). Returns the bytes written.
Result<std::size_t> encode_frame(FrameHeader h, std::span<const std::byte> payload,
                                 std::span<std::byte> out) noexcept;
// The same for a payload already in place at out[kHeaderBytes...]: writes
// the header only.
Result<std::size_t> encode_frame_in_place(FrameHeader h, std::size_t payload_len,
                                          std::span<std::byte> out) noexcept;
// Validates a received frame (docs/fabric.md, "Frames"); kProtocol with the
// reason in Error::what for anything malformed. The authentication tag is not
// checked here (frame_auth.h).
Result<Frame> decode_frame(std::span<const std::byte> in) noexcept;

// ---- Payloads ----

struct Hello {  // HELLO and HELLO_ACK
  std::uint64_t lease_id = 0;
  std::uint32_t node_id = 0;
  std::uint16_t mtu = 0;
  std::uint16_t window = 0;
  std::array<std::uint8_t, 16> nonce{};
};
inline constexpr std::size_t kHelloBytes = 32;

struct ConfigRange {  // CONFIG_READ, and the head of CONFIG_DATA
  std::uint32_t offset = 0;
  std::uint32_t size = 0;
};
inline constexpr std::size_t kConfigRangeBytes = 8;
inline constexpr std::uint32_t kMaxConfigBytes = 4096;

enum class BlockOp : std::uint8_t {
  kRead = 0,
  kWrite = 1,
  kFlush = 2,
  kDiscard = 3,
  kWriteZeroes = 4
};
inline constexpr std::uint8_t kBlockFlagUnmap = 1;

struct BlockRequest {  // head of a REQUEST
  BlockOp op = BlockOp::kRead;
  std::uint8_t flags = 0;
  std::uint32_t length = 0;
  std::uint64_t offset = 0;
  std::uint64_t deadline_us = 0;
};
inline constexpr std::size_t kBlockRequestBytes = 24;

struct Completion {
  std::int32_t status = 0;  // 0 or a negative errno
  std::uint32_t bytes = 0;
};
inline constexpr std::size_t kCompletionBytes = 8;

// The config space of a volume function (CONFIG_DATA at offset 0).
inline constexpr std::uint32_t kFunctionClassVolume = 1;
inline constexpr std::uint32_t kVolumeReadOnly = 1u << 0;
inline constexpr std::uint32_t kVolumeDiscard = 1u << 1;
inline constexpr std::uint32_t kVolumeWriteZeroes = 1u << 2;
inline constexpr std::uint32_t kVolumeVolatileCache = 1u << 3;
inline constexpr std::uint32_t kVolumeFlagsKnown =
    kVolumeReadOnly | kVolumeDiscard | kVolumeWriteZeroes | kVolumeVolatileCache;
struct VolumeInfo {
  std::uint32_t function_class = kFunctionClassVolume;
  std::uint32_t block_size = 512;  // power of two in [512, 65536]
  std::uint64_t capacity_bytes = 0;  // multiple of block_size
  std::uint32_t flags = 0;
  std::uint16_t queues = 1;        // fabric queues the target serves (queue ids 0..queues-1)
  std::uint16_t queue_depth = 1;   // requests per queue the target accepts at once
  std::uint32_t max_io_bytes = 0;  // largest READ/WRITE length, multiple of block_size
  std::uint8_t physical_block_exp = 0;
};
inline constexpr std::size_t kVolumeInfoBytes = 32;
// Then the volume's name, NUL-padded: a host checks it reached the volume it
// was configured for.
inline constexpr std::size_t kVolumeNameOffset = 32;
inline constexpr std::size_t kVolumeNameBytes = 64;

// The config space of a crypto slot (CONFIG_DATA at offset 0): a 96-byte
// head (32 bytes, then the slot's name as for volumes), then one 28-byte
// entry per algorithm the slot's engine offers.
inline constexpr std::uint32_t kFunctionClassCrypto = 2;
struct CryptoSlotInfo {
  std::uint32_t function_class = kFunctionClassCrypto;
  std::uint16_t queues = 1;       // fabric data queues (queue ids 0..queues-1)
  std::uint16_t queue_depth = 1;  // ops per queue the target accepts at once
  std::uint32_t max_sessions = 0;
  std::uint32_t max_op_bytes = 0;  // largest src, dst, aad or digest of one op
  crypto::CryptoCapabilities caps;
};
inline constexpr std::size_t kCryptoSlotHeadBytes = 96;
inline constexpr std::size_t kCryptoCapBytes = 28;
inline constexpr std::size_t kMaxCryptoCaps = 4 * crypto::CryptoCapabilities::kAlgos;

// REQUEST heads of crypto slots; the first byte is the operation.
enum class CryptoOp : std::uint8_t {
  kSessionCreate = 16,   // SessionParams (228 bytes); COMPLETION: 0 and a u64 handle
  kSessionDestroy = 17,  // a u64 handle (16 bytes)
  kOp = 18,              // CryptoOpHead (80 bytes), then src, aad, digest_in
};
inline constexpr std::size_t kCryptoSessionBytes = 228;
inline constexpr std::size_t kCryptoDestroyBytes = 16;
struct CryptoOpHead {
  std::uint64_t session = 0;
  bool encrypt = true;
  std::uint8_t iv_len = 0;  // ≤ 16
  std::array<std::uint8_t, crypto::kMaxIvBytes> iv{};
  std::uint32_t cipher_offset = 0;
  std::uint32_t cipher_len = 0;
  std::uint32_t auth_offset = 0;
  std::uint32_t auth_len = 0;
  std::uint32_t data_len = 0;
  std::uint32_t src_len = 0;        // bytes of src that follow
  std::uint32_t aad_len = 0;        // then the AAD
  std::uint32_t digest_in_len = 0;  // then the tag to verify (AEAD decrypt)
  std::uint32_t dst_len = 0;        // bytes of output asked for
  std::uint32_t digest_out_len = 0;  // then the digest or tag asked for
  std::uint64_t deadline_us = 0;
};
inline constexpr std::size_t kCryptoOpHeadBytes = 80;

// The config space of a vNIC (CONFIG_DATA at offset 0): 32 bytes, then the
// vNIC's name as for volumes.
inline constexpr std::uint32_t kFunctionClassVnic = 3;
inline constexpr std::uint32_t kVnicLinkUp = 1u << 0;
inline constexpr std::uint32_t kVnicFlagsKnown = kVnicLinkUp;
struct VnicInfo {
  std::uint32_t function_class = kFunctionClassVnic;
  std::uint16_t queues = 1;    // fabric queues (queue pairs) served
  std::uint16_t mtu = 1500;    // largest Ethernet payload the vNIC carries
  std::array<std::uint8_t, 6> mac{};
  std::uint16_t vlan = 0;      // the VLAN the appliance tags its frames with (0: none)
  std::uint32_t flags = 0;
  std::uint32_t rate_mbps = 0;  // committed rate, 0: none
  std::uint32_t peak_mbps = 0;  // peak rate, 0: none
};
inline constexpr std::size_t kVnicInfoBytes = 32;

// PACKETS payload: `u16 count, u16 0`, then `count` records `u16 length`
// followed by that many bytes of an Ethernet frame (destination MAC first,
// no FCS).
inline constexpr std::size_t kPacketsHeadBytes = 4;
inline constexpr std::size_t kPacketRecordHead = 2;
inline constexpr std::uint32_t kMinPacketBytes = 14;
inline constexpr std::uint32_t kMaxPacketBytes = 9216;
inline constexpr std::size_t kMaxPacketsPerFrame = 64;

// Fills a PACKETS payload in a caller's buffer, one frame at a time.
class PacketsWriter {
 public:
  explicit PacketsWriter(std::span<std::byte> out) noexcept : out_(out) {}
  // Room for a packet of `len` bytes (and the batch not full).
  bool fits(std::size_t len) const noexcept {
    return count_ < kMaxPacketsPerFrame &&
           used_ + kPacketRecordHead + len <= out_.size();
  }
  // Reserves a record of `len` bytes (kMinPacketBytes..kMaxPacketBytes, and
  // fits()); the caller copies the frame there.
  std::byte* add(std::uint32_t len) noexcept;
  std::uint16_t count() const noexcept { return count_; }
  // Writes the head; the payload's bytes.
  std::size_t finish() noexcept;
  void reset() noexcept {
    used_ = kPacketsHeadBytes;
    count_ = 0;
  }

 private:
  std::span<std::byte> out_;
  std::size_t used_ = kPacketsHeadBytes;
  std::uint16_t count_ = 0;
};

struct SackBlock {
  std::uint32_t start = 0;
  std::uint32_t end = 0;  // exclusive
};
inline constexpr std::size_t kMaxSackBlocks = 8;
struct Sack {
  std::array<SackBlock, kMaxSackBlocks> blocks{};
  std::size_t count = 0;
};

enum class NakReason : std::uint32_t {
  kUnknownFunction = 1,
  kNotEstablished = 2,
  kNoResources = 3
};

// Each encoder returns the bytes written (kInvalidArgument if `out` is too
// small or the value cannot be sent); each decoder takes exactly its payload
// (REQUEST and CONFIG_DATA: their head, the data follows) and returns
// kProtocol for anything malformed. COMPLETION: its 8-byte head (a READ's data
// follows it).
Result<std::size_t> encode_hello(const Hello& h, std::span<std::byte> out) noexcept;
Result<Hello> decode_hello(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_config_range(const ConfigRange& c, std::span<std::byte> out) noexcept;
Result<ConfigRange> decode_config_range(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_block_request(const BlockRequest& r, std::span<std::byte> out) noexcept;
Result<BlockRequest> decode_block_request(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_completion(const Completion& c, std::span<std::byte> out) noexcept;
Result<Completion> decode_completion(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_volume_info(const VolumeInfo& v, std::span<std::byte> out) noexcept;
Result<VolumeInfo> decode_volume_info(std::span<const std::byte> in) noexcept;
// A crypto slot's config space: head, name (caller's), entries. `out` must
// hold kCryptoSlotHeadBytes + 28 per algorithm; the bytes written.
Result<std::size_t> encode_crypto_slot_info(const CryptoSlotInfo& c,
                                            std::span<std::byte> out) noexcept;
Result<CryptoSlotInfo> decode_crypto_slot_info(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_crypto_session(const crypto::SessionParams& p,
                                          std::span<std::byte> out) noexcept;
Result<crypto::SessionParams> decode_crypto_session(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_crypto_destroy(std::uint64_t handle, std::span<std::byte> out) noexcept;
Result<std::uint64_t> decode_crypto_destroy(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_crypto_op(const CryptoOpHead& h, std::span<std::byte> out) noexcept;
// The whole REQUEST payload: the head, then exactly src_len + aad_len +
// digest_in_len bytes.
Result<CryptoOpHead> decode_crypto_op(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_vnic_info(const VnicInfo& v, std::span<std::byte> out) noexcept;
Result<VnicInfo> decode_vnic_info(std::span<const std::byte> in) noexcept;
// Splits a PACKETS payload into its frames (spans into `in`); kProtocol for a
// count beyond kMaxPacketsPerFrame or `out`, a record shorter than
// kMinPacketBytes or longer than kMaxPacketBytes, one running past the
// payload, or bytes left over. Returns the number of frames.
Result<std::size_t> decode_packets(std::span<const std::byte> in,
                                   std::span<std::span<const std::byte>> out) noexcept;
Result<std::size_t> encode_sack(const Sack& s, std::span<std::byte> out) noexcept;
Result<Sack> decode_sack(std::span<const std::byte> in) noexcept;
Result<std::size_t> encode_nak(NakReason r, std::span<std::byte> out) noexcept;
Result<NakReason> decode_nak(std::span<const std::byte> in) noexcept;

}  // namespace viopool::pool
