// EthdevTransport: fabric frames in 0x88B5 Ethernet frames over a DPDK port.
// Copies in and out of mbufs (the fabric's frames live in caller buffers);
// the receive side trims Ethernet padding by the fabric header's length.
#include "pool-manager/transport/ethdev_transport.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "pool-manager/protocol/fabric_codec.h"
#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("eth-transport")

namespace viopool::pool {
namespace {

constexpr std::uint16_t kMaxBurst = 32;
// recv_burst polls the queue at most this often per call, so a flood of
// frames that are all dropped cannot keep one call busy.
constexpr int kMaxRxRounds = 4;
// docs/fabric.md "Frames": the u32 `length` field, payload bytes after the
// 56-byte header.
constexpr std::uint32_t kLengthFieldOffset = 28;
// Jumbo frames of common NICs; keeps the mbuf data room within its u16.
constexpr std::uint32_t kMaxMtu = 9600;
// VLAN tag or FCS a device might leave in the buffer: room, never used.
constexpr std::uint32_t kFrameSlack = 8;

std::atomic<std::uint32_t> g_pool_seq{0};  // unique mempool names per process

const std::uint8_t* read_bytes(const rte_mbuf* m, std::uint32_t off, std::uint32_t len,
                               void* tmp) noexcept {
  return static_cast<const std::uint8_t*>(rte_pktmbuf_read(m, off, len, tmp));
}

}  // namespace

Result<std::unique_ptr<EthdevTransport>> EthdevTransport::open(const EthdevTransportOptions& o) {
  if (o.devargs.empty() == !o.port_id.has_value()) {
    return fail(Errc::kInvalidArgument, "ethdev transport: give exactly one of devargs, port_id");
  }
  if (o.mtu < kHeaderBytes || o.mtu > kMaxMtu) {
    return fail(Errc::kInvalidArgument, "ethdev transport: mtu outside [56, 9600]");
  }
  std::unique_ptr<EthdevTransport> t(new EthdevTransport());
  t->mtu_ = o.mtu;
  t->rxq_ = o.rx_queue;
  t->txq_ = o.tx_queue;

  if (!o.devargs.empty()) {
    if (o.rx_queue != 0 || o.tx_queue != 0) {
      return fail(Errc::kInvalidArgument, "ethdev transport: an owned port has queue 0 only");
    }
    rte_devargs da{};
    if (rte_devargs_parse(&da, o.devargs.c_str()) != 0) {
      return fail(Errc::kInvalidArgument, "ethdev transport: devargs do not parse");
    }
    const std::string name = da.name;
    rte_devargs_reset(&da);
    std::uint16_t existing = 0;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &existing) == 0) {
      return fail(Errc::kAlreadyExists, "ethdev transport: devargs name an existing port");
    }
    const int rc = rte_dev_probe(o.devargs.c_str());
    if (rc != 0) {
      VIOPOOL_LOG_ERROR("cannot probe devargs=\"{}\" rc={}", o.devargs, rc);
      return fail(Errc::kNotFound, "ethdev transport: probe failed (check devargs)", -rc);
    }
    t->devargs_ = o.devargs;  // from here on the destructor unplugs it
    if (rte_eth_dev_get_port_by_name(name.c_str(), &t->port_) != 0) {
      return fail(Errc::kNotFound, "ethdev transport: probed device has no port of that name");
    }
  } else {
    t->port_ = *o.port_id;
    if (rte_eth_dev_is_valid_port(t->port_) == 0) {
      return fail(Errc::kNotFound, "ethdev transport: no such port");
    }
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(t->port_, &info) != 0) {
      return fail(Errc::kIo, "ethdev transport: cannot read device info");
    }
    if (o.rx_queue >= info.nb_rx_queues || o.tx_queue >= info.nb_tx_queues) {
      return fail(Errc::kInvalidArgument, "ethdev transport: queue not configured on the port");
    }
    std::uint16_t port_mtu = 0;
    if (rte_eth_dev_get_mtu(t->port_, &port_mtu) != 0 || port_mtu < o.mtu) {
      return fail(Errc::kInvalidArgument, "ethdev transport: mtu above the port's");
    }
  }

  // One mbuf holds a whole Ethernet frame (no chains on transmit); at least
  // DPDK's default size, which every PMD's receive path expects.
  const std::uint32_t room = std::max<std::uint32_t>(
      RTE_MBUF_DEFAULT_BUF_SIZE, RTE_PKTMBUF_HEADROOM + kEthHeaderBytes + o.mtu + kFrameSlack);
  const std::uint32_t mbufs =
      o.mbufs != 0 ? o.mbufs
                   : (o.port_id ? 0u : std::uint32_t{o.rx_desc}) + o.tx_desc + 4u * kMaxBurst;
  const int socket_id = rte_eth_dev_socket_id(t->port_);
  const std::string pool_name =
      "vpeth" + std::to_string(::getpid() % 100000) + "_" + std::to_string(g_pool_seq.fetch_add(1));
  // Per-lcore cache: 1/8 of the pool at most, within DPDK's limits.
  const unsigned cache = std::min<unsigned>(RTE_MEMPOOL_CACHE_MAX_SIZE, mbufs / 8);
  t->pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, cache, 0,
                                     static_cast<std::uint16_t>(room), socket_id);
  if (t->pool_ == nullptr) {
    return fail(Errc::kResourceExhausted, "ethdev transport: cannot create the mbuf pool",
                rte_errno);
  }
  if (!t->devargs_.empty()) {
    VIOPOOL_TRY(t->start_owned_port(o));
  }

  rte_ether_addr mac{};
  if (rte_eth_macaddr_get(t->port_, &mac) != 0) {
    return fail(Errc::kIo, "ethdev transport: cannot read the port's MAC");
  }
  t->local_ = mac_address(mac.addr_bytes);
  VIOPOOL_LOG_INFO("ethdev transport open port={} devargs=\"{}\" mac={} mtu={} rxq={} txq={}",
                   t->port_, o.devargs, mac_to_string(t->local_), t->mtu_, t->rxq_, t->txq_);
  return t;
}

