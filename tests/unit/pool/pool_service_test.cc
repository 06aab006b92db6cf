// PoolService with the real SQLite store and the real VolumeTarget (over the
// in-process loopback) as its data plane, on a clock the test moves: carving
// (thin and thick files in a directory, extents of a block image), capacity
// and overcommit, leases (exclusive, shared, by size, renewal, expiry,
// release, reassignment, a restarted host taking its lease back), state that
// survives a restart, and the API refusing bad input without changing anything.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>

#include "pool-manager/appliance/appliance_api.h"
#include "pool-manager/appliance/volume_plane.h"
#include "pool-manager/pool/pool_service.h"
#include "pool-manager/pool/state_store.h"
#include "pool-manager/transport/loopback_transport.h"

using namespace viopool;
using namespace viopool::pool;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// A NIC port that carries nothing: the service only needs one to carve on.
class IdleNic final : public NicPort {
 public:
  const std::string& name() const noexcept override { return name_; }
  std::uint32_t rx(std::span<NicFrame>) noexcept override { return 0; }
  void release_rx() noexcept override {}
  std::uint32_t tx(std::span<const NicFrame> f) noexcept override {
    return static_cast<std::uint32_t>(f.size());
  }

 private:
  std::string name_ = "eth0";
};

struct Pool {
  fs::path dir;
  std::int64_t now = 1'000'000;
  std::unique_ptr<LoopbackTransport> host_t;
  std::unique_ptr<LoopbackTransport> target_t;
  std::unique_ptr<VolumeTarget> target;
  std::unique_ptr<VolumePlane> plane;
  std::unique_ptr<SqliteStateStore> store;
  std::unique_ptr<PoolService> svc;

  Pool() {
    char tmpl[] = "/tmp/vp-pool-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    fs::create_directory(dir / "ssd");
    std::FILE* f = std::fopen((dir / "disk.img").c_str(), "w");
    BOOST_REQUIRE(f != nullptr);
    BOOST_REQUIRE(::ftruncate(::fileno(f), 64 * kMiB) == 0);
    std::fclose(f);
    start();
  }
  ~Pool() {
    stop();
    fs::remove_all(dir);
  }

  PoolServiceOptions options() const {
    PoolServiceOptions o;
    StorageDevice ssd;
    ssd.name = "ssd";
    ssd.kind = StorageKind::kDirectory;
    ssd.path = dir / "ssd";
    ssd.capacity_bytes = 32 * kMiB;
    ssd.overcommit = 2.0;
    StorageDevice disk;
    disk.name = "disk";
    disk.kind = StorageKind::kBlock;
    disk.path = dir / "disk.img";
    disk.capacity_bytes = 64 * kMiB;
    StorageDevice eth;
    eth.name = "eth";
    eth.kind = StorageKind::kNic;
    eth.path = "net_null0";
    eth.max_slots = 2;
    eth.link_mbps = 1000;
    o.devices = {ssd, disk, eth};
    o.fabric_endpoint = "10.0.0.2:7400";
    o.max_leases_per_function = 3;
    return o;
  }

  void start() {
    auto [a, b] = LoopbackTransport::make_pair(1500);
    host_t = std::move(a);
    target_t = std::move(b);
    std::string why;
    auto t = VolumeTarget::create(*target_t, TargetOptions{}, why);
    BOOST_REQUIRE_MESSAGE(t.has_value(), why);
    target = std::move(*t);
    plane = std::make_unique<VolumePlane>(*target);
    plane->add_nic_port("eth", std::make_shared<IdleNic>(), json{{"driver", "test"}});
    auto s = SqliteStateStore::open(dir / "state.db", why);
    BOOST_REQUIRE_MESSAGE(s.has_value(), why);
    store = std::move(*s);
    auto p = PoolService::open(options(), *store, *plane, [this] { return now; }, why);
    BOOST_REQUIRE_MESSAGE(p.has_value(), why);
    svc = std::move(*p);
  }
  void stop() {
    svc.reset();
    plane.reset();
    target.reset();
    store.reset();
  }

