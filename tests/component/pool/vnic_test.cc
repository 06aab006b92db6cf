// Pooled vNICs end to end: viopool-appliance in an "appliance" namespace
// owns a NIC port (net_af_packet on a veth whose peer sits in a "wire"
// namespace, the network) and carves vNICs from it; viopool-host in
// "host-a" and "host-b" namespaces leases one each at device_add and serves
// it to dpdk-testpmd (virtio_user, icmpecho: the VM, answering ARP and
// ping). The wire namespace pings each VM through its vNIC: untagged, and on
// VLAN 100, which the appliance adds and strips. Frames reach only the vNIC
// they are for, and counters on both sides move.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/ovs.h"
#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using nlohmann::json;
using namespace viopool::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApplianceIp = "10.84.0.254";
constexpr const char* kApi = "10.84.0.254:7480";
constexpr const char* kMacA = "02:00:00:84:0a:01";
constexpr const char* kMacB = "02:00:00:84:0b:01";

struct Site {
  TempDir dir;
  std::unique_ptr<OvsProc> ovs;
  std::string tag = std::to_string(::getpid());
  NetNs appl_ns{"vnp" + tag};
  NetNs a_ns{"vna" + tag};
  NetNs b_ns{"vnb" + tag};
  NetNs wire{"vnw" + tag};
  std::string nic = "vn" + tag + "n";  // the appliance's NIC port
  Process appliance;

  explicit Site(bool with_ovs = false) {
    if (with_ovs) {
      ovs = std::make_unique<OvsProc>(dir, true);
    }
    BOOST_REQUIRE(appl_ns.exec("ip link add br0 type bridge && ip addr add " +
                               std::string(kApplianceIp) + "/24 dev br0 && ip link set br0 up" +
                               " && ip link set lo up") == 0);
    int n = 1;
    for (const NetNs* ns : {&a_ns, &b_ns}) {
      const std::string h = "vn" + tag + "h" + std::to_string(n);
      const std::string p = "vn" + tag + "p" + std::to_string(n);
      BOOST_REQUIRE(run_shell("ip link add " + h + " netns " + ns->name() + " type veth peer name " +
                              p + " netns " + appl_ns.name()) == 0);
      BOOST_REQUIRE(ns->exec("ip addr add 10.84.0." + std::to_string(n) + "/24 dev " + h +
                             " && ip link set " + h + " up && ip link set lo up") == 0);
      BOOST_REQUIRE(appl_ns.exec("ip link set " + p + " master br0 && ip link set " + p + " up") ==
                    0);
      ++n;
    }
    // The network: 10.85.0.0/24 untagged; VLAN 100 is spoken by
    // vlan_ping.py (no 8021q module here for a VLAN interface).
    BOOST_REQUIRE(run_shell("ip link add wire0 netns " + wire.name() + " type veth peer name " +
                            nic + " netns " + appl_ns.name()) == 0);
    BOOST_REQUIRE(wire.exec("ip link set wire0 up && ip addr add 10.85.0.1/24 dev wire0 && "
                            "ip link set lo up") == 0);
    BOOST_REQUIRE(appl_ns.exec("ip link set " + nic + " up") == 0);
    json cfg = {{"listen", std::string(kApplianceIp) + ":7400"},
                {"api", kApi},
                {"state", dir.file("appliance.db")},
                {"lease_ttl_ms", 3000},
                {"inventory",
                 {{{"name", "uplink"},
                   {"kind", "nic"},
                   {"devargs", "net_af_packet0,iface=" + nic},
                   {"vnics", 8},
                   {"link_mbps", 1000}}}}};
    if (with_ovs) {
      cfg["inventory"][0]["ovs"] = {{"bridge", "br0"},
                                    {"db", "unix:" + dir.file("db.sock")},
                                    {"socket_dir", dir.file("socks")},
                                    {"offload", true},
                                    {"rundir", dir.path()}};
    }
    write_file(dir.file("appliance.json"), cfg.dump(2));
    appliance = Process({build_path("pool-manager/appliance/viopool-appliance"), "--config",
                         dir.file("appliance.json"), "--no-huge"},
                        SpawnOptions{dir.file("appliance.log"), appl_ns.name()});
    const bool up = wait_until(
        [&] { return appliance.log().find("control API listening") != std::string::npos; }, 20s);
    BOOST_REQUIRE_MESSAGE(up, "viopool-appliance did not start:\n" << appliance.log());
  }