Result<void> EthdevTransport::start_owned_port(const EthdevTransportOptions& o) {
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_, &info) != 0) {
    return fail(Errc::kIo, "ethdev transport: cannot read device info");
  }
  if (info.max_rx_queues == 0 || info.max_tx_queues == 0) {
    return fail(Errc::kUnsupported, "ethdev transport: port has no queues");
  }
  // Drivers that leave max_mtu at its default still give the longest frame
  // they take (header and FCS included): net_af_packet says 1518.
  if (mtu_ < info.min_mtu || mtu_ > info.max_mtu ||
      kEthHeaderBytes + mtu_ + RTE_ETHER_CRC_LEN > info.max_rx_pktlen) {
    return fail(Errc::kInvalidArgument, "ethdev transport: mtu outside the port's range");
  }
  rte_eth_conf conf{};
  conf.rxmode.mtu = mtu_;  // the largest frame the port accepts: header + mtu
  int rc = rte_eth_dev_configure(port_, 1, 1, &conf);
  if (rc != 0) {
    return fail(Errc::kIo, "ethdev transport: configure failed", -rc);
  }
  // configure() only records the MTU; set_mtu reaches the device (for
  // net_af_packet, the kernel interface: its MTU caps what it transmits).
  rc = rte_eth_dev_set_mtu(port_, static_cast<std::uint16_t>(mtu_));
  if (rc != 0 && rc != -ENOTSUP) {
    return fail(Errc::kIo, "ethdev transport: cannot set the port MTU", -rc);
  }
  std::uint16_t rxd = o.rx_desc;
  std::uint16_t txd = o.tx_desc;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_, &rxd, &txd);
  const int socket = rte_eth_dev_socket_id(port_);
  const unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
  if ((rc = rte_eth_rx_queue_setup(port_, 0, rxd, sock, nullptr, pool_)) != 0 ||
      (rc = rte_eth_tx_queue_setup(port_, 0, txd, sock, nullptr)) != 0) {
    return fail(Errc::kIo, "ethdev transport: queue setup failed", -rc);
  }
  if ((rc = rte_eth_dev_start(port_)) != 0) {
    return fail(Errc::kIo, "ethdev transport: start failed", -rc);
  }
  started_ = true;
  // Not promiscuous: the fabric is unicast to our MAC (recv_burst drops the rest anyway).
  return {};
}

EthdevTransport::~EthdevTransport() { release(); }

void EthdevTransport::release() noexcept {
  bool pool_free = true;
  if (started_) {
    rte_eth_dev_stop(port_);
    started_ = false;
  }
  if (!devargs_.empty()) {
    // Closing returns the queues' mbufs to our pool.
    rte_eth_dev_close(port_);
    // Unplugged so that the same devargs can be probed again.
    rte_devargs da{};
    if (rte_devargs_parse(&da, devargs_.c_str()) == 0) {
      rte_eal_hotplug_remove(rte_bus_name(da.bus), da.name);
      rte_devargs_reset(&da);
    }
    devargs_.clear();
  } else if (pool_ != nullptr) {
    // A shared port may still hold our mbufs in its Tx ring: reclaim what the
    // driver lets us, and never free the pool under the NIC.
    rte_eth_tx_done_cleanup(port_, txq_, 0);
    pool_free = rte_mempool_full(pool_) != 0;
  }
  if (pool_ != nullptr) {
    if (pool_free) {
      rte_mempool_free(pool_);
    } else {
      VIOPOOL_LOG_WARN("port={} still holds mbufs of the transport's pool: left allocated", port_);
    }
    pool_ = nullptr;
  }
}