  Result<FunctionRecord> carve(const std::string& name, const std::string& device,
                               std::uint64_t size, bool thin = false) {
    VolumeRequest r;
    r.name = name;
    r.device = device;
    r.size_bytes = size;
    r.thin = thin;
    std::string why;
    return svc->create_volume(r, why);
  }
  Result<json> lease(const std::string& host, const std::string& fn,
                     LeaseMode mode = LeaseMode::kExclusive, std::uint64_t min_size = 0) {
    LeaseRequest r;
    r.host = host;
    r.function = fn;
    r.mode = mode;
    r.min_size_bytes = min_size;
    r.ttl_ms = 5000;
    std::string why;
    return svc->acquire(r, why);
  }
};

std::uint64_t allocated(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pool_service)

BOOST_AUTO_TEST_CASE(directories_hold_thin_and_thick_volumes_within_capacity) {
  Pool p;
  auto thick = p.carve("a", "ssd", 16 * kMiB);
  BOOST_REQUIRE(thick.has_value());
  BOOST_TEST(fs::file_size(thick->path) == 16 * kMiB);
  BOOST_TEST(allocated(thick->path) >= 16 * kMiB);  // fallocated
  auto thin = p.carve("b", "ssd", 40 * kMiB, true);
  BOOST_REQUIRE(thin.has_value());
  BOOST_TEST(allocated(thin->path) < kMiB);  // sparse
  BOOST_TEST(thin->id != thick->id);
  // Thick beyond the capacity (16 + 20 > 32), or everything beyond 2x (56 + 16 > 64): refused.
  auto big = p.carve("c", "ssd", 20 * kMiB);
  BOOST_REQUIRE(!big.has_value());
  BOOST_TEST((big.error().code == Errc::kResourceExhausted));
  BOOST_TEST(!p.carve("c", "ssd", 16 * kMiB, true).has_value());
  BOOST_TEST(!fs::exists(p.dir / "ssd" / "c.img"));
  BOOST_TEST(p.carve("c", "ssd", 8 * kMiB, true).has_value());
  const json inv = p.svc->inventory();
  BOOST_TEST(inv["devices"][0]["committed"].get<std::uint64_t>() == 64 * kMiB);
  BOOST_TEST(inv["devices"][0]["thick_committed"].get<std::uint64_t>() == 16 * kMiB);
  // The data plane serves each one.
  BOOST_TEST(p.target->volumes().size() == 3u);
}

BOOST_AUTO_TEST_CASE(block_devices_are_carved_into_extents_first_fit) {
  Pool p;
  auto a = p.carve("a", "disk", 16 * kMiB);
  auto b = p.carve("b", "disk", 16 * kMiB);
  auto c = p.carve("c", "disk", 32 * kMiB);
  BOOST_REQUIRE(a.has_value());
  BOOST_REQUIRE(b.has_value());
  BOOST_REQUIRE(c.has_value());
  BOOST_TEST(a->offset_bytes == 0u);
  BOOST_TEST(b->offset_bytes == 16 * kMiB);
  BOOST_TEST(c->offset_bytes == 32 * kMiB);
  BOOST_TEST(!p.carve("d", "disk", kMiB).has_value());  // full
  BOOST_TEST(!p.carve("t", "disk", kMiB, true).has_value());  // no thin extents
  std::string why;
  BOOST_REQUIRE(p.svc->delete_function("b", why).has_value());
  auto d = p.carve("d", "disk", 8 * kMiB);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->offset_bytes == 16 * kMiB);  // the hole b left
  BOOST_TEST(p.target->volumes().size() == 3u);
}

BOOST_AUTO_TEST_CASE(bad_carving_requests_change_nothing) {
  Pool p;
  BOOST_REQUIRE(p.carve("a", "ssd", kMiB).has_value());
  std::string why;
  VolumeRequest r;
  r.device = "ssd";
  r.size_bytes = kMiB;
  for (const char* name : {"", "has space", "a"}) {
    r.name = name;
    BOOST_TEST(!p.svc->create_volume(r, why).has_value());
  }
  r.name = "x";
  r.device = "nope";
  BOOST_TEST((p.svc->create_volume(r, why).error().code == Errc::kNotFound));
  r.device = "ssd";
  r.size_bytes = 1000;  // not a multiple of the block size
  BOOST_TEST(!p.svc->create_volume(r, why).has_value());
  r.size_bytes = kMiB;
  r.block_size = 3000;
  BOOST_TEST(!p.svc->create_volume(r, why).has_value());
  BOOST_TEST(p.svc->functions()["functions"].size() == 1u);
  BOOST_TEST(p.target->volumes().size() == 1u);
}