  int pool(const std::string& args, json& out, std::string* err = nullptr) const {
    return viopoolctl(dir, a_ns, std::string("-a ") + kApi + " pool " + args, out, err);
  }
  json pool(const std::string& args) const {
    json out;
    std::string err;
    BOOST_REQUIRE_MESSAGE(pool(args, out, &err) == 0, "viopoolctl pool " << args << ": " << err);
    return out;
  }

  json vnic_device(const std::string& name, const std::string& vnic) const {
    return {{"name", name},
            {"type", "net"},
            {"socket", dir.file(name + ".vhost")},
            {"backend", {{"kind", "pool"}, {"appliance", kApi}, {"vnic", vnic}}}};
  }

  // A VM on device `dev`'s socket: testpmd answering ARP and ping as `mac`.
  Process vm(const std::string& dev, const std::string& mac) const {
    TestpmdOptions t;
    t.vhost_socket = dir.file(dev + ".vhost");
    t.forward_mode = "icmpecho";
    t.tx_first = false;
    t.mac = mac;
    t.tag = "vm-" + dev;
    return start_testpmd(dir, t);
  }

  // Tagged pings of a station's MAC on a VLAN, from the wire namespace.
  bool vlan_ping(const std::string& mac, int vlan, int count = 3) const {
    return wire.exec(std::string(VIOPOOL_SOURCE_DIR) +
                     "/tests/component/pool/vlan_ping.py wire0 " + mac + " " +
                     std::to_string(vlan) + " 10.86.0.1 10.86.0.2 " + std::to_string(count)) == 0;
  }

  // Pings from the wire namespace; true if every echo came back.
  bool ping(const std::string& ip, int count = 3) const {
    return wire.exec("ping -c " + std::to_string(count) + " -i 0.2 -W 2 " + ip + " > /dev/null") ==
           0;
  }
};

std::uint64_t stat_of(const Site& s, const std::string& fn, const char* key) {
  return s.pool("show " + fn).value("stats", json::object()).value(key, 0ull);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pool_vnics)

