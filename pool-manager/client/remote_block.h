// RemoteBlock: a BlockBackend whose volume lives on a pool appliance, reached
// over the fabric (docs/fabric.md). Each virtqueue gets its own fabric channel
// (its own UDP socket, so each queue's polling thread owns it alone). Writes
// are gathered from guest memory into REQUEST frames, reads scattered from
// COMPLETION frames into guest memory; I/Os larger than the appliance's
// max_io_bytes go out as several requests. counters(): requests,
// completions, timeouts, reconnects, resent, retransmits.
//
// Failures never hang a guest: a request not completed by its deadline
// (request_timeout) completes with -ETIMEDOUT; when the appliance answers
// "not established" (it restarted), the channel breaks (no acks) or says
// goodbye, the queue reconnects on a new socket — a fresh HELLO, so frames of
// the old incarnation can never be taken for the new one — and sends again
// every request still waiting for its completion. Retried writes carry the
// same data to the same place: block writes are idempotent.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "pool-manager/protocol/frame_auth.h"
#include "vhost-backend/devices/blk/blk_backend.h"

namespace viopool::pool {

struct RemoteBlockOptions {
  std::string appliance;  // ip:port of the appliance's fabric (UDP)
  std::string volume;     // the name the function must carry
  std::uint32_t function_id = 0;
  AuthKey key{};
  std::uint32_t mtu = 1472;  // largest fabric frame per datagram (lowered to the appliance's)
  bool read_only = false;    // refuse writes even if the volume allows them
  std::uint32_t host_id = 0;
  std::uint64_t lease_id = 0;
  std::chrono::milliseconds request_timeout{30000};  // deadline of each request
  std::chrono::milliseconds connect_timeout{5000};   // make_remote_backend and start()
};

// "pool://ADDRESS:PORT/VOLUME" (IPv6 addresses in brackets) → appliance and
// volume of `o`; kInvalidArgument otherwise.
Result<void> parse_pool_uri(const std::string& uri, RemoteBlockOptions& o);

// Connects to the appliance, reads the volume's config space and checks its
// name (control thread; blocks up to connect_timeout). On failure `why` says
// what: unreachable appliance (or wrong key: a forged frame is never
// answered), a function that is another volume, a malformed config space.
Result<std::unique_ptr<blk::BlockBackend>> make_remote_backend(const RemoteBlockOptions& o,
                                                               std::string& why);

}  // namespace viopool::pool
