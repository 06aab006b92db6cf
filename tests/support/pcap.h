// Minimal pcap (libpcap classic format) reader/writer for tests that feed
// packets to DPDK's net_pcap PMD and check what it wrote.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace viopool::testing {

using Packet = std::vector<std::uint8_t>;

bool write_pcap(const std::string& path, const std::vector<Packet>& pkts);
// Returns false if the file is missing or malformed; a truncated last record
// (a writer still running) is ignored.
bool read_pcap(const std::string& path, std::vector<Packet>& out);

// Ethernet frames of varied sizes (60..1514 bytes) with a recognisable header
// (EtherType 0x88B5, local experimental), a sequence number and a pattern
// derived from `tag` and the sequence.
std::vector<Packet> make_test_frames(std::size_t n, std::uint8_t tag);

}  // namespace viopool::testing
