// virtio-crypto device model without DPDK: the feature bits, the config space
// (virtio 1.2 §5.9.4) derived from the engine's capabilities, and the session
// table that maps the guest's session ids to backend sessions, capped so one
// VM cannot exhaust the engine. The vhost layer (vhost/vhost_crypto_device)
// moves requests; crypto_request parses them.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

#include "vhost-backend/base/result.h"
#include "vhost-backend/devices/crypto/crypto_backend.h"
#include "vhost-backend/devices/crypto/crypto_request.h"

namespace viopool::crypto {

inline constexpr std::size_t kConfigSpaceBytes = sizeof(Config);

struct CryptoDeviceOptions {
  std::uint16_t queues = 1;  // data queues
  bool packed_ring = true;
};

std::uint64_t offered_features(const CryptoDeviceOptions& o) noexcept;
// Advertises exactly what `caps` allows: a service appears when at least one of
// its algorithms does; key lengths are the largest the engine accepts.
Config make_config(const CryptoDeviceOptions& o, const CryptoCapabilities& caps) noexcept;
std::array<std::uint8_t, kConfigSpaceBytes> config_space(const Config& c) noexcept;

// The guest-visible sessions of one device. Thread-safe: the control queue
// (polling thread) and vhost-user CREATE/CLOSE_CRYPTO_SESSION (rte_vhost's
// thread) both create and close, data queues acquire and release. A session
// closed while requests use it is destroyed when the last one completes.
class SessionTable {
 public:
  struct Entry {
    SessionInfo info;
    std::uint64_t id = 0;    // 0: free
    std::uint32_t refs = 0;  // requests in flight
    bool closing = false;
  };

  explicit SessionTable(std::uint32_t max_sessions);

  // NOSPC when full; otherwise kStatusOk and the new id (never 0; ids of
  // closed sessions are not reused soon: a generation is folded in).
  std::uint8_t insert(const SessionInfo& info, std::uint64_t& id) noexcept;
  // kStatusInvSess if unknown. On kStatusOk `destroy_now` is the backend
  // session to destroy at once (nullptr if requests still hold it).
  std::uint8_t close(std::uint64_t id, BackendSession& destroy_now) noexcept;
  // Data path: the entry with one more reference, or nullptr if unknown or closing.
  Entry* acquire(std::uint64_t id) noexcept;
  // Returns the backend session to destroy if this was the last reference of a
  // closed session, else nullptr.
  BackendSession release(Entry* e) noexcept;
  // The same for a burst under one lock: out[i] = acquire(ids[i]); and
  // release of every non-null es[i], the sessions to destroy put in `destroy`
  // (room for n), their count returned.
  void acquire_burst(const std::uint64_t* ids, Entry** out, std::uint32_t n) noexcept;
  std::uint32_t release_burst(Entry* const* es, std::uint32_t n,
                              BackendSession* destroy) noexcept;
  // Removes everything (device reset); returns the backend sessions to destroy.
  std::vector<BackendSession> clear() noexcept;

  std::uint32_t active() const noexcept;
  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(entries_.size()); }
  std::uint64_t created() const noexcept;
  std::uint64_t refused() const noexcept;

 private:
  Entry* find(std::uint64_t id) noexcept;
  Entry* acquire_locked(std::uint64_t id) noexcept;
  BackendSession release_locked(Entry* e) noexcept;

  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  std::uint32_t active_ = 0;
  std::uint32_t generation_ = 0;
  std::uint64_t created_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace viopool::crypto
