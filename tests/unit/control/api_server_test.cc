// The control API server over a real unix socket, driven by an HTTP client,
// against a recording HostApi.
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "vhost-backend/base/unix_socket.h"
#include "vhost-backend/control/api_server.h"

using nlohmann::json;
using namespace viopool;
using namespace viopool::control;

namespace {

class RecordingHostApi : public HostApi {
 public:
  ApiReply device_add(const json& b) override {
    last_op = "device_add";
    last_body = b;
    if (b.value("name", "") == "dup") {
      return error_reply(Errc::kAlreadyExists, "a device named 'dup' already exists");
    }
    return ApiReply{201, json{{"name", b.value("name", "")}}};
  }
  ApiReply device_del(const json& b) override {
    last_op = "device_del";
    last_body = b;
    return error_reply(Errc::kNotFound, "no device");
  }
  ApiReply device_list(const json& b) override {
    last_op = "device_list";
    last_body = b;
    return ApiReply{200, json{{"devices", json::array()}}};
  }
  ApiReply device_stats(const json& b) override {
    last_op = "device_stats";
    last_body = b;
    return ApiReply{200, json{{"devices", json::array()}}};
  }
  std::string metrics() override { return "viopool_up 1\n"; }

  std::string last_op;
  json last_body;
};

struct ServerFixture {
  ServerFixture() : path("/tmp/vp-api-" + std::to_string(::getpid()) + ".sock") {
    std::string why;
    auto r = server.start(path, api, why);
    BOOST_REQUIRE_MESSAGE(r.has_value(), why);
  }
  ~ServerFixture() { server.stop(); }

  httplib::Result post(const std::string& op, const std::string& body) {
    httplib::Client c(path);
    c.set_address_family(AF_UNIX);
    return c.Post("/v1/" + op, body, "application/json");
  }

  std::string path;
  RecordingHostApi api;
  ApiServer server;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(api_server, ServerFixture)

BOOST_AUTO_TEST_CASE(routes_operations_with_their_body) {
  auto r = post("device_add", R"({"name":"net0"})");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 201);
  BOOST_TEST(api.last_op == "device_add");
  BOOST_TEST(api.last_body.value("name", "") == "net0");
  BOOST_TEST(json::parse(r->body).value("name", "") == "net0");
}

BOOST_AUTO_TEST_CASE(errors_carry_code_and_message) {
  auto r = post("device_add", R"({"name":"dup"})");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 409);
  auto j = json::parse(r->body);
  BOOST_TEST(j["error"]["code"].get<std::string>() == "already_exists");
  BOOST_TEST(j["error"]["message"].get<std::string>().find("dup") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(malformed_json_is_a_400_and_reaches_no_operation) {
  auto r = post("device_add", "{not json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 400);
  BOOST_TEST(api.last_op.empty());
  r = post("device_add", "[1,2]");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 400);
  BOOST_TEST(api.last_op.empty());
}

BOOST_AUTO_TEST_CASE(unknown_operation_is_a_404) {
  auto r = post("device_explode", "{}");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 404);
}

BOOST_AUTO_TEST_CASE(get_works_for_reads_with_query_parameters) {
  httplib::Client c(path);
  c.set_address_family(AF_UNIX);
  auto r = c.Get("/v1/device_stats?name=net7");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 200);
  BOOST_TEST(api.last_body.value("name", "") == "net7");
  auto m = c.Get("/metrics");
  BOOST_REQUIRE(m);
  BOOST_TEST(m->body == "viopool_up 1\n");
}

BOOST_AUTO_TEST_CASE(a_second_server_on_the_same_socket_is_refused) {
  ApiServer second;
  RecordingHostApi other;
  std::string why;
  auto r = second.start(path, other, why);
  BOOST_TEST(!r.has_value());
  BOOST_TEST(why.find("in use") != std::string::npos);
  // The first server still answers.
  auto p = post("device_list", "{}");
  BOOST_REQUIRE(p);
  BOOST_TEST(p->status == 200);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(unix_socket)

BOOST_AUTO_TEST_CASE(stale_socket_file_is_replaced_and_regular_file_refused) {
  const std::string p = "/tmp/vp-stale-" + std::to_string(::getpid()) + ".sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, p.c_str());
  ::unlink(p.c_str());
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  ::close(fd);  // bound but never listening: stale
  std::string why;
  BOOST_TEST(prepare_unix_socket_path(p, why).has_value());
  BOOST_TEST(::access(p.c_str(), F_OK) != 0);

  { std::FILE* f = std::fopen(p.c_str(), "w"); std::fclose(f); }
  auto r = prepare_unix_socket_path(p, why);
  BOOST_TEST(!r.has_value());
  BOOST_TEST(why.find("not a socket") != std::string::npos);
  ::unlink(p.c_str());
}

BOOST_AUTO_TEST_SUITE_END()
