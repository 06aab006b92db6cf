// NicPort: a physical NIC port of the appliance as its vNIC switch sees it
// (VolumeTarget, docs/fabric.md "vNICs"): bursts of Ethernet frames in and
// out, no DPDK types. The appliance's implementation is a DPDK ethdev
// (ethdev_nic_port.h: net_af_packet on a veth, net_tap, a real NIC).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace viopool::pool {

struct NicFrame {
  const std::byte* data = nullptr;
  std::uint32_t len = 0;
  // Set by the NIC's flow rules (rte_flow MARK): the function the frame is
  // for, 0 if none. The offload agent marks frames for a vNIC with its id.
  std::uint32_t mark = 0;
};

class NicPort {
 public:
  virtual ~NicPort() = default;
  virtual const std::string& name() const noexcept = 0;
  // Receives up to out.size() frames (destination MAC first, no FCS); they
  // stay valid until release_rx(). Never blocks.
  virtual std::uint32_t rx(std::span<NicFrame> out) noexcept = 0;
  // Gives the frames of the last rx() back to the port.
  virtual void release_rx() noexcept = 0;
  // Sends copies of the frames; returns how many the port took (the rest
  // are dropped by the caller and counted).
  virtual std::uint32_t tx(std::span<const NicFrame> frames) noexcept = 0;
  // Readable when frames arrive, or -1: the switch then looks on a timer.
  virtual int wait_fd() const noexcept { return -1; }
};

}  // namespace viopool::pool
