// Config parsing: every rule that makes a config valid or not.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "vhost-backend/control/config.h"

using nlohmann::json;
using namespace viopool;
using namespace viopool::control;

namespace viopool::control {
std::ostream& operator<<(std::ostream& os, DeviceType v) { return os << to_string(v); }
std::ostream& operator<<(std::ostream& os, SocketMode v) { return os << to_string(v); }
std::ostream& operator<<(std::ostream& os, NetBackendKind v) { return os << to_string(v); }
std::ostream& operator<<(std::ostream& os, BlkBackendKind v) { return os << to_string(v); }
std::ostream& operator<<(std::ostream& os, DirectIoMode v) { return os << to_string(v); }
}  // namespace viopool::control

namespace {

json good_device() {
  return json{{"name", "net0"}, {"socket", "/tmp/vp-net0.sock"}, {"backend", {{"kind", "loopback"}}}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(minimal_device_gets_defaults) {
  std::string why;
  auto d = parse_device_config(good_device(), why);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->name == "net0");
  BOOST_TEST(d->type == DeviceType::kNet);
  BOOST_TEST(d->mode == SocketMode::kServer);
  BOOST_TEST(d->queue_pairs == 1);
  BOOST_TEST(d->mrg_rxbuf);
  BOOST_TEST(d->lcore == -1);
  BOOST_TEST(d->net.kind == NetBackendKind::kLoopback);
}

BOOST_AUTO_TEST_CASE(full_device_round_trips_through_json) {
  json j = good_device();
  j["mode"] = "client";
  j["queue_pairs"] = 4;
  j["mrg_rxbuf"] = false;
  j["lcore"] = 1;
  j["backend"] = {{"kind", "ethdev"}, {"devargs", "net_tap0,iface=vp0"}, {"rx_desc", 512}};
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  auto again = parse_device_config(to_json(*d), why);
  BOOST_REQUIRE_MESSAGE(again.has_value(), why);
  BOOST_TEST(again->mode == SocketMode::kClient);
  BOOST_TEST(again->queue_pairs == 4);
  BOOST_TEST(!again->mrg_rxbuf);
  BOOST_TEST(again->net.devargs == "net_tap0,iface=vp0");
  BOOST_TEST(again->net.rx_desc == 512);
}

struct BadCase {
  const char* label;
  json patch;  // merged into a good device
  Errc code;
  const char* why_contains;
};

std::ostream& operator<<(std::ostream& os, const BadCase& c) { return os << c.label; }

const BadCase kBad[] = {
    {"unknown key", {{"colour", "red"}}, Errc::kInvalidArgument, "unknown key 'colour'"},
    {"bad name", {{"name", "net 0"}}, Errc::kInvalidArgument, "name"},
    {"empty name", {{"name", ""}}, Errc::kInvalidArgument, "name"},
    {"long name", {{"name", std::string(33, 'a')}}, Errc::kInvalidArgument, "name"},
    {"unknown type", {{"type", "gpu"}}, Errc::kUnsupported, "unknown device type"},
    {"type not a string", {{"type", 3}}, Errc::kInvalidArgument, "type"},
    {"bad mode", {{"mode", "both"}}, Errc::kInvalidArgument, "mode"},
    {"zero queues", {{"queue_pairs", 0}}, Errc::kOutOfRange, "queue_pairs"},
    {"too many queues", {{"queue_pairs", 17}}, Errc::kOutOfRange, "queue_pairs"},
    {"queues as string", {{"queue_pairs", "2"}}, Errc::kInvalidArgument, "expected an integer"},
    {"long socket", {{"socket", std::string(120, 's')}}, Errc::kInvalidArgument, "socket"},
    {"bad backend", {{"backend", {{"kind", "sriov"}}}}, Errc::kUnsupported, "unknown backend"},
    {"ethdev without devargs", {{"backend", {{"kind", "ethdev"}}}}, Errc::kInvalidArgument,
     "devargs"},
    {"devargs on loopback", {{"backend", {{"kind", "loopback"}, {"devargs", "x"}}}},
     Errc::kInvalidArgument, "devargs"},
    {"unknown backend key", {{"backend", {{"kind", "null"}, {"speed", 1}}}},
     Errc::kInvalidArgument, "backend: unknown key 'speed'"},
    {"mrg as int", {{"mrg_rxbuf", 1}}, Errc::kInvalidArgument, "true or false"},
};

BOOST_DATA_TEST_CASE(bad_device_is_rejected_with_reason, boost::unit_test::data::make(kBad), c) {
  json j = good_device();
  j.merge_patch(c.patch);
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE(!d.has_value());
  BOOST_TEST(static_cast<int>(d.error().code) == static_cast<int>(c.code));
  BOOST_TEST(why.find(c.why_contains) != std::string::npos, "why was: " << why);
}

BOOST_AUTO_TEST_CASE(blk_device_with_uring_backend) {
  json j = {{"name", "vol0"},
            {"type", "blk"},
            {"socket", "/tmp/vol0.sock"},
            {"queues", 4},
            {"read_only", true},
            {"serial", "SN-42"},
            {"backend", {{"kind", "uring"}, {"path", "/var/lib/vol0.img"}, {"direct", "on"}}}};
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  BOOST_TEST(d->type == DeviceType::kBlk);
  BOOST_TEST(d->queues == 4);
  BOOST_TEST(d->read_only);
  BOOST_TEST(d->serial == "SN-42");
  BOOST_TEST(d->blk.kind == BlkBackendKind::kUring);
  BOOST_TEST(d->blk.path == "/var/lib/vol0.img");
  BOOST_TEST(d->blk.direct == DirectIoMode::kOn);
  auto again = parse_device_config(to_json(*d), why);
  BOOST_REQUIRE_MESSAGE(again.has_value(), why);
  BOOST_TEST(again->blk.path == d->blk.path);
  BOOST_TEST(again->queues == 4);
}

BOOST_AUTO_TEST_CASE(blk_sizes_accept_suffixes_and_default_the_serial) {
  std::string why;
  for (auto [text, bytes] : std::initializer_list<std::pair<json, std::uint64_t>>{
           {json("64M"), 64ull << 20}, {json("1G"), 1ull << 30}, {json(1048576), 1048576}}) {
    json j = {{"name", "m0"},
              {"type", "blk"},
              {"socket", "/tmp/m0.sock"},
              {"backend", {{"kind", "malloc"}, {"size", text}}}};
    auto d = parse_device_config(j, why);
    BOOST_REQUIRE_MESSAGE(d.has_value(), why);
    BOOST_TEST(d->blk.size_bytes == bytes);
    BOOST_TEST(d->serial == "m0");
  }
}

constexpr const char* kPoolKey = "000102030405060708090a0b0c0d0e0f";

const BadCase kBadBlk[] = {
    {"net key on blk", {{"queue_pairs", 2}}, Errc::kInvalidArgument, "unknown key 'queue_pairs'"},
    {"uring without path", {{"backend", {{"kind", "uring"}}}}, Errc::kInvalidArgument, "path"},
    {"malloc without size", {{"backend", {{"kind", "malloc"}}}}, Errc::kInvalidArgument, "size"},
    {"size not a block multiple", {{"backend", {{"kind", "malloc"}, {"size", 1000}}}},
     Errc::kInvalidArgument, "size"},
    {"size garbage", {{"backend", {{"kind", "null"}, {"size", "12Q"}}}}, Errc::kInvalidArgument,
     "size"},
    {"size overflow", {{"backend", {{"kind", "null"}, {"size", "99999999999999999999"}}}},
     Errc::kInvalidArgument, "size"},
    {"negative size", {{"backend", {{"kind", "null"}, {"size", -4096}}}}, Errc::kInvalidArgument,
     "size"},
    {"bad block size", {{"backend", {{"kind", "null"}, {"size", 4096}, {"block_size", 1000}}}},
     Errc::kInvalidArgument, "block_size"},
    {"net backend on blk", {{"backend", {{"kind", "loopback"}}}}, Errc::kUnsupported,
     "supported for blk"},
    {"long serial", {{"serial", std::string(21, 's')}}, Errc::kInvalidArgument, "serial"},
    {"zero queues", {{"queues", 0}}, Errc::kOutOfRange, "queues"},
    {"bad direct", {{"backend", {{"kind", "uring"}, {"path", "/x"}, {"direct", "maybe"}}}},
     Errc::kInvalidArgument, "direct"},
    {"size on uring", {{"backend", {{"kind", "uring"}, {"path", "/x"}, {"size", 4096}}}},
     Errc::kInvalidArgument, "size"},
    {"pool without uri",
     {{"backend", {{"kind", "pool"}, {"function_id", 1}, {"key", kPoolKey}}}},
     Errc::kInvalidArgument,
     "uri"},
    {"pool uri of another scheme",
     {{"backend", {{"kind", "pool"}, {"uri", "nbd://h/v"}, {"function_id", 1}, {"key", kPoolKey}}}},
     Errc::kInvalidArgument,
     "pool://"},
    {"pool without function",
     {{"backend", {{"kind", "pool"}, {"uri", "pool://10.0.0.2:7400/v"}, {"key", kPoolKey}}}},
     Errc::kInvalidArgument,
     "function_id"},
    {"pool key too short",
     {{"backend",
       {{"kind", "pool"}, {"uri", "pool://10.0.0.2:7400/v"}, {"function_id", 1}, {"key", "abcd"}}}},
     Errc::kInvalidArgument,
     "key"},
    {"pool with a path",
     {{"backend",
       {{"kind", "pool"},
        {"uri", "pool://10.0.0.2:7400/v"},
        {"function_id", 1},
        {"key", kPoolKey},
        {"path", "/x"}}}},
     Errc::kInvalidArgument,
     "path"},
    {"pool key on uring",
     {{"backend", {{"kind", "uring"}, {"path", "/x"}, {"function_id", 3}}}},
     Errc::kInvalidArgument,
     "only the pool backend"},
    {"lease without volume or size",
     {{"backend", {{"kind", "pool"}, {"appliance", "10.0.0.2:7480"}}}}, Errc::kInvalidArgument,
     "lease_size"},
    {"lease with both volume and size",
     {{"backend",
       {{"kind", "pool"}, {"appliance", "10.0.0.2:7480"}, {"volume", "v"}, {"lease_size", "1G"}}}},
     Errc::kInvalidArgument, "lease_size"},
    {"lease with a static key",
     {{"backend",
       {{"kind", "pool"}, {"appliance", "10.0.0.2:7480"}, {"volume", "v"}, {"key", kPoolKey}}}},
     Errc::kInvalidArgument, "gets it from the appliance"},
    {"lease appliance without port",
     {{"backend", {{"kind", "pool"}, {"appliance", "10.0.0.2"}, {"volume", "v"}}}},
     Errc::kInvalidArgument, "ADDRESS:PORT"},
    {"lease mode unknown",
     {{"backend",
       {{"kind", "pool"}, {"appliance", "h:1"}, {"volume", "v"}, {"lease_mode", "often"}}}},
     Errc::kInvalidArgument, "lease_mode"},
    {"lease key on a static pool volume",
     {{"backend",
       {{"kind", "pool"},
        {"uri", "pool://10.0.0.2:7400/v"},
        {"function_id", 1},
        {"key", kPoolKey},
        {"volume", "v"}}}},
     Errc::kInvalidArgument, "only a leased volume"},
};

BOOST_AUTO_TEST_CASE(blk_device_with_a_leased_pool_volume_round_trips) {
  json j = {{"name", "pv1"},
            {"type", "blk"},
            {"socket", "/tmp/pv1.sock"},
            {"backend",
             {{"kind", "pool"},
              {"appliance", "10.0.0.2:7480"},
              {"lease_size", "1G"},
              {"lease_mode", "shared"},
              {"lease_ttl_ms", 3000}}}};
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  BOOST_TEST(d->blk.appliance == "10.0.0.2:7480");
  BOOST_TEST(d->blk.lease_size == 1ull << 30);
  BOOST_TEST(d->blk.lease_shared);
  BOOST_TEST(d->blk.lease_ttl_ms == 3000);
  const json listed = to_json(*d);
  BOOST_TEST(listed["backend"]["appliance"] == "10.0.0.2:7480");
  BOOST_TEST(listed["backend"]["lease_mode"] == "shared");
  BOOST_TEST(!listed["backend"].contains("uri"));
  auto again = parse_device_config(listed, why);
  BOOST_TEST_MESSAGE(why);
  BOOST_TEST(again.has_value());
}

BOOST_AUTO_TEST_CASE(net_device_with_a_pooled_vnic_round_trips) {
  json j = {{"name", "pn"},
            {"socket", "/tmp/pn.sock"},
            {"backend",
             {{"kind", "pool"}, {"appliance", "10.0.0.2:7480"}, {"vnic", "va"},
              {"lease_ttl_ms", 3000}}}};
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  BOOST_TEST(d->net.kind == NetBackendKind::kPool);
  BOOST_TEST(d->net.vnic == "va");
  BOOST_TEST(d->net.mtu == 0u);
  auto again = parse_device_config(to_json(*d), why);
  BOOST_REQUIRE_MESSAGE(again.has_value(), why);
  BOOST_TEST(again->net.appliance == "10.0.0.2:7480");
  // Pool keys belong to the pool backend; a pool needs an appliance.
  j["backend"] = {{"kind", "loopback"}, {"vnic", "va"}};
  BOOST_TEST(!parse_device_config(j, why).has_value());
  BOOST_TEST(why.find("backend.vnic") != std::string::npos);
  j["backend"] = {{"kind", "pool"}, {"vnic", "va"}};
  BOOST_TEST(!parse_device_config(j, why).has_value());
  BOOST_TEST(why.find("appliance") != std::string::npos);
  j["backend"] = {{"kind", "pool"}, {"appliance", "10.0.0.2:7480"}, {"vnic", "bad name"}};
  BOOST_TEST(!parse_device_config(j, why).has_value());
}

BOOST_AUTO_TEST_CASE(blk_device_with_pool_backend_round_trips_without_its_key) {
  json j = {{"name", "pv0"},
            {"type", "blk"},
            {"socket", "/tmp/pv0.sock"},
            {"queues", 2},
            {"backend",
             {{"kind", "pool"},
              {"uri", "pool://10.0.0.2:7400/vol0"},
              {"function_id", 5},
              {"key", kPoolKey},
              {"mtu", 8972},
              {"timeout_ms", 2000}}}};
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  BOOST_TEST(d->blk.kind == BlkBackendKind::kPool);
  BOOST_TEST(d->blk.uri == "pool://10.0.0.2:7400/vol0");
  BOOST_TEST(d->blk.function_id == 5u);
  BOOST_TEST(d->blk.mtu == 8972u);
  BOOST_TEST(d->blk.timeout_ms == 2000u);
  const json listed = to_json(*d);
  BOOST_TEST(listed["backend"].value("uri", "") == "pool://10.0.0.2:7400/vol0");
  BOOST_TEST(!listed["backend"].contains("key"));  // secrets are never listed
}

BOOST_DATA_TEST_CASE(bad_blk_device_is_rejected_with_reason, boost::unit_test::data::make(kBadBlk),
                     c) {
  json j = {{"name", "vol0"},
            {"type", "blk"},
            {"socket", "/tmp/vol0.sock"},
            {"backend", {{"kind", "uring"}, {"path", "/tmp/img"}}}};
  if (c.patch.contains("backend")) {
    j["backend"] = c.patch["backend"];
  }
  for (auto it = c.patch.begin(); it != c.patch.end(); ++it) {
    if (it.key() != "backend") {
      j[it.key()] = it.value();
    }
  }
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE(!d.has_value());
  BOOST_TEST(static_cast<int>(d.error().code) == static_cast<int>(c.code));
  BOOST_TEST(why.find(c.why_contains) != std::string::npos, "why was: " << why);
}

BOOST_AUTO_TEST_CASE(crypto_device_round_trips) {
  json j = {{"name", "c0"},
            {"type", "crypto"},
            {"socket", "/tmp/c0.sock"},
            {"queues", 2},
            {"backend", {{"devargs", "crypto_aesni_mb0"}, {"max_sessions", 8}}}};
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  BOOST_TEST(d->type == DeviceType::kCrypto);
  BOOST_TEST(d->queues == 2);
  BOOST_TEST(d->crypto.devargs == "crypto_aesni_mb0");
  BOOST_TEST(d->crypto.max_sessions == 8u);
  BOOST_TEST(d->crypto.queue_depth == 256u);
  BOOST_TEST(d->crypto.cpu_crypto);
  auto again = parse_device_config(to_json(*d), why);
  BOOST_REQUIRE_MESSAGE(again.has_value(), why);
  BOOST_TEST(again->crypto.devargs == d->crypto.devargs);
  BOOST_TEST(again->crypto.max_sessions == 8u);
  BOOST_TEST(again->crypto.cpu_crypto);
  j["backend"]["cpu_crypto"] = false;
  d = parse_device_config(j, why);
  BOOST_REQUIRE_MESSAGE(d.has_value(), why);
  BOOST_TEST(!d->crypto.cpu_crypto);
  again = parse_device_config(to_json(*d), why);
  BOOST_REQUIRE_MESSAGE(again.has_value(), why);
  BOOST_TEST(!again->crypto.cpu_crypto);
}

const BadCase kBadCrypto[] = {
    {"no devargs", {{"backend", {{"kind", "cryptodev"}}}}, Errc::kInvalidArgument, "devargs"},
    {"empty devargs", {{"backend", {{"devargs", ""}}}}, Errc::kInvalidArgument, "devargs"},
    {"blk backend", {{"backend", {{"kind", "uring"}, {"devargs", "x"}}}}, Errc::kUnsupported,
     "supported for crypto"},
    {"zero sessions", {{"backend", {{"devargs", "crypto_null0"}, {"max_sessions", 0}}}},
     Errc::kOutOfRange, "max_sessions"},
    {"blk key on crypto", {{"read_only", true}}, Errc::kInvalidArgument, "unknown key 'read_only'"},
    {"unknown backend key", {{"backend", {{"devargs", "x"}, {"sessions", 4}}}},
     Errc::kInvalidArgument, "unknown key 'sessions'"},
    {"cpu_crypto not a boolean", {{"backend", {{"devargs", "x"}, {"cpu_crypto", "yes"}}}},
     Errc::kInvalidArgument, "cpu_crypto"},
};

BOOST_DATA_TEST_CASE(bad_crypto_device_is_rejected_with_reason,
                     boost::unit_test::data::make(kBadCrypto), c) {
  json j = {{"name", "c0"},
            {"type", "crypto"},
            {"socket", "/tmp/c0.sock"},
            {"backend", {{"devargs", "crypto_aesni_mb0"}}}};
  for (auto it = c.patch.begin(); it != c.patch.end(); ++it) {
    j[it.key()] = it.value();
  }
  std::string why;
  auto d = parse_device_config(j, why);
  BOOST_REQUIRE(!d.has_value());
  BOOST_TEST(static_cast<int>(d.error().code) == static_cast<int>(c.code));
  BOOST_TEST(why.find(c.why_contains) != std::string::npos, "why was: " << why);
}

BOOST_AUTO_TEST_CASE(missing_socket_and_backend_are_named) {
  std::string why;
  auto d = parse_device_config(json{{"name", "n"}, {"backend", {{"kind", "null"}}}}, why);
  BOOST_TEST(!d.has_value());
  BOOST_TEST(why == "socket: missing");
  d = parse_device_config(json{{"name", "n"}, {"socket", "/tmp/s"}}, why);
  BOOST_TEST(!d.has_value());
  BOOST_TEST(why == "backend: missing");
}

BOOST_AUTO_TEST_CASE(host_config_rejects_duplicate_names_and_sockets) {
  json dev2 = good_device();
  dev2["socket"] = "/tmp/other.sock";
  std::string why;
  auto c = parse_host_config(json{{"devices", {good_device(), dev2}}}, why);
  BOOST_TEST(!c.has_value());
  BOOST_TEST(why.find("devices[1].name") != std::string::npos);
  BOOST_TEST(static_cast<int>(c.error().code) == static_cast<int>(Errc::kAlreadyExists));

  dev2 = good_device();
  dev2["name"] = "net1";
  c = parse_host_config(json{{"devices", {good_device(), dev2}}}, why);
  BOOST_TEST(!c.has_value());
  BOOST_TEST(why.find("devices[1].socket") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(host_config_errors_locate_the_device) {
  json bad = good_device();
  bad["backend"]["kind"] = "nope";
  std::string why;
  auto c = parse_host_config(json{{"devices", {good_device(), bad}}}, why);
  BOOST_TEST(!c.has_value());
  BOOST_TEST(why.find("devices[1].backend.kind") != std::string::npos, why);
}

BOOST_AUTO_TEST_CASE(host_config_top_level_checks) {
  std::string why;
  BOOST_TEST(!parse_host_config(json{{"verbose", true}}, why).has_value());
  BOOST_TEST(why.find("unknown key 'verbose'") != std::string::npos);
  BOOST_TEST(!parse_host_config(json{{"log_level", "loud"}}, why).has_value());
  BOOST_TEST(!parse_host_config(json{{"eal_args", "-l 0"}}, why).has_value());
  BOOST_TEST(!parse_host_config(json{{"mbufs", 10}}, why).has_value());
  BOOST_TEST(!parse_host_config(json{{"busy_poll", "yes"}}, why).has_value());
  BOOST_TEST(why.find("busy_poll") != std::string::npos);
  auto c = parse_host_config(
      json{{"eal_args", {"--lcores=0@0,1@1"}}, {"mbufs", 4095}, {"busy_poll", true}}, why);
  BOOST_REQUIRE(c.has_value());
  BOOST_TEST(c->busy_poll);
  BOOST_TEST(c->eal_args.size() == 1u);
  BOOST_TEST(c->mbufs == 4095u);
  BOOST_TEST(c->control_socket == "/run/viopool/host.sock");
}

BOOST_AUTO_TEST_CASE(load_reports_path_and_invalid_json) {
  std::string why;
  auto c = load_host_config("/nonexistent/viopool.json", why);
  BOOST_TEST(!c.has_value());
  BOOST_TEST(why.find("/nonexistent/viopool.json") != std::string::npos);

  const std::string path = "/tmp/viopool-unit-config-" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream(path) << "{ \"devices\": [ ";
  }
  c = load_host_config(path, why);
  BOOST_TEST(!c.has_value());
  BOOST_TEST(why.find("not valid JSON") != std::string::npos);
  {
    std::ofstream(path) << "// comments are allowed\n{ \"log_level\": \"debug\" }";
  }
  c = load_host_config(path, why);
  BOOST_TEST(c.has_value());
  std::remove(path.c_str());
}

BOOST_AUTO_TEST_SUITE_END()