BOOST_AUTO_TEST_CASE(exclusive_and_shared_leases) {
  Pool p;
  BOOST_REQUIRE(p.carve("v", "ssd", kMiB, true).has_value());
  BOOST_REQUIRE(p.carve("s", "ssd", kMiB, true).has_value());
  auto l = p.lease("host-a", "v");
  BOOST_REQUIRE(l.has_value());
  BOOST_TEST((*l)["uri"] == "pool://10.0.0.2:7400/v");
  BOOST_TEST((*l)["key"].get<std::string>().size() == 32u);
  BOOST_TEST((p.lease("host-b", "v").error().code == Errc::kBusy));
  BOOST_TEST((p.lease("host-b", "v", LeaseMode::kShared).error().code == Errc::kBusy));
  // Shared: up to max_leases_per_function holders, each with its own key.
  auto s1 = p.lease("host-a", "s", LeaseMode::kShared);
  auto s2 = p.lease("host-b", "s", LeaseMode::kShared);
  auto s3 = p.lease("host-c", "s", LeaseMode::kShared);
  BOOST_REQUIRE(s1.has_value());
  BOOST_REQUIRE(s2.has_value());
  BOOST_REQUIRE(s3.has_value());
  BOOST_TEST((*s1)["key"] != (*s2)["key"]);
  BOOST_TEST((p.lease("host-d", "s", LeaseMode::kShared).error().code ==
              Errc::kResourceExhausted));
  BOOST_TEST((p.lease("host-d", "s").error().code == Errc::kBusy));
  BOOST_TEST(p.target->volume_stats((*s1)["function_id"].get<std::uint32_t>())->grants == 3u);
  // A leased function cannot be deleted.
  std::string why;
  BOOST_TEST((p.svc->delete_function("v", why).error().code == Errc::kBusy));
  BOOST_TEST(why.find("host-a") != std::string::npos);
  BOOST_TEST((p.lease("bad host!", "v").error().code == Errc::kInvalidArgument));
  BOOST_TEST((p.lease("host-a", "nope").error().code == Errc::kNotFound));
}

BOOST_AUTO_TEST_CASE(a_lease_by_size_takes_the_smallest_free_volume_that_fits) {
  Pool p;
  BOOST_REQUIRE(p.carve("big", "ssd", 8 * kMiB, true).has_value());
  BOOST_REQUIRE(p.carve("mid", "ssd", 4 * kMiB, true).has_value());
  BOOST_REQUIRE(p.carve("small", "ssd", kMiB, true).has_value());
  auto l = p.lease("h", "", LeaseMode::kExclusive, 2 * kMiB);
  BOOST_REQUIRE(l.has_value());
  BOOST_TEST((*l)["function"] == "mid");
  auto l2 = p.lease("h", "", LeaseMode::kExclusive, 2 * kMiB);
  BOOST_REQUIRE(l2.has_value());
  BOOST_TEST((*l2)["function"] == "big");
  auto none = p.lease("h", "", LeaseMode::kExclusive, 2 * kMiB);
  BOOST_REQUIRE(!none.has_value());
  BOOST_TEST((none.error().code == Errc::kResourceExhausted));
}

