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
  VIOPOOL_TRY(prepare_unix_socket_path(socket_path, why));

  server_ = std::make_unique<httplib::Server>();
  auto& svr = *server_;
  svr.set_address_family(AF_UNIX);
  svr.set_payload_max_length(1 << 20);
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };

  // One request at a time reaches the HostApi: operations change shared state.
  auto api_mutex = std::make_shared<std::mutex>();
  auto route = [&api, api_mutex](const std::string& op, const httplib::Request& req,
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
    for (const auto& [k, v] : req.params) {
      if (!body.is_object()) {
        break;
      }
      body[k] = v;
    }
    ApiReply r;
    if (!body.is_object()) {
      r = error_reply(Errc::kInvalidArgument, "request body must be a JSON object");
    } else {
      std::lock_guard<std::mutex> lock(*api_mutex);
      if (op == "device_add") {
        r = api.device_add(body);
      } else if (op == "device_del") {
        r = api.device_del(body);
      } else if (op == "device_list") {
        r = api.device_list(body);
      } else if (op == "device_stats") {
        r = api.device_stats(body);
      } else {
        r = error_reply(Errc::kNotFound, "unknown operation '" + op + "'");
      }
    }
    res.status = r.status;
    res.set_content(r.body.dump(), "application/json");
  };
  svr.Post(R"(/v1/([a-z_]+))", [route](const httplib::Request& req, httplib::Response& res) {
    route(req.matches[1], req, res);
  });
  svr.Get(R"(/v1/(device_list|device_stats))",
          [route](const httplib::Request& req, httplib::Response& res) {
            route(req.matches[1], req, res);
          });
  svr.Get("/metrics", [&api, api_mutex](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(*api_mutex);
    res.set_content(api.metrics(), "text/plain; version=0.0.4");
  });

  if (!svr.bind_to_port(socket_path, 80)) {
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
