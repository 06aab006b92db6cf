// RemoteCrypto: a CryptoBackend whose engine is a crypto slot on a pool
// appliance, reached over the fabric (docs/fabric.md "Crypto slots").
// Sessions are created and destroyed on a control link (blocking, bounded by
// the request timeout); every data queue has its own link. An op's source,
// AAD and tag to verify are gathered from guest memory into the REQUEST, its
// output and digest scattered from the COMPLETION into guest memory. A link
// that breaks is reopened and its unanswered ops sent again (an op only
// writes its own output: running it twice changes nothing); an op not
// answered by its deadline completes with ERR. Sessions belong to the
// lease: they survive reconnections, not an appliance restart (ops then
// come back INVSESS).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "pool-manager/protocol/frame_auth.h"
#include "vhost-backend/devices/crypto/crypto_backend.h"

namespace viopool::pool {

struct RemoteCryptoOptions {
  std::string appliance;  // ip:port of the appliance's fabric (UDP)
  std::string slot;       // the name the function must carry
  std::uint32_t function_id = 0;
  AuthKey key{};
  std::uint64_t lease_id = 0;
  std::uint32_t mtu = 1472;
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
};

// "pool://ADDRESS:PORT/NAME" → appliance and slot.
Result<void> parse_crypto_pool_uri(const std::string& uri, RemoteCryptoOptions& o);

// Connects, reads the slot's config space (its engine's capabilities) and
// checks its name. `why` says what failed.
Result<std::unique_ptr<crypto::CryptoBackend>> make_remote_crypto(const RemoteCryptoOptions& o,
                                                                  std::string& why);

}  // namespace viopool::pool
