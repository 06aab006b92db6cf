// libFuzzer targets for the fabric decoders (pool-manager/protocol), one
// binary per decoder, chosen by VIOPOOL_FUZZ_DECODER at compile time. A
// decoder must never read outside its input nor crash; what it accepts must
// encode back to the same bytes (frames and fixed-size payloads).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "pool-manager/protocol/fabric_codec.h"

using namespace viopool::pool;

namespace {

void require(bool ok) {
  if (!ok) {
    std::abort();  // libFuzzer reports the input
  }
}

template <typename T, typename Decode, typename Encode>
void round_trip(std::span<const std::byte> in, Decode decode, Encode encode) {
  auto v = decode(in);
  if (!v) {
    return;
  }
  std::vector<std::byte> out(in.size() + 64);
  auto n = encode(*v, out);
  require(n.has_value());
  require(*n <= out.size());
  require(std::memcmp(out.data(), in.data(), std::min(*n, in.size())) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
#if VIOPOOL_FUZZ_DECODER == 0
  auto f = decode_frame(in);
  if (f) {
    std::vector<std::byte> out(size);
    auto n = encode_frame(f->header, f->payload, out);
    require(n.has_value() && *n == size && std::memcmp(out.data(), data, size) == 0);
  }
#elif VIOPOOL_FUZZ_DECODER == 1
  round_trip<Hello>(in, decode_hello, encode_hello);
#elif VIOPOOL_FUZZ_DECODER == 2
  auto q = decode_block_request(in);
  if (q) {
    std::vector<std::byte> out(kBlockRequestBytes);
    require(encode_block_request(*q, out).has_value());
    require(std::memcmp(out.data(), data, kBlockRequestBytes) == 0);
  }
#elif VIOPOOL_FUZZ_DECODER == 3
  round_trip<Completion>(in, decode_completion, encode_completion);
#elif VIOPOOL_FUZZ_DECODER == 4
  round_trip<Sack>(in, decode_sack, encode_sack);
#elif VIOPOOL_FUZZ_DECODER == 5
  auto c = decode_config_range(in);
  if (c) {
    require(c->offset + c->size <= kMaxConfigBytes);
  }
#elif VIOPOOL_FUZZ_DECODER == 6
  round_trip<NakReason>(in, decode_nak, encode_nak);
#elif VIOPOOL_FUZZ_DECODER == 7
  round_trip<VolumeInfo>(in, decode_volume_info, encode_volume_info);
#elif VIOPOOL_FUZZ_DECODER == 8
  auto c = decode_crypto_slot_info(in);
  if (c) {
    std::vector<std::byte> out(kCryptoSlotHeadBytes + kMaxCryptoCaps * kCryptoCapBytes);
    auto n = encode_crypto_slot_info(*c, out);
    require(n.has_value());
    require(std::memcmp(out.data(), data, 20) == 0);
    auto again = decode_crypto_slot_info(std::span(out).first(*n));
    require(again.has_value() && again->max_sessions == c->max_sessions);
  }
#elif VIOPOOL_FUZZ_DECODER == 9
  auto p = decode_crypto_session(in);
  if (p) {
    std::vector<std::byte> out(kCryptoSessionBytes);
    require(encode_crypto_session(*p, out).has_value());
    require(std::memcmp(out.data(), data, kCryptoSessionBytes) == 0);
  }
#elif VIOPOOL_FUZZ_DECODER == 10
  auto h = decode_crypto_op(in);
  if (h) {
    std::vector<std::byte> out(kCryptoOpHeadBytes);
    require(encode_crypto_op(*h, out).has_value());
    require(std::memcmp(out.data(), data, kCryptoOpHeadBytes) == 0);
  }
#elif VIOPOOL_FUZZ_DECODER == 11
  auto d = decode_crypto_destroy(in);
  if (d) {
    std::vector<std::byte> out(kCryptoDestroyBytes);
    require(encode_crypto_destroy(*d, out).has_value());
    require(std::memcmp(out.data(), data, kCryptoDestroyBytes) == 0);
  }
#elif VIOPOOL_FUZZ_DECODER == 12
  round_trip<VnicInfo>(in, decode_vnic_info, encode_vnic_info);
#elif VIOPOOL_FUZZ_DECODER == 13
  std::span<const std::byte> pkts[kMaxPacketsPerFrame];
  auto n = decode_packets(in, pkts);
  if (n) {
    std::vector<std::byte> out(size);
    PacketsWriter w(out);
    for (std::size_t i = 0; i < *n; ++i) {
      require(w.fits(pkts[i].size()));
      std::memcpy(w.add(static_cast<std::uint32_t>(pkts[i].size())), pkts[i].data(),
                  pkts[i].size());
    }
    require(w.finish() == size && std::memcmp(out.data(), data, size) == 0);
  }
#else
#error "VIOPOOL_FUZZ_DECODER names no decoder"
#endif
  return 0;
}