BOOST_AUTO_TEST_CASE(leases_renew_expire_release_and_move) {
  Pool p;
  BOOST_REQUIRE(p.carve("v", "ssd", kMiB, true).has_value());
  BOOST_REQUIRE(p.carve("w", "ssd", kMiB, true).has_value());
  auto l = p.lease("host-a", "v");
  auto m = p.lease("host-a", "w");
  BOOST_REQUIRE(l.has_value());
  BOOST_REQUIRE(m.has_value());
  const auto id = (*l)["id"].get<std::uint64_t>();
  const auto fid = (*l)["function_id"].get<std::uint32_t>();
  std::string why;
  p.now += 4000;
  BOOST_REQUIRE(p.svc->renew(0, "host-a", why).has_value());  // both, by host
  p.now += 4000;
  BOOST_TEST(p.svc->expire() == 0u);  // renewed at +4 s: valid until +9 s
  BOOST_TEST((p.svc->renew(id, "host-b", why).error().code == Errc::kNotFound));
  BOOST_REQUIRE(p.svc->renew(id, "", why).has_value());
  p.now += 2000;
  BOOST_TEST(p.svc->expire() == 1u);  // w was not renewed since +4 s
  BOOST_TEST(p.svc->leases("")["leases"].size() == 1u);
  BOOST_TEST(p.lease("host-b", "w").has_value());  // freed: another host takes it
  // Reassigned: a new host and a new key; the old key no longer opens channels.
  auto moved = p.svc->reassign(id, "host-c", why);
  BOOST_REQUIRE(moved.has_value());
  BOOST_TEST((*moved)["host"] == "host-c");
  BOOST_TEST((*moved)["key"] != (*l)["key"]);
  BOOST_TEST(p.target->volume_stats(fid)->grants == 1u);
  BOOST_TEST((p.svc->release(id, "host-a", why).error().code == Errc::kNotFound));  // moved
  BOOST_REQUIRE(p.svc->release(id, "host-c", why).has_value());
  BOOST_TEST(p.target->volume_stats(fid)->grants == 0u);
  BOOST_TEST((p.svc->release(id, "", why).error().code == Errc::kNotFound));
  BOOST_TEST(p.svc->delete_function("v", why).has_value());
  BOOST_TEST(!fs::exists(p.dir / "ssd" / "v.img"));
}

BOOST_AUTO_TEST_CASE(a_host_asking_again_gets_a_new_lease_in_place_of_its_old_one) {
  Pool p;
  BOOST_REQUIRE(p.carve("v", "ssd", kMiB, true).has_value());
  auto l1 = p.lease("host-a", "v");
  auto l2 = p.lease("host-a", "v");
  BOOST_REQUIRE(l1.has_value());
  BOOST_REQUIRE(l2.has_value());
  BOOST_TEST((*l1)["id"] != (*l2)["id"]);
  const auto leases = p.svc->leases("host-a")["leases"];
  BOOST_REQUIRE(leases.size() == 1u);
  BOOST_TEST(leases[0]["id"] == (*l2)["id"]);
  BOOST_TEST(p.target->volume_stats((*l2)["function_id"].get<std::uint32_t>())->grants == 1u);
}

