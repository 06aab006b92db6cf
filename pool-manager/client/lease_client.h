// The host's side of leases: asks an appliance's control API (docs/api.md
// "viopool-appliance") for a function, renews the lease by heartbeat while
// the device lives, and releases it when the device goes. No DPDK.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "pool-manager/protocol/frame_auth.h"
#include "vhost-backend/base/result.h"

namespace viopool::pool {

struct LeaseAsk {
  std::string appliance;  // the control API, "ADDRESS:PORT"
  std::string host;       // this host's id
  std::string function;   // by name, or empty: any free function of class `cls`
  std::string cls = "volume";  // "volume" (of at least min_size_bytes), "crypto", "vnic"
  std::uint64_t min_size_bytes = 0;
  bool shared = false;
  std::int64_t ttl_ms = 0;  // 0: the appliance's default
};

struct LeaseGrant {
  std::uint64_t lease_id = 0;
  std::string host;  // the holder it was granted to
  std::string function;
  std::uint32_t function_id = 0;
  AuthKey key{};
  std::string uri;  // pool://FABRIC/NAME
  std::int64_t ttl_ms = 0;
};

// One API call each; `why` carries the appliance's message (or why it could
// not be reached) and the error code is the appliance's (kBusy, kNotFound,
// kResourceExhausted ...) or kIo when it could not be asked.
Result<LeaseGrant> acquire_lease(const LeaseAsk& ask, std::string& why);
// Renews lease `lease_id` of `host`: kNotFound once it expired, was released
// or moved to another host.
Result<void> renew_lease(const std::string& appliance, std::uint64_t lease_id,
                         const std::string& host, std::string& why);
Result<void> release_lease(const std::string& appliance, std::uint64_t lease_id,
                           const std::string& host, std::string& why);

// Renews a lease every third of its TTL on its own thread; releases it when
// destroyed. A renewal the appliance refuses (the lease expired and was
// freed, or moved to another host) makes the lease "lost"; an appliance that
// does not answer leaves it "renewing" until its TTL passes ("expired").
class LeaseKeeper {
 public:
  LeaseKeeper(std::string appliance, LeaseGrant grant);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  const LeaseGrant& grant() const noexcept { return grant_; }
  // {"id", "appliance", "function", "state", "renewals", "failures", "expires_in_ms", "error"}
  nlohmann::json describe() const;

 private:
  using Clock = std::chrono::steady_clock;
  void run();

  const std::string appliance_;
  const LeaseGrant grant_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool lost_ = false;
  Clock::time_point valid_until_;
  std::uint64_t renewals_ = 0;
  std::uint64_t failures_ = 0;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace viopool::pool
