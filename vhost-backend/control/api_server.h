// The control API of both daemons: JSON over HTTP (cpp-httplib), viopool-host
// on a unix socket, viopool-appliance on TCP. Operations are named
// <object>_<verb> (docs/api.md) and are served by a HostApi implementation or
// any ApiRoutes; this file knows HTTP and JSON, not DPDK.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <vector>
#include <string>
#include <thread>

#include "vhost-backend/base/result.h"

namespace httplib {
class Server;
}

namespace viopool::control {

struct ApiReply {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
};

// An error reply: {"error": {"code": "<errc name>", "message": "..."}} with the
// HTTP status that matches the code (4xx for caller errors, 5xx for ours).
ApiReply error_reply(Errc code, const std::string& message);
int http_status_for(Errc code) noexcept;

// Implemented by the daemon. Called on the API server's threads (one request at
// a time: the server serialises calls), may block for bounded time (device
// start/stop). Never throws; every failure is an error_reply.
class HostApi {
 public:
  virtual ~HostApi() = default;
  virtual ApiReply device_add(const nlohmann::json& body) = 0;
  virtual ApiReply device_del(const nlohmann::json& body) = 0;
  virtual ApiReply device_list(const nlohmann::json& body) = 0;
  virtual ApiReply device_stats(const nlohmann::json& body) = 0;
  // Prometheus text exposition format.
  virtual std::string metrics() = 0;
};

// A daemon's operations: POST /v1/<op> (and GET for those in `read_only`, with
// query parameters as the body's keys), GET /metrics. Calls are serialised.
struct ApiRoutes {
  std::function<ApiReply(const std::string& op, const nlohmann::json& body)> call;
  std::vector<std::string> read_only;
  std::function<std::string()> metrics;  // Prometheus text; may be empty
};

class ApiServer {
 public:
  ApiServer();
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the unix socket (creating its directory; refusing a path another
  // live server listens on; replacing a stale socket file) and serves on a
  // background thread. `why` explains a failure.
  Result<void> start(const std::string& socket_path, HostApi& api, std::string& why);
  Result<void> start_unix(const std::string& socket_path, ApiRoutes routes, std::string& why);
  // Listens on "ADDRESS:PORT" (port 0: any; port() tells which).
  Result<void> start_tcp(const std::string& address, ApiRoutes routes, std::string& why);
  int port() const noexcept { return port_; }
  // Stops serving and removes the socket file. Idempotent.
  void stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  Result<void> serve(ApiRoutes routes);
  std::string path_;
  int port_ = 0;
};

}  // namespace viopool::control