BOOST_AUTO_TEST_CASE(vms_reach_the_wire_through_pooled_vnics_untagged_and_on_a_vlan) {
  Site s;
  const json inv = s.pool("inventory");
  const json port = inv["devices"][0];
  BOOST_TEST(port.value("kind", "") == "nic");
  BOOST_TEST(port["port"].value("driver", "") == "net_af_packet");
  BOOST_TEST(port["port"].contains("rte_flow"));  // probed: net_af_packet has none
  BOOST_REQUIRE(s.pool(std::string("carve-vnic va --device uplink --mac ") + kMacA +
                       " --rate-mbps 100")["mac"] == kMacA);
  BOOST_REQUIRE(s.pool(std::string("carve-vnic vb --device uplink --vlan 100 --mac ") +
                       kMacB)["vlan"] == 100);

  HostProc a(s.dir, {{"host_id", "host-a"}, {"devices", json::array()}}, "host-a",
             s.a_ns.name());
  HostProc b(s.dir, {{"host_id", "host-b"}, {"devices", json::array()}}, "host-b",
             s.b_ns.name());
  auto r = a.api("device_add", s.vnic_device("na", "va"));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  BOOST_TEST(r.body["vnic"].value("mac", "") == kMacA);
  BOOST_TEST(r.body["lease"].value("function", "") == "va");
  r = b.api("device_add", s.vnic_device("nb", "vb"));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  BOOST_TEST(r.body["vnic"].value("vlan", 0) == 100);

  // The VMs: testpmd answering ARP and ping on each vNIC, with its MAC.
  Process vm_a = s.vm("na", kMacA);
  Process vm_b = s.vm("nb", kMacB);

  // Untagged: 10.85.0.0/24 reaches VM A only.
  BOOST_TEST_MESSAGE("ping VM A");
  BOOST_TEST_REQUIRE(wait_until([&] { return s.ping("10.85.0.2", 1); }, 20s),
                     "no echo from VM A; appliance:\n"
                         << s.appliance.log() << "\nhost A:\n"
                         << a.process().log() << "\nVM A:\n"
                         << vm_a.log());
  BOOST_TEST(s.ping("10.85.0.2", 5));
  // VLAN 100: the appliance strips the tag towards VM B and adds it back.
  BOOST_TEST_MESSAGE("ping VM B on VLAN 100");
  BOOST_TEST(wait_until([&] { return s.vlan_ping(kMacB, 100, 1); }, 20s));
  BOOST_TEST(s.vlan_ping(kMacB, 100, 5));
  BOOST_TEST(s.wire.exec("ip neigh show 10.85.0.2 | grep -q " + std::string(kMacA)) == 0);
  // Untagged frames for VM B's MAC, and tagged ones of another VLAN, do not
  // reach it.
  BOOST_TEST(!s.vlan_ping(kMacB, 200, 1));

  // Both directions counted at the appliance and at the hosts.
  BOOST_TEST(stat_of(s, "va", "tx_packets") >= 5u);
  BOOST_TEST(stat_of(s, "va", "rx_packets") >= 5u);
  BOOST_TEST(stat_of(s, "vb", "tx_packets") >= 5u);
  BOOST_TEST(stat_of(s, "va", "spoofed") == 0u);
  BOOST_TEST(a.total("na", "tx_packets") >= 5u);
  BOOST_TEST(a.total("na", "rx_packets") >= 5u);
  // VM A's MAC is only on the untagged network: VLAN 100 never reached it.
  // (The wire's own ARP probes may still reach VM A meanwhile: compare
  // against what was sent.)
  const auto unknown = s.pool("stats")["fabric"].value("nic_unknown", 0ull);
  const auto a_rx = stat_of(s, "va", "rx_packets");
  BOOST_TEST(!s.vlan_ping(kMacA, 100, 3));
  BOOST_TEST(s.pool("stats")["fabric"].value("nic_unknown", 0ull) >= unknown + 3);
  BOOST_TEST(stat_of(s, "va", "rx_packets") < a_rx + 3);
  const json st = s.pool("stats")["fabric"];
  BOOST_TEST(st.value("nic_rx", 0ull) > 0u);
  BOOST_TEST(st.value("nic_tx", 0ull) > 0u);

  vm_a.stop();
  vm_b.stop();
  BOOST_TEST(a.api("device_del", {{"name", "na"}}).status == 200);
  BOOST_TEST(s.pool("leases --host host-a").value("leases", json::array()).empty());
}

