// pcap file I/O and test frame generation.
#include "tests/support/pcap.h"

#include <cstring>
#include <fstream>

namespace viopool::testing {
namespace {

struct GlobalHeader {
  std::uint32_t magic = 0xa1b2c3d4;
  std::uint16_t major = 2;
  std::uint16_t minor = 4;
  std::int32_t thiszone = 0;
  std::uint32_t sigfigs = 0;
  std::uint32_t snaplen = 65535;
  std::uint32_t linktype = 1;  // Ethernet
};
struct RecordHeader {
  std::uint32_t ts_sec;
  std::uint32_t ts_usec;
  std::uint32_t incl_len;
  std::uint32_t orig_len;
};
static_assert(sizeof(GlobalHeader) == 24 && sizeof(RecordHeader) == 16);

}  // namespace

bool write_pcap(const std::string& path, const std::vector<Packet>& pkts) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  GlobalHeader g;
  out.write(reinterpret_cast<const char*>(&g), sizeof(g));
  std::uint32_t i = 0;
  for (const auto& p : pkts) {
    RecordHeader r{1700000000u, i++, static_cast<std::uint32_t>(p.size()),
                   static_cast<std::uint32_t>(p.size())};
    out.write(reinterpret_cast<const char*>(&r), sizeof(r));
    out.write(reinterpret_cast<const char*>(p.data()), static_cast<std::streamsize>(p.size()));
  }
  return static_cast<bool>(out);
}

bool read_pcap(const std::string& path, std::vector<Packet>& out) {
  std::ifstream in(path, std::ios::binary);
  GlobalHeader g;
  if (!in.read(reinterpret_cast<char*>(&g), sizeof(g))) {
    return false;
  }
  // Microsecond or nanosecond timestamps, native byte order (DPDK writes both).
  if (g.magic != 0xa1b2c3d4 && g.magic != 0xa1b23c4d) {
    return false;
  }
  RecordHeader r;
  while (in.read(reinterpret_cast<char*>(&r), sizeof(r))) {
    if (r.incl_len > 262144) {
      return false;
    }
    Packet p(r.incl_len);
    if (!in.read(reinterpret_cast<char*>(p.data()), r.incl_len)) {
      break;
    }
    out.push_back(std::move(p));
  }
  return true;
}

std::vector<Packet> make_test_frames(std::size_t n, std::uint8_t tag) {
  std::vector<Packet> v;
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Sizes cycle through small, odd and MTU-sized frames.
    static constexpr std::size_t kSizes[] = {60, 61, 64, 127, 128, 256, 511, 1000, 1499, 1514};
    Packet p(kSizes[i % (sizeof(kSizes) / sizeof(kSizes[0]))]);
    const std::uint8_t dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, tag};
    const std::uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x01, tag};
    std::memcpy(p.data(), dst, 6);
    std::memcpy(p.data() + 6, src, 6);
    p[12] = 0x88;
    p[13] = 0xb5;
    const auto seq = static_cast<std::uint32_t>(i);
    std::memcpy(p.data() + 14, &seq, sizeof(seq));
    for (std::size_t b = 18; b < p.size(); ++b) {
      p[b] = static_cast<std::uint8_t>(tag * 31 + i * 7 + b);
    }
    v.push_back(std::move(p));
  }
  return v;
}

}  // namespace viopool::testing