BOOST_AUTO_TEST_CASE(carvings_and_leases_survive_a_restart) {
  Pool p;
  auto a = p.carve("a", "ssd", 2 * kMiB);
  auto b = p.carve("b", "disk", 4 * kMiB);
  BOOST_REQUIRE(a.has_value());
  BOOST_REQUIRE(b.has_value());
  auto la = p.lease("host-a", "a", LeaseMode::kExclusive);
  auto lb = p.lease("host-b", "b", LeaseMode::kShared);
  BOOST_REQUIRE(la.has_value());
  BOOST_REQUIRE(lb.has_value());
  std::string why;
  LeaseRequest r;
  r.host = "host-b";
  r.function = "a";
  r.ttl_ms = 60000;
  BOOST_TEST(!p.svc->acquire(r, why).has_value());  // a is exclusive
  p.stop();
  p.now += 3000;  // la and lb (5 s) are still valid
  p.start();
  const json fns = p.svc->functions()["functions"];
  BOOST_REQUIRE(fns.size() == 2u);
  BOOST_TEST(fns[0]["name"] == "a");
  BOOST_TEST(fns[0]["state"] == "leased");
  BOOST_TEST(fns[1]["offset"] == b->offset_bytes);
  BOOST_TEST(p.svc->leases("")["leases"].size() == 2u);
  BOOST_TEST(p.target->volume_stats(a->id)->grants == 1u);
  // New ids continue after the old ones.
  auto c = p.carve("c", "ssd", kMiB, true);
  BOOST_REQUIRE(c.has_value());
  BOOST_TEST(c->id > b->id);
  auto lc = p.lease("host-c", "c");
  BOOST_REQUIRE(lc.has_value());
  BOOST_TEST((*lc)["id"].get<std::uint64_t>() > (*lb)["id"].get<std::uint64_t>());
  // Down past their expiry: their holders could not renew meanwhile, so
  // each lease has one TTL from the start to be renewed.
  p.stop();
  p.now += 10000;
  p.start();
  BOOST_TEST(p.svc->leases("")["leases"].size() == 3u);
  BOOST_TEST(p.target->volume_stats(a->id)->grants == 1u);
  BOOST_TEST(p.svc->expire() == 0u);
  p.now += 2000;
  std::string err;
  BOOST_TEST(p.svc->renew((*la)["id"].get<std::uint64_t>(), "host-a", err).has_value());
  // The holders of b and c are gone: their leases run out one TTL after the start.
  p.now += 3001;
  BOOST_TEST(p.svc->expire() == 2u);
  BOOST_TEST(p.svc->leases("")["leases"].size() == 1u);
  BOOST_TEST(p.target->volume_stats(a->id)->grants == 1u);
  BOOST_TEST(p.target->volume_stats(b->id)->grants == 0u);
  // And after another restart the renewed one is still there.
  p.stop();
  p.start();
  BOOST_TEST(p.svc->leases("host-a")["leases"].size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_function_whose_device_left_the_inventory_is_kept_and_unavailable) {
  Pool p;
  BOOST_REQUIRE(p.carve("a", "ssd", kMiB, true).has_value());
  p.stop();
  fs::remove(p.dir / "ssd" / "a.img");  // its backing is gone
  p.start();
  const json f = p.svc->functions()["functions"][0];
  BOOST_TEST(f["state"] == "unavailable");
  BOOST_TEST(f["problem"].get<std::string>().find("a.img") != std::string::npos);
  BOOST_TEST((p.lease("h", "a").error().code == Errc::kBusy));
}

BOOST_AUTO_TEST_CASE(a_newer_schema_is_refused) {
  char tmpl[] = "/tmp/vp-db-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ::close(fd);
  std::string why;
  {
    auto s = SqliteStateStore::open(tmpl, why);
    BOOST_REQUIRE(s.has_value());
  }
  const std::string cmd = std::string("python3 -c \"import sqlite3; c=sqlite3.connect('") + tmpl +
                          "'); c.execute('PRAGMA user_version=99'); c.commit()\"";
  BOOST_REQUIRE(std::system(cmd.c_str()) == 0);
  auto s = SqliteStateStore::open(tmpl, why);
  BOOST_REQUIRE(!s.has_value());
  BOOST_TEST((s.error().code == Errc::kUnsupported));
  BOOST_TEST(why.find("99") != std::string::npos);
  ::unlink(tmpl);
  ::unlink((std::string(tmpl) + "-wal").c_str());
  ::unlink((std::string(tmpl) + "-shm").c_str());
}

BOOST_AUTO_TEST_CASE(the_api_refuses_bad_input_with_4xx_and_changes_nothing) {
  Pool p;
  auto routes = appliance_routes(*p.svc, *p.target);
  const auto call = [&](const std::string& op, const json& body) { return routes.call(op, body); };
  BOOST_TEST(call("volume_create", {{"name", "a"}, {"device", "ssd"}, {"size", "4M"}}).status ==
             201);
  const json before = p.svc->functions();
  const std::vector<std::pair<std::string, json>> bad = {
      {"volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", "1M"}, {"colour", "red"}}},
      {"volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", -5}}},
      {"volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", "-5M"}}},
      {"volume_create", {{"name", "b"}, {"device", "ssd"}}},
      {"volume_create", {{"name", "a"}, {"device", "ssd"}, {"size", "1M"}}},
      {"volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", "1T"}}},
      {"volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", "1M"}, {"queues", 0}}},
      {"volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", "1M"}, {"iops_limit", -1}}},
      {"volume_create", {{"name", "b"}, {"device", "tape"}, {"size", "1M"}}},
      {"lease_acquire", {{"host", "h"}}},
      {"lease_acquire", {{"host", "h"}, {"function", "a"}, {"class", "volume"}}},
      {"lease_acquire", {{"host", "h"}, {"function", "a"}, {"ttl_ms", 5}}},
      {"lease_acquire", {{"host", "h"}, {"function", "a"}, {"mode", "sometimes"}}},
      {"lease_release", {{"lease_id", -1}}},
      {"lease_release", {{"lease_id", 42}}},
      {"lease_renew", json::object()},
      {"lease_reassign", {{"lease_id", 1}}},
      {"function_delete", {{"name", "zzz"}}},
      {"function_show", {{"name", 5}}},
      {"no_such_op", json::object()},
  };
  for (const auto& [op, body] : bad) {
    const auto r = call(op, body);
    BOOST_TEST_CONTEXT(op << " " << body.dump()) {
      BOOST_TEST(r.status >= 400);
      BOOST_TEST(r.status < 600);
      BOOST_TEST(r.body["error"]["message"].get<std::string>().size() > 0u);
    }
  }
  BOOST_TEST(call("volume_create", {{"name", "a"}, {"device", "ssd"}, {"size", "1M"}}).status ==
             409);
  BOOST_TEST(call("volume_create", {{"name", "b"}, {"device", "ssd"}, {"size", "1T"}}).status ==
             507);
  BOOST_TEST(p.svc->functions() == before);
  BOOST_TEST(p.svc->leases("")["leases"].empty());
  auto ok = call("lease_acquire", {{"host", "h"}, {"function", "a"}});
  BOOST_TEST(ok.status == 201);
  BOOST_TEST(call("lease_acquire", {{"host", "g"}, {"function", "a"}}).status == 409);
  BOOST_TEST(call("lease_list", json::object()).body["leases"][0].count("key") == 0u);
}

