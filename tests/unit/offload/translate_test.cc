// OpenFlow rules → rte_flow rules, table-driven: each rule as ovs-ofctl
// writes it, and the testpmd `flow create` lines it must become (or the
// reasons it cannot be offloaded). Then priority planning: whatever the
// NIC's number of priority levels, a rule of higher OpenFlow priority wins.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <random>

#include "offload/ovs/ofctl_flow.h"
#include "offload/translate/flow_dump.h"
#include "offload/translate/translator.h"

using namespace viopool;
using namespace viopool::offload;

namespace {

// Two uplinks (DPDK ports 0 and 1); vNICs vm1 and vm2 on port 0's queues 1
// and 2 (vm1 marked 101), vm3 on port 1's queue 1.
PortMap ports() {
  PortMap m;
  m.ports.push_back({"up0", 1, 0, std::nullopt, std::nullopt, std::nullopt});
  m.ports.push_back({"up1", 2, 1, std::nullopt, std::nullopt, std::nullopt});
  m.ports.push_back({"vm1", 10, 0, 1, 101, Mac{0x52, 0x54, 0, 0, 0, 1}});
  m.ports.push_back({"vm2", 11, 0, 2, std::nullopt, Mac{0x52, 0x54, 0, 0, 0, 2}});
  m.ports.push_back({"vm3", 12, 1, 1, std::nullopt, Mac{0x52, 0x54, 0, 0, 0, 3}});
  return m;
}

struct Case {
  const char* flow;
  std::vector<std::string> dumps;    // expected, in order
  std::vector<std::string> reasons;  // expected when not offloadable
};

std::ostream& operator<<(std::ostream& o, const Case& c) { return o << c.flow; }

const std::string P0 = "flow create 0 group 0 priority 0 ingress pattern ";
const std::string P1 = "flow create 1 group 0 priority 0 ingress pattern ";
const std::string kVm1 = "mark id 101 / queue index 1 / count / end";
const std::string kVm2 = "queue index 2 / count / end";
const std::string kDrop = "drop / count / end";

const Case kCases[] = {
    // Matches.
    {"priority=100,in_port=1,actions=drop", {P0 + "eth / end actions " + kDrop}, {}},
    {"in_port=1,dl_dst=52:54:00:00:00:01,actions=output:10",
     {P0 + "eth dst is 52:54:00:00:00:01 / end actions " + kVm1}, {}},
    {"in_port=up0,dl_src=00:11:22:00:00:00/ff:ff:ff:00:00:00,actions=output:vm2",
     {P0 + "eth src spec 00:11:22:00:00:00 src mask ff:ff:ff:00:00:00 / end actions " + kVm2}, {}},
    {"in_port=1,arp,actions=output:11", {P0 + "eth type is 0x806 / end actions " + kVm2}, {}},
    {"in_port=1,ip,actions=output:10", {P0 + "eth / ipv4 / end actions " + kVm1}, {}},
    {"in_port=1,ip,nw_src=10.0.0.0/24,actions=drop",
     {P0 + "eth / ipv4 src spec 10.0.0.0 src mask 255.255.255.0 / end actions " + kDrop}, {}},
    {"in_port=1,ip,nw_dst=192.168.1.7,actions=output:11",
     {P0 + "eth / ipv4 dst is 192.168.1.7 / end actions " + kVm2}, {}},
    {"in_port=1,ip,nw_src=10.1.0.0/255.255.0.0,nw_dst=10.2.3.4,nw_proto=47,actions=drop",
     {P0 + "eth / ipv4 src spec 10.1.0.0 src mask 255.255.0.0 dst is 10.2.3.4 proto is 47 / end "
           "actions " + kDrop},
     {}},
    {"in_port=1,tcp,tp_dst=80,actions=output:10",
     {P0 + "eth / ipv4 / tcp dst is 80 / end actions " + kVm1}, {}},
    {"in_port=1,udp,tp_src=53,tp_dst=0x1000/0xf000,actions=output:11",
     {P0 + "eth / ipv4 / udp src is 53 dst spec 0x1000 dst mask 0xf000 / end actions " + kVm2}, {}},
    {"in_port=1,tcp,tcp_flags=+syn-ack,actions=drop",
     {P0 + "eth / ipv4 / tcp flags spec 0x2 flags mask 0x12 / end actions " + kDrop}, {}},
    {"in_port=1,icmp,icmp_type=8,icmp_code=0,actions=drop",
     {P0 + "eth / ipv4 / icmp type is 8 code is 0 / end actions " + kDrop}, {}},
    {"in_port=1,ipv6,ipv6_src=2001:db8::/32,actions=drop",
     {P0 + "eth / ipv6 src spec 2001:db8:: src mask ffff:ffff:: / end actions " + kDrop}, {}},
    {"in_port=1,tcp6,ipv6_dst=2001:db8::1,tp_dst=443,actions=output:10",
     {P0 + "eth / ipv6 dst is 2001:db8::1 / tcp dst is 443 / end actions " + kVm1}, {}},
    {"in_port=1,icmp6,icmpv6_type=135,actions=output:11",
     {P0 + "eth / ipv6 / icmp6 type is 135 / end actions " + kVm2}, {}},
    {"in_port=1,ipv6,ipv6_label=0x12345,actions=drop",
     {P0 + "eth / ipv6 flow is 0x12345 / end actions " + kDrop}, {}},
    {"in_port=1,ip,ip_dscp=46,actions=output:10",
     {P0 + "eth / ipv4 tos spec 0xb8 tos mask 0xfc / end actions " + kVm1}, {}},
    {"in_port=1,ip,nw_tos=32,actions=drop",
     {P0 + "eth / ipv4 tos spec 0x20 tos mask 0xfc / end actions " + kDrop}, {}},
    // VLANs.
    {"in_port=1,dl_vlan=100,actions=output:10",
     {P0 + "eth / vlan vid is 100 / end actions " + kVm1}, {}},
    {"in_port=1,dl_vlan=100,dl_vlan_pcp=5,ip,actions=drop",
     {P0 + "eth / vlan vid is 100 pcp is 5 / ipv4 / end actions " + kDrop}, {}},
    {"in_port=1,vlan_tci=0x0000/0x1fff,actions=drop",
     {P0 + "eth has_vlan is 0 / end actions " + kDrop}, {}},
    {"in_port=1,dl_vlan=0xffff,ip,actions=drop",
     {P0 + "eth has_vlan is 0 / ipv4 / end actions " + kDrop}, {}},
    {"in_port=1,vlan_tci=0x1064/0x1fff,actions=drop",
     {P0 + "eth / vlan vid is 100 / end actions " + kDrop}, {}},
    {"in_port=1,dl_vlan=10,arp,actions=drop",
     {P0 + "eth / vlan vid is 10 inner_type is 0x806 / end actions " + kDrop}, {}},
    {"in_port=1,dl_vlan=100,actions=strip_vlan,output:10",
     {P0 + "eth / vlan vid is 100 / end actions of_pop_vlan / " + kVm1}, {}},
    {"in_port=1,vlan_tci=0/0x1fff,actions=mod_vlan_vid:200,output:2",
     {P0 + "eth has_vlan is 0 / end actions of_push_vlan ethertype 0x8100 / of_set_vlan_pcp "
           "vlan_pcp 0 / of_set_vlan_vid vlan_vid 200 / port_id id 1 / count / end"},
     {}},
    {"in_port=1,dl_vlan=100,actions=mod_vlan_vid:200,output:11",
     {P0 + "eth / vlan vid is 100 / end actions of_set_vlan_vid vlan_vid 200 / " + kVm2}, {}},
    {"in_port=1,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:2",
     {P0 + "eth / end actions of_push_vlan ethertype 0x8100 / of_set_vlan_vid vlan_vid 100 / "
           "port_id id 1 / count / end"},
     {}},
    {"in_port=1,dl_vlan=5,actions=mod_vlan_pcp:3,output:10",
     {P0 + "eth / vlan vid is 5 / end actions of_set_vlan_pcp vlan_pcp 3 / " + kVm1}, {}},
    // Rewrites, meters.
    {"in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:01,mod_dl_dst:02:00:00:00:00:02,output:2",
     {P0 + "eth / ipv4 / end actions set_mac_src mac_addr 02:00:00:00:00:01 / set_mac_dst "
           "mac_addr 02:00:00:00:00:02 / port_id id 1 / count / end"},
     {}},
    {"in_port=1,ip,actions=set_field:10.0.0.9->ip_dst,dec_ttl,output:11",
     {P0 + "eth / ipv4 / end actions set_ipv4_dst ipv4_addr 10.0.0.9 / dec_ttl / " + kVm2}, {}},
    {"in_port=1,tcp,actions=mod_tp_dst:8080,mod_nw_src:1.2.3.4,output:10",
     {P0 + "eth / ipv4 / tcp / end actions set_tp_dst port 8080 / set_ipv4_src ipv4_addr 1.2.3.4 "
           "/ " + kVm1},
     {}},
    {"in_port=1,udp,actions=set_field:5353->udp_src,output:2",
     {P0 + "eth / ipv4 / udp / end actions set_tp_src port 5353 / port_id id 1 / count / end"}, {}},
    {"in_port=1,ip,actions=meter:3,output:10",
     {P0 + "eth / ipv4 / end actions meter mtr_id 3 / " + kVm1}, {}},
    // Where rules go; NORMAL; OpenFlow's implicit drop; changes after the output.
    {"priority=10,ip,actions=drop",
     {P0 + "eth / ipv4 / end actions " + kDrop, P1 + "eth / ipv4 / end actions " + kDrop}, {}},
    {"in_port=1,actions=NORMAL",
     {P0 + "eth dst is 52:54:00:00:00:01 has_vlan is 0 / end actions " + kVm1,
      P0 + "eth dst is 52:54:00:00:00:02 has_vlan is 0 / end actions " + kVm2},
     {}},
    {"in_port=2,actions=NORMAL",
     {P1 + "eth dst is 52:54:00:00:00:03 has_vlan is 0 / end actions queue index 1 / count / end"},
     {}},
    {"in_port=1,dl_dst=52:54:00:00:00:02,actions=normal",
     {P0 + "eth dst is 52:54:00:00:00:02 has_vlan is 0 / end actions " + kVm2}, {}},
    {"in_port=1,dl_vlan=7,actions=NORMAL",
     {P0 + "eth dst is 52:54:00:00:00:01 / vlan vid is 7 / end actions " + kVm1,
      P0 + "eth dst is 52:54:00:00:00:02 / vlan vid is 7 / end actions " + kVm2},
     {}},
    {"in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:09",
     {P0 + "eth / ipv4 / end actions " + kDrop}, {}},
    {"in_port=1,actions=output:10,mod_dl_src:02:00:00:00:00:09",
     {P0 + "eth / end actions " + kVm1}, {}},
    // Not offloadable, and why.
    {"in_port=1,ct_state=+trk,ip,actions=drop", {}, {"ct_state"}},
    {"table=1,in_port=1,actions=drop", {}, {"table=1"}},
    {"in_port=1,actions=CONTROLLER:65535", {}, {"controller"}},
    {"in_port=1,actions=learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[]),output:10", {}, {"learn"}},
    {"in_port=1,actions=output:10,output:11", {}, {"output to more than one port"}},
    {"in_port=10,actions=output:1",
     {},
     {"in_port=10 is a vNIC: its traffic does not enter through the NIC"}},
    {"in_port=99,actions=drop", {}, {"in_port=99 is not a DPDK port here"}},
    {"in_port=1,actions=output:99", {}, {"output:99 is not a DPDK port or vNIC here"}},
    {"in_port=1,actions=output:1", {}, {"output:1 is the port the traffic came in on"}},
    {"in_port=1,actions=mod_vlan_vid:7,output:10",
     {},
     {"mod_vlan_vid on traffic that may or may not be tagged (match dl_vlan or vlan_tci)"}},
    {"in_port=1,actions=resubmit(,2)", {}, {"resubmit"}},
    {"in_port=1,actions=enqueue:10:3", {}, {"enqueue (an egress queue)"}},
    {"in_port=1,tcp,tcp_flags=0x100/0x100,actions=drop",
     {},
     {"tcp_flags NS bit (rte_flow's TCP item has 8 flag bits)"}},
    {"in_port=1,actions=mod_nw_tos:16,output:10", {}, {"mod_nw_tos"}},
    {"in_port=1,actions=output:12", {}, {"output:12 is a vNIC of another uplink"}},
    {"in_port=1,metadata=0x5,actions=drop", {}, {"metadata"}},
    {"in_port=1,actions=FLOOD", {}, {"flood"}},
    {"in_port=1,actions=group:1", {}, {"group"}},
    {"in_port=1,ip,nw_ttl=1,actions=drop", {}, {"nw_ttl"}},
    {"in_port=1,tp_dst=80,actions=drop", {}, {"IP fields without dl_type=0x0800 or 0x86dd"}},
    {"in_port=1,ip,actions=set_field:1.2.3.4->nw_src,mod_tp_src:9,output:10",
     {},
     {"mod_tp_src/mod_tp_dst without nw_proto=6 or 17"}},
    {"in_port=1,ipv6,actions=mod_nw_dst:1.2.3.4,output:10",
     {},
     {"mod_nw_src/mod_nw_dst without dl_type=0x0800"}},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(translate_table)

BOOST_AUTO_TEST_CASE(the_table_has_at_least_forty_rules) {
  BOOST_TEST(std::size(kCases) >= 40u);
}

BOOST_DATA_TEST_CASE(openflow_rule_becomes_its_rte_flow_rules, boost::unit_test::data::make(kCases),
                     c) {
  std::string why;
  auto f = parse_ofctl_flow(c.flow, why);
  BOOST_REQUIRE_MESSAGE(f.has_value(), why);
  const Translation t = translate(*f, ports());
  std::vector<std::string> got;
  for (const auto& r : t.rules) {
    got.push_back(flow_dump(r));
  }
  BOOST_TEST(got == c.dumps, boost::test_tools::per_element());
  BOOST_TEST(t.reasons == c.reasons, boost::test_tools::per_element());
  BOOST_TEST(t.offloadable() == c.reasons.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(priorities)

BOOST_AUTO_TEST_CASE(few_priorities_fit_the_levels_in_order) {
  std::vector<RteFlowRule> rules(4);
  const std::uint16_t prio[] = {100, 300, 200, 200};
  for (int i = 0; i < 4; ++i) {
    rules[i].ovs_priority = prio[i];
  }
  const auto planned = plan_priorities(rules, 8);
  BOOST_REQUIRE(planned.size() == 4u);  // no jumps needed
  BOOST_TEST(planned[0].priority == 2u);
  BOOST_TEST(planned[1].priority == 0u);
  BOOST_TEST(planned[2].priority == 1u);
  BOOST_TEST(planned[3].priority == 1u);
  for (const auto& r : planned) {
    BOOST_TEST(r.group == 0u);
  }
}

BOOST_AUTO_TEST_CASE(more_priorities_than_levels_spill_into_chained_groups) {
  std::vector<RteFlowRule> rules(5);
  for (int i = 0; i < 5; ++i) {
    rules[i].ovs_priority = static_cast<std::uint16_t>(1000 - i * 10);
  }
  const auto planned = plan_priorities(rules, 3);  // 2 rule levels + the jump per group
  // 5 priorities in groups of 2: groups 0, 1, 2; jumps 0→1 and 1→2.
  BOOST_REQUIRE(planned.size() == 7u);
  BOOST_TEST(planned[4].group == 2u);
  BOOST_TEST(planned[4].priority == 0u);
  BOOST_TEST(flow_dump(planned[5]) ==
             "flow create 0 group 0 priority 2 ingress pattern eth / end actions jump group 1 / end");
  BOOST_TEST(flow_dump(planned[6]) ==
             "flow create 0 group 1 priority 2 ingress pattern eth / end actions jump group 2 / end");
}

BOOST_AUTO_TEST_CASE(a_higher_openflow_priority_always_wins) {
  // For random tables and level counts: among any two rules, the higher
  // OpenFlow priority is in an earlier group, or in the same group at a
  // numerically lower (stronger) level; equal priorities share a slot.
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<RteFlowRule> rules(1 + rng() % 40);
    for (auto& r : rules) {
      r.ovs_priority = static_cast<std::uint16_t>(rng() % 20 * 100);
    }
    const std::uint32_t levels = 2 + rng() % 6;
    const auto planned = plan_priorities(rules, levels);
    for (std::size_t i = 0; i < rules.size(); ++i) {
      BOOST_REQUIRE(planned[i].priority < levels);
      for (std::size_t j = 0; j < rules.size(); ++j) {
        const auto& a = planned[i];
        const auto& b = planned[j];
        if (a.ovs_priority > b.ovs_priority) {
          BOOST_REQUIRE(a.group < b.group || (a.group == b.group && a.priority < b.priority));
        } else if (a.ovs_priority == b.ovs_priority) {
          BOOST_REQUIRE(a.group == b.group && a.priority == b.priority);
        }
      }
    }
    // Every group but the last ends in a jump to the next, at the weakest level.
    std::uint32_t groups = 0;
    for (std::size_t i = 0; i < rules.size(); ++i) {
      groups = std::max(groups, planned[i].group + 1);
    }
    BOOST_REQUIRE(planned.size() == rules.size() + (groups - 1));
    for (std::size_t i = rules.size(); i < planned.size(); ++i) {
      BOOST_REQUIRE(planned[i].priority == levels - 1);
      BOOST_REQUIRE(planned[i].actions.at(0).type == RteActionType::kJump);
      BOOST_REQUIRE(planned[i].actions.at(0).value == planned[i].group + 1);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
