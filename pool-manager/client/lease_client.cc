#include "pool-manager/client/lease_client.h"

#include <httplib.h>

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("lease")

namespace viopool::pool {

using nlohmann::json;

namespace {

Errc errc_of(const std::string& code) {
  for (Errc e : {Errc::kInvalidArgument, Errc::kOutOfRange, Errc::kUnsupported, Errc::kProtocol,
                 Errc::kNotFound, Errc::kAlreadyExists, Errc::kBusy, Errc::kResourceExhausted,
                 Errc::kTimeout, Errc::kIo, Errc::kInternal}) {
    if (code == errc_name(e)) {
      return e;
    }
  }
  return Errc::kIo;
}

// POST /v1/<op>; the reply's JSON, or the appliance's error.
Result<json> call(const std::string& appliance, const std::string& op, const json& body,
                  std::string& why) {
  const auto colon = appliance.rfind(':');
  int port = 0;
  if (colon != std::string::npos) {
    port = std::atoi(appliance.c_str() + colon + 1);
  }
  if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
    why = "appliance '" + appliance + "': expected ADDRESS:PORT";
    return fail(Errc::kInvalidArgument, "lease: bad appliance address");
  }
  httplib::Client cli(appliance.substr(0, colon), port);
  cli.set_connection_timeout(std::chrono::seconds(2));
  cli.set_read_timeout(std::chrono::seconds(5));
  cli.set_write_timeout(std::chrono::seconds(5));
  auto res = cli.Post("/v1/" + op, body.dump(), "application/json");
  if (!res) {
    why = "appliance " + appliance + " unreachable: " + httplib::to_string(res.error());
    return fail(Errc::kIo, "lease: appliance unreachable");
  }
  json out = json::parse(res->body, nullptr, false);
  if (out.is_discarded()) {
    why = "appliance " + appliance + " answered HTTP " + std::to_string(res->status) +
          " without JSON";
    return fail(Errc::kProtocol, "lease: bad reply");
  }
  if (res->status >= 400) {
    const json e = out.value("error", json::object());
    why = "appliance " + appliance + ": " + e.value("message", "HTTP " + std::to_string(res->status));
    return fail(errc_of(e.value("code", "")), "lease: refused");
  }
  return out;
}

}  // namespace

Result<LeaseGrant> acquire_lease(const LeaseAsk& ask, std::string& why) {
  json body = {{"host", ask.host}, {"mode", ask.shared ? "shared" : "exclusive"}};
  if (!ask.function.empty()) {
    body["function"] = ask.function;
  } else {
    body["class"] = ask.cls;
    if (ask.cls == "volume") {
      body["size"] = ask.min_size_bytes;
    }
  }
  if (ask.ttl_ms != 0) {
    body["ttl_ms"] = ask.ttl_ms;
  }
  auto r = call(ask.appliance, "lease_acquire", body, why);
  if (!r) {
    return unexpected(r.error());
  }
  LeaseGrant g;
  g.host = ask.host;
  try {
    g.lease_id = r->at("id").get<std::uint64_t>();
    g.function = r->at("function").get<std::string>();
    g.function_id = r->at("function_id").get<std::uint32_t>();
    g.uri = r->at("uri").get<std::string>();
    g.ttl_ms = r->at("ttl_ms").get<std::int64_t>();
    auto key = parse_auth_key(r->at("key").get<std::string>());
    if (!key || g.ttl_ms <= 0) {
      throw std::runtime_error("bad key or ttl");
    }
    g.key = *key;
  } catch (const std::exception&) {
    why = "appliance " + ask.appliance + " answered lease_acquire without a usable lease";
    return fail(Errc::kProtocol, "lease: bad reply");
  }
  return g;
}

Result<void> renew_lease(const std::string& appliance, std::uint64_t lease_id,
                         const std::string& host, std::string& why) {
  auto r = call(appliance, "lease_renew", {{"lease_id", lease_id}, {"host", host}}, why);
  if (!r) {
    return unexpected(r.error());
  }
  return {};
}

Result<void> release_lease(const std::string& appliance, std::uint64_t lease_id,
                           const std::string& host, std::string& why) {
  auto r = call(appliance, "lease_release", {{"lease_id", lease_id}, {"host", host}}, why);
  if (!r) {
    return unexpected(r.error());
  }
  return {};
}

LeaseKeeper::LeaseKeeper(std::string appliance, LeaseGrant grant)
    : appliance_(std::move(appliance)),
      grant_(std::move(grant)),
      valid_until_(Clock::now() + std::chrono::milliseconds(grant_.ttl_ms)) {
  thread_ = std::thread([this] { run(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (!lost_) {
    std::string why;
    if (auto r = release_lease(appliance_, grant_.lease_id, grant_.host, why); !r) {
      VIOPOOL_LOG_WARN("lease {} on {}: release failed: {}", grant_.lease_id, grant_.function,
                       why);
    }
  }
}

void LeaseKeeper::run() {
  const auto period = std::chrono::milliseconds(std::max<std::int64_t>(grant_.ttl_ms / 3, 100));
  std::unique_lock lock(mu_);
  auto next = Clock::now() + period;
  while (!stop_ && !lost_) {
    cv_.wait_until(lock, next, [this] { return stop_; });
    if (stop_) {
      break;
    }
    lock.unlock();
    std::string why;
    const auto asked = Clock::now();
    auto r = renew_lease(appliance_, grant_.lease_id, grant_.host, why);
    lock.lock();
    if (r) {
      ++renewals_;
      valid_until_ = asked + std::chrono::milliseconds(grant_.ttl_ms);
      last_error_.clear();
      next = asked + period;
    } else {
      ++failures_;
      last_error_ = why;
      if (r.error().code == Errc::kNotFound) {
        lost_ = true;
        VIOPOOL_LOG_ERROR("lease {} on {} lost: {}", grant_.lease_id, grant_.function, why);
      } else {
        VIOPOOL_LOG_WARN_RL("lease {} on {}: renewal failed: {}", grant_.lease_id,
                            grant_.function, why);
        next = Clock::now() + std::chrono::milliseconds(
                                  std::min<std::int64_t>(period.count(), 500));  // retry sooner
      }
    }
  }
}

json LeaseKeeper::describe() const {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  const char* state = lost_                  ? "lost"
                      : now >= valid_until_  ? "expired"
                      : !last_error_.empty() ? "renewing"
                                             : "active";
  json j = {{"id", grant_.lease_id},
            {"appliance", appliance_},
            {"function", grant_.function},
            {"function_id", grant_.function_id},
            {"uri", grant_.uri},
            {"state", state},
            {"ttl_ms", grant_.ttl_ms},
            {"renewals", renewals_},
            {"failures", failures_},
            {"expires_in_ms",
             std::max<std::int64_t>(
                 0, std::chrono::duration_cast<std::chrono::milliseconds>(valid_until_ - now)
                        .count())}};
  if (!last_error_.empty()) {
    j["error"] = last_error_;
  }
  return j;
}

}  // namespace viopool::pool