// The slow path: the appliance attaches its uplink and each vNIC to an OVS
// bridge as vhost-user ports, so OVS switches the vNICs' traffic and its
// policy applies: a drop rule added with ovs-ofctl stops the pings, and
// removing it lets them through again.
BOOST_AUTO_TEST_CASE(an_ovs_bridge_switches_pooled_vnics_and_its_policy_holds) {
  Site s(true);
  BOOST_REQUIRE(s.pool(std::string("carve-vnic va --device uplink --mac ") + kMacA)["mac"] ==
                kMacA);
  const std::string ports = s.dir.file("ports.out");
  BOOST_REQUIRE(s.ovs->vsctl("list-ports br0 > " + ports) == 0);
  BOOST_TEST(read_file(ports) == "uplink\nva\n");
  HostProc a(s.dir, {{"host_id", "host-a"}, {"devices", json::array()}}, "host-a",
             s.a_ns.name());
  auto r = a.api("device_add", s.vnic_device("na", "va"));
  BOOST_REQUIRE_MESSAGE(r.status == 201, r.body.dump());
  Process vm = s.vm("na", kMacA);
  BOOST_TEST_REQUIRE(wait_until([&] { return s.ping("10.85.0.2", 1); }, 30s),
                     "no echo through OVS; appliance:\n"
                         << s.appliance.log() << "\nvswitchd:\n"
                         << read_file(s.dir.file("vswitchd.log")));
  BOOST_TEST(s.ping("10.85.0.2", 3));
  // Operator policy in OVS: ICMP from the wire to the VM is dropped.
  BOOST_REQUIRE(s.ovs->ofctl("add-flow", "'priority=100,icmp,nw_dst=10.85.0.2,actions=drop'") == 0);
  // (OVS revalidates the flows its datapath cached a moment later.)
  BOOST_TEST(wait_until([&] { return !s.ping("10.85.0.2", 1); }, 10s));
  BOOST_TEST(!s.ping("10.85.0.2", 2));
  // The appliance's agent followed the bridge: the drop rule has an
  // rte_flow form, but this NIC (net_af_packet) takes no rules, so OVS
  // enforces it, and the refusal is reported with the NIC's reason.
  json show;
  BOOST_TEST(wait_until(
      [&] {
        if (viopoolctl(s.dir, s.a_ns, std::string("-a ") + kApi + " offload --nic uplink show",
                       show) != 0 ||
            !show.is_object()) {
          return false;
        }
        for (const auto& x : show.value("rules", json::array())) {
          if (x.value("rule", "").find("nw_dst=10.85.0.2") != std::string::npos) {
            return x.value("state", "") == "refused";
          }
        }
        return false;
      },
      10s));
  BOOST_TEST_MESSAGE(show.dump(2));
  BOOST_TEST(s.pool("stats")["fabric"].value("nic_offloaded", 1ull) == 0u);
  BOOST_REQUIRE(s.ovs->ofctl("del-flows", "'icmp,nw_dst=10.85.0.2'") == 0);
  BOOST_TEST(wait_until([&] { return s.ping("10.85.0.2", 1); }, 10s));
  // The frames went through OVS: its vNIC port counted them.
  // (OVS updates interface statistics every few seconds.)
  const std::string st = s.dir.file("va.stats");
  BOOST_TEST(wait_until(
      [&] {
        return s.ovs->vsctl("get Interface va statistics:rx_packets > " + st) == 0 &&
               std::stoull("0" + read_file(st)) >= 3u;
      },
      15s));
  vm.stop();
  // Deleting the vNIC takes its port off the bridge.
  BOOST_TEST(a.api("device_del", {{"name", "na"}}).status == 200);
  json out;
  BOOST_TEST(s.pool("delete va", out) == 0);
  BOOST_REQUIRE(s.ovs->vsctl("list-ports br0 > " + ports) == 0);
  BOOST_TEST(read_file(ports) == "uplink\n");
}

BOOST_AUTO_TEST_CASE(vnic_carving_refuses_what_the_port_cannot_hold) {
  Site s;
  json out;
  std::string err;
  BOOST_TEST(s.pool("carve-vnic x --device uplink --mac 01:00:5e:00:00:01", out, &err) != 0);
  BOOST_TEST(err.find("unicast") != std::string::npos);
  BOOST_TEST(s.pool("carve-vnic x --device uplink --vlan 4095", out, &err) != 0);
  BOOST_TEST(s.pool("carve-vnic x --device uplink --mtu 9000", out, &err) != 0);
  BOOST_TEST(err.find("mtu") != std::string::npos);
  BOOST_TEST(s.pool("carve-vnic x --device uplink --rate-mbps 100 --peak-mbps 50", out, &err) != 0);
  BOOST_REQUIRE(s.pool("carve-vnic x --device uplink --mac 02:00:00:00:00:09 --rate-mbps 800")
                    .value("name", "") == "x");
  // The same MAC on the same VLAN twice, and committed rates above the link.
  BOOST_TEST(s.pool("carve-vnic y --device uplink --mac 02:00:00:00:00:09", out, &err) != 0);
  BOOST_TEST(err.find("already") != std::string::npos);
  BOOST_TEST(s.pool("carve-vnic y --device uplink --rate-mbps 300", out, &err) != 0);
  BOOST_TEST(err.find("1000 Mb/s") != std::string::npos);
  // The same MAC on another VLAN is another station.
  BOOST_TEST(s.pool("carve-vnic y --device uplink --mac 02:00:00:00:00:09 --vlan 7")
                 .value("vlan", 0) == 7);
  // A default MAC is made for a vNIC that names none.
  const json z = s.pool("carve-vnic z --device uplink");
  BOOST_TEST(z.value("mac", "").rfind("02:76:70:", 0) == 0u);
  // Volumes are not carved from NIC ports, nor vNICs from storage.
  BOOST_TEST(s.pool("carve v --device uplink --size 1M", out, &err) != 0);
  BOOST_TEST(err.find("NIC port") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
