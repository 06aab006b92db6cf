// HTTP routing for the control API: POST /v1/<operation> with a JSON body
// (GET works for read-only operations), GET /metrics for Prometheus.
#include "vhost-backend/control/api_server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "vhost-backend/base/log.h"
#include "vhost-backend/base/unix_socket.h"

VIOPOOL_LOG_MODULE("api")

namespace viopool::control {
namespace {

using nlohmann::json;

}  // namespace

int http_status_for(Errc code) noexcept {
  switch (code) {
    case Errc::kOk: return 200;
    case Errc::kInvalidArgument:
    case Errc::kOutOfRange:
    case Errc::kUnsupported:
    case Errc::kProtocol: return 400;
    case Errc::kNotFound: return 404;
    case Errc::kAlreadyExists:
    case Errc::kBusy: return 409;
    case Errc::kResourceExhausted: return 507;
    case Errc::kTimeout: return 504;
    case Errc::kIo:
    case Errc::kInternal: return 500;
  }
  return 500;
}

ApiReply error_reply(Errc code, const std::string& message) {
  return ApiReply{http_status_for(code),
                  json{{"error", {{"code", errc_name(code)}, {"message", message}}}}};
}

ApiServer::ApiServer() = default;
ApiServer::~ApiServer() { stop(); }

Result<void> ApiServer::start(const std::string& socket_path, HostApi& api, std::string& why) {
  ApiRoutes routes;
  routes.call = [&api](const std::string& op, const json& body) {
    if (op == "device_add") {
      return api.device_add(body);
    }
    if (op == "device_del") {
      return api.device_del(body);
    }
    if (op == "device_list") {
      return api.device_list(body);
    }
    if (op == "device_stats") {
      return api.device_stats(body);
    }
    return error_reply(Errc::kNotFound, "unknown operation '" + op + "'");
  };
  routes.read_only = {"device_list", "device_stats"};
  routes.metrics = [&api] { return api.metrics(); };
  return start_unix(socket_path, std::move(routes), why);
}

Result<void> ApiServer::serve(ApiRoutes routes) {
  auto& svr = *server_;
  svr.set_payload_max_length(1 << 20);
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // One request at a time reaches the daemon: operations change shared state.
  auto shared = std::make_shared<ApiRoutes>(std::move(routes));
  auto api_mutex = std::make_shared<std::mutex>();
  auto route = [shared, api_mutex](const std::string& op, const httplib::Request& req,
                                   httplib::Response& res) {
    json body = json::object();
    if (!req.body.empty()) {
      body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded()) {
        auto r = error_reply(Errc::kInvalidArgument, "request body is not valid JSON");
        res.status = r.status;
        res.set_content(r.body.dump(), "application/json");
        return;
      }
    }
    // Query parameters are the body of a GET; a POST's body is JSON whatever
    // its content type says (curl -d sends form-urlencoded).
    for (const auto& [k, v] : req.params) {
      if (req.method != "GET" || !body.is_object()) {
        break;
      }
      body[k] = v;
    }
    ApiReply r;
    if (!body.is_object()) {
      r = error_reply(Errc::kInvalidArgument, "request body must be a JSON object");
    } else {
      std::lock_guard<std::mutex> lock(*api_mutex);
      r = shared->call(op, body);
    }
    res.status = r.status;
    res.set_content(r.body.dump(), "application/json");
  };
  svr.Post(R"(/v1/([a-z_]+))", [route](const httplib::Request& req, httplib::Response& res) {
    route(req.matches[1], req, res);
  });
  svr.Get(R"(/v1/([a-z_]+))",
          [route, shared](const httplib::Request& req, httplib::Response& res) {
            const std::string op = req.matches[1];
            for (const auto& ro : shared->read_only) {
              if (ro == op) {
                route(op, req, res);
                return;
              }
            }
            auto r = error_reply(Errc::kNotFound, "'" + op + "' is not a read-only operation (use POST)");
            res.status = r.status;
            res.set_content(r.body.dump(), "application/json");
          });
  svr.Get("/metrics", [shared, api_mutex](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(*api_mutex);
    res.set_content(shared->metrics ? shared->metrics() : std::string(),
                    "text/plain; version=0.0.4");
  });
  return {};
}

Result<void> ApiServer::start_unix(const std::string& socket_path, ApiRoutes routes,
                                   std::string& why) {
  VIOPOOL_TRY(prepare_unix_socket_path(socket_path, why));
  server_ = std::make_unique<httplib::Server>();
  server_->set_address_family(AF_UNIX);
  VIOPOOL_TRY(serve(std::move(routes)));
  if (!server_->bind_to_port(socket_path, 80)) {
    why = "cannot bind " + socket_path + ": " + std::strerror(errno);
    server_.reset();
    return fail(Errc::kIo, "api: bind failed", errno);
  }
  ::chmod(socket_path.c_str(), 0660);
  path_ = socket_path;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  VIOPOOL_LOG_INFO("control API listening socket={}", socket_path);
  return {};
}

Result<void> ApiServer::start_tcp(const std::string& address, ApiRoutes routes, std::string& why) {
  const auto colon = address.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0) {
    const std::string p = address.substr(colon + 1);
    if (!p.empty() && p.size() <= 5 && p.find_first_not_of("0123456789") == std::string::npos) {
      port = std::stoi(p);
    }
  }
  if (port < 0 || port > 65535) {
    why = "control API address '" + address + "': expected ADDRESS:PORT";
    return fail(Errc::kInvalidArgument, "api: bad address");
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  server_ = std::make_unique<httplib::Server>();
  VIOPOOL_TRY(serve(std::move(routes)));
  if (port == 0) {
    port = server_->bind_to_any_port(host);
  } else if (!server_->bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    why = "cannot listen on " + address + ": " + std::strerror(errno);
    server_.reset();
    return fail(Errc::kIo, "api: bind failed", errno);
  }
  port_ = port;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  VIOPOOL_LOG_INFO("control API listening tcp={}:{}", host, port);
  return {};
}

void ApiServer::stop() {
  if (server_) {
    server_->stop();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  server_.reset();
  if (!path_.empty()) {
    ::unlink(path_.c_str());
    path_.clear();
  }
}

}  // namespace viopool::control