std::uint32_t EthdevTransport::send_burst(std::span<const OutFrame> frames) noexcept {
  std::uint32_t done = 0;
  while (done < frames.size()) {
    rte_mbuf* pkts[kMaxBurst];
    std::uint32_t origin[kMaxBurst];   // index in `frames` of pkts[i]
    std::uint32_t refused[kMaxBurst];  // frames refused in this chunk before pkts[i]
    std::uint16_t n = 0;
    std::uint32_t refused_total = 0;
    std::uint32_t next = done;
    bool pool_empty = false;
    while (next < frames.size() && n < kMaxBurst) {
      const OutFrame& f = frames[next];
      if (f.data.size() > mtu_ || f.data.size() < kHeaderBytes || f.peer.len != kMacBytes) {
        ++refused_total;
        ++next;
        continue;
      }
      rte_mbuf* m = rte_pktmbuf_alloc(pool_);
      if (m == nullptr) {
        ++eth_stats_.tx_no_mbuf;
        pool_empty = true;
        break;
      }
      // Fits: the data room holds a header plus mtu (open()).
      auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
      std::memcpy(p, f.peer.bytes.data(), kMacBytes);
      std::memcpy(p + kMacBytes, local_.bytes.data(), kMacBytes);
      p[12] = static_cast<std::uint8_t>(kEtherType >> 8);
      p[13] = static_cast<std::uint8_t>(kEtherType & 0xff);
      std::memcpy(p + kEthHeaderBytes, f.data.data(), f.data.size());
      m->data_len = static_cast<std::uint16_t>(kEthHeaderBytes + f.data.size());
      m->pkt_len = m->data_len;
      pkts[n] = m;
      origin[n] = next;
      refused[n] = refused_total;
      ++n;
      ++next;
    }
    const std::uint16_t k = n == 0 ? 0 : rte_eth_tx_burst(port_, txq_, pkts, n);
    stats_.sent += k;
    if (k < n) {
      // The ring is full: frames from origin[k] on are the caller's to retry
      // (those refused after it are counted when they are consumed).
      rte_pktmbuf_free_bulk(pkts + k, n - k);
      stats_.send_errors += refused[k];
      return origin[k];
    }
    stats_.send_errors += refused_total;
    done = next;
    if (pool_empty) {
      break;
    }
  }
  return done;
}

std::uint32_t EthdevTransport::recv_burst(std::span<InFrame> frames) noexcept {
  std::uint32_t out = 0;
  for (int round = 0; round < kMaxRxRounds && out < frames.size(); ++round) {
    const auto want =
        static_cast<std::uint16_t>(std::min<std::size_t>(kMaxBurst, frames.size() - out));
    rte_mbuf* pkts[kMaxBurst];
    const std::uint16_t n = rte_eth_rx_burst(port_, rxq_, pkts, want);
    for (std::uint16_t i = 0; i < n; ++i) {
      const rte_mbuf* m = pkts[i];
      const std::uint32_t len = rte_pktmbuf_pkt_len(m);
      if (len < kEthHeaderBytes) {
        ++eth_stats_.runts;
        continue;
      }
      std::uint8_t eth_tmp[kEthHeaderBytes];
      const std::uint8_t* eth = read_bytes(m, 0, kEthHeaderBytes, eth_tmp);
      if ((eth[12] << 8 | eth[13]) != kEtherType) {
        ++eth_stats_.other_ethertype;
        continue;
      }
      if (std::memcmp(eth, local_.bytes.data(), kMacBytes) != 0) {
        ++eth_stats_.not_for_us;
        continue;
      }
      const std::uint32_t payload = len - kEthHeaderBytes;
      if (payload < kHeaderBytes) {
        ++eth_stats_.runts;
        continue;
      }
      // Trim to the fabric frame: Ethernet pads short frames to 60 bytes and
      // some devices leave more behind; decode_frame wants the exact frame.
      std::uint8_t len_tmp[4];
      const std::uint8_t* lf = read_bytes(m, kEthHeaderBytes + kLengthFieldOffset, 4, len_tmp);
      const std::uint64_t frame_len =
          kHeaderBytes + (std::uint64_t{lf[0]} << 24 | std::uint64_t{lf[1]} << 16 |
                          std::uint64_t{lf[2]} << 8 | std::uint64_t{lf[3]});
      if (frame_len > payload) {
        ++eth_stats_.malformed;
        continue;
      }
      InFrame& f = frames[out];
      if (frame_len > f.buf.size()) {
        ++stats_.truncated;
        continue;
      }
      const auto flen = static_cast<std::uint32_t>(frame_len);
      const void* src = rte_pktmbuf_read(m, kEthHeaderBytes, flen, f.buf.data());
      if (src != f.buf.data()) {
        std::memcpy(f.buf.data(), src, flen);
      }
      f.len = flen;
      f.peer = mac_address(std::span<const std::uint8_t, kMacBytes>(eth + kMacBytes, kMacBytes));
      ++out;
    }
    rte_pktmbuf_free_bulk(pkts, n);
    if (n < want) {
      break;
    }
  }
  stats_.received += out;
  return out;
}

}  // namespace viopool::pool
