// Per-queue counters of a virtio-crypto device. One writer (the polling
// thread), relaxed reads by the control thread.
#pragma once

#include "vhost-backend/devices/blk/blk_stats.h"
#include "vhost-backend/devices/net/net_stats.h"

namespace viopool::crypto {

using blk::LatencyHistogram;
using net::Counter;

struct CryptoQueueStats {
  Counter cipher_ops;
  Counter hash_ops;
  Counter mac_ops;
  Counter chain_ops;
  Counter aead_ops;
  Counter bytes;            // payload bytes processed (src)
  Counter bad_requests;     // BADMSG / NOTSUPP without reaching the engine
  Counter invalid_session;  // INVSESS
  Counter auth_failures;    // AEAD tag mismatch (BADMSG from the engine)
  Counter engine_errors;    // ERR from the engine
  Counter kicks;
  Counter notifications;
  LatencyHistogram latency;  // parse to completion, ns
};

// Control-path counters (control queue and vhost-user session messages).
struct CryptoSessionStats {
  Counter created;
  Counter closed;
  Counter refused;    // invalid parameters, unsupported, or the cap (NOSPC)
  Counter exhausted;  // NOSPC
};

}  // namespace viopool::crypto