BOOST_AUTO_TEST_CASE(vnics_are_carved_on_nic_ports_leased_by_class_and_kept) {
  Pool p;
  std::string why;
  VnicRequest r;
  r.name = "n1";
  r.device = "eth";
  r.mac = "02:AA:00:00:00:01";
  r.vlan = 10;
  r.rate_mbps = 600;
  auto f = p.svc->create_vnic(r, why);
  BOOST_REQUIRE_MESSAGE(f.has_value(), why);
  BOOST_TEST(f->mac == "02:aa:00:00:00:01");  // kept in one spelling
  // Over the link's committed capacity; the same station twice; storage asked for a vNIC.
  r.name = "n2";
  r.mac.clear();
  BOOST_TEST(!p.svc->create_vnic(r, why).has_value());
  BOOST_TEST(why.find("1000 Mb/s") != std::string::npos);
  r.rate_mbps = 100;
  r.mac = "02:aa:00:00:00:01";
  BOOST_TEST(!p.svc->create_vnic(r, why).has_value());
  r.mac.clear();
  r.device = "ssd";
  BOOST_TEST(!p.svc->create_vnic(r, why).has_value());
  r.device = "eth";
  auto g = p.svc->create_vnic(r, why);
  BOOST_REQUIRE_MESSAGE(g.has_value(), why);
  BOOST_TEST(g->mac == "02:76:70:00:00:02");  // made from its function id
  r.name = "n3";
  BOOST_TEST(!p.svc->create_vnic(r, why).has_value());  // both slots carved
  BOOST_TEST(why.find("2 vNICs") != std::string::npos);
  // The inventory lists the port with what the data plane found.
  const json inv = p.svc->inventory();
  bool listed = false;
  for (const auto& d : inv["devices"]) {
    if (d["name"] == "eth") {
      listed = true;
      BOOST_TEST(d["committed_mbps"] == 700);
      BOOST_TEST(d["port"]["driver"] == "test");
    }
  }
  BOOST_TEST(listed);
  // Leased by class, the lease tells the MAC; kept across a restart.
  LeaseRequest lr;
  lr.host = "h1";
  lr.cls = FunctionClass::kVnic;
  auto l = p.svc->acquire(lr, why);
  BOOST_REQUIRE_MESSAGE(l.has_value(), why);
  BOOST_TEST((*l)["class"] == "vnic");
  BOOST_TEST((*l)["mac"] == "02:aa:00:00:00:01");
  p.stop();
  p.start();
  auto n1 = p.svc->function("n1", why);
  BOOST_REQUIRE(n1.has_value());
  BOOST_TEST((*n1)["vlan"] == 10);
  BOOST_TEST((*n1)["state"] == "leased");
  BOOST_TEST(p.target->volume_stats(f->id).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
