// What the host's pooled backends (RemoteBlock, RemoteCrypto) share: one
// incarnation of a queue's connection to the appliance (a UDP socket and the
// ReliableChannel on it), opened with a HELLO that names the queue's
// instance and the lease, and the gather/scatter between guest iovecs and
// fabric payloads.
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "pool-manager/fabric/reliable_channel.h"
#include "pool-manager/protocol/frame_auth.h"
#include "pool-manager/transport/udp_transport.h"

namespace viopool::pool {

// HELLO nonce bytes 0-7: the host queue for its whole life (the appliance
// fences an older link of the same instance before it accepts a new one).
using Instance = std::array<std::uint8_t, 8>;
Instance random_instance();

struct LinkParams {
  std::uint32_t function_id = 0;
  std::uint64_t lease_id = 0;
  std::uint32_t host_id = 0;
  std::uint16_t queue_id = 0;
  std::uint32_t mtu = 1472;
  std::uint32_t max_message = 0;
  bool receive = true;  // false: the owner reads the socket and ingest()s control frames
};

struct Link {
  std::unique_ptr<UdpTransport> udp;
  std::unique_ptr<ReliableChannel> ch;
  std::array<std::uint8_t, 16> nonce{};  // bytes 8-15: the link's number
  bool established = false;
};

// A new socket and channel to `peer`, its HELLO sent.
Result<Link> open_link(const LinkParams& p, const PeerAddress& peer, FrameAuthenticator& auth,
                       const Instance& instance, std::uint64_t link_no);

// Polls `l` until `done(message)` says so or the deadline passes (control
// thread); HELLO_ACK marks the link established on the way.
template <typename Done>
bool drive_blocking(Link& l, std::chrono::steady_clock::time_point deadline,
                    std::vector<ChannelMessage>& msgs, Done done);

// Copies bytes [off, off + len) of the iovecs' concatenation into `buf`
// (kGather) or out of it (kScatter).
enum class Dir : std::uint8_t { kGather, kScatter };
template <Dir D>
void copy_iov(const iovec* iov, std::uint32_t cnt, std::uint64_t off,
              std::conditional_t<D == Dir::kGather, std::byte*, const std::byte*> buf,
              std::size_t len) {
  for (std::uint32_t i = 0; i < cnt && len > 0; ++i) {
    if (off >= iov[i].iov_len) {
      off -= iov[i].iov_len;
      continue;
    }
    const std::size_t n = std::min<std::size_t>(len, iov[i].iov_len - off);
    std::byte* guest = static_cast<std::byte*>(iov[i].iov_base) + off;
    if constexpr (D == Dir::kGather) {
      std::memcpy(buf, guest, n);
    } else {
      std::memcpy(guest, buf, n);
    }
    buf += n;
    len -= n;
    off = 0;
  }
}

// What a pooled backend's queue gives its poller to sleep on: an epoll set
// holding the current link's socket and a timer (the link's retransmissions,
// a reconnection, the requests' deadlines). Not open: watch() does nothing.
class LinkWaiter {
 public:
  LinkWaiter() = default;
  ~LinkWaiter();
  LinkWaiter(const LinkWaiter&) = delete;
  LinkWaiter& operator=(const LinkWaiter&) = delete;

  Result<void> open();
  int fd() const noexcept { return epfd_; }
  // Follows the link's socket: the old one leaves the set before it closes.
  void watch(const Link& l);
  // Right before sleeping: drops past expirations and arms the timer for
  // `wake` (time_point::max(): none); false if `wake` has passed already.
  bool arm(std::chrono::steady_clock::time_point wake);

 private:
  int epfd_ = -1;
  int timerfd_ = -1;
  int watched_ = -1;
};

// Waits on the link's socket until `deadline` or its next timer.
void wait_link(Link& l, std::chrono::steady_clock::time_point deadline);

// Connects once to a function (HELLO, then CONFIG_READ of `size` bytes at 0)
// and says goodbye: the appliance's HELLO_ACK and the config space. `why`
// explains a failure (kTimeout: no answer, kUnsupported: NAK).
struct FunctionConfig {
  Hello their{};
  std::vector<std::byte> space;
  PeerAddress peer{};
  std::unique_ptr<FrameAuthenticator> auth;
  std::string name;  // the function's, from the config space (offset 32)
};
Result<FunctionConfig> read_function_config(const LinkParams& p, const PeerAddress& peer,
                                            FrameAuthenticator& auth,
                                            std::chrono::milliseconds timeout, std::uint32_t size,
                                            std::string& why);

// What both pooled backends do first: checks the options, parses the
// appliance's address, makes the lease key's authenticator, and reads the
// function's config space; `why` starts with "pool://APPLIANCE/NAME: ".
Result<FunctionConfig> open_function(const std::string& appliance, const std::string& name,
                                     const LinkParams& p, const AuthKey& key,
                                     std::chrono::milliseconds timeout, std::uint32_t size,
                                     std::string& why);

template <typename Done>
bool drive_blocking(Link& l, std::chrono::steady_clock::time_point deadline,
                    std::vector<ChannelMessage>& msgs, Done done) {
  while (std::chrono::steady_clock::now() < deadline && !l.ch->broken()) {
    msgs.clear();
    l.ch->poll(std::chrono::steady_clock::now(), msgs);
    for (auto& m : msgs) {
      if (m.opcode == Opcode::kHelloAck) {
        l.established = true;
      }
      if (done(m)) {
        l.ch->flush_ack();  // nobody may poll this link again soon
        return true;
      }
    }
    wait_link(l, deadline);
  }
  return false;
}

}  // namespace viopool::pool
