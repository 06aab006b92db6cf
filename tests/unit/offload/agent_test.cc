// The agent's reconciliation against a RecordingOffloader: rules follow the
// table (added, modified, deleted, replaced) with no duplicates and no
// leftovers; a rule the NIC refuses is reported with the NIC's message and
// shadows every lower rule that overlaps it; a refused MARK falls back to
// the queue; more priorities than the NIC has levels chain groups.
#include <boost/test/unit_test.hpp>

#include "offload/agent/offload_agent.h"
#include "offload/ovs/ofctl_flow.h"

using namespace viopool;
using namespace viopool::offload;
using nlohmann::json;

namespace {

PortMap ports() {
  PortMap m;
  m.ports.push_back({"up0", 1, 0, std::nullopt, std::nullopt, std::nullopt});
  m.ports.push_back({"vm1", 10, 0, 1, 101, Mac{0x52, 0x54, 0, 0, 0, 1}});
  m.ports.push_back({"vm2", 11, 0, 2, std::nullopt, Mac{0x52, 0x54, 0, 0, 0, 2}});
  return m;
}

std::vector<FlowSpec> table(std::initializer_list<const char*> flows) {
  std::vector<FlowSpec> t;
  for (const char* f : flows) {
    std::string why;
    auto s = parse_ofctl_flow(f, why);
    BOOST_REQUIRE_MESSAGE(s.has_value(), why);
    t.push_back(*s);
  }
  return t;
}

json rule(OffloadAgent& a, const std::string& starts) {
  const json shown = a.show(true);
  for (const auto& r : shown["rules"]) {
    if (r["rule"].get<std::string>().rfind(starts, 0) == 0) {
      return r;
    }
  }
  return json();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(offload_agent)

BOOST_AUTO_TEST_CASE(rules_follow_the_table_without_duplicates_or_leftovers) {
  RecordingOffloader nic;
  OffloadAgent a(ports(), nic);
  a.start();
  a.apply(table({"priority=200,in_port=1,tcp,tp_dst=22,actions=drop",
                 "priority=100,in_port=1,ip,nw_dst=10.0.0.1,actions=output:10"}));
  BOOST_TEST(nic.installed().size() == 2u);
  BOOST_TEST(rule(a, "table=0,priority=200")["state"] == "offloaded");
  BOOST_TEST(rule(a, "table=0,priority=200")["rte_flow"][0]["packets"].is_number());
  // The same table again: nothing changes on the NIC.
  const auto puts = nic.puts;
  a.apply(table({"priority=200,in_port=1,tcp,tp_dst=22,actions=drop",
                 "priority=100,in_port=1,ip,nw_dst=10.0.0.1,actions=output:10"}));
  BOOST_TEST(nic.puts == puts);
  // Modified actions: the old rule goes, the new one comes.
  a.apply(table({"priority=200,in_port=1,tcp,tp_dst=22,actions=drop",
                 "priority=100,in_port=1,ip,nw_dst=10.0.0.1,actions=output:11"}));
  BOOST_TEST(nic.installed().size() == 2u);
  BOOST_TEST(rule(a, "table=0,priority=100")["rte_flow"][0]["flow"].get<std::string>().find(
                 "queue index 2") != std::string::npos);
  // Deleted.
  a.apply(table({"priority=100,in_port=1,ip,nw_dst=10.0.0.1,actions=output:11"}));
  BOOST_TEST(nic.installed().size() == 1u);
  a.apply({});
  BOOST_TEST(nic.installed().empty());
  // The modification, the deletion, the re-planned rule 100 (now level 0), the last one.
  BOOST_TEST(a.stats()["destroys"] == 4);
}

BOOST_AUTO_TEST_CASE(a_refused_rule_says_why_and_shadows_the_rules_below_it) {
  // The NIC refuses IPv6 patterns.
  RecordingOffloader nic(8, [](const RteFlowRule& r) {
    for (const auto& i : r.pattern) {
      if (i.type == ItemType::kIpv6) {
        return std::string("Operation not supported: ipv6 item");
      }
    }
    return std::string();
  });
  OffloadAgent a(ports(), nic);
  a.apply(table({"priority=300,in_port=1,ipv6,actions=drop",
                 "priority=200,in_port=1,ct_state=+trk,ip,nw_src=10.0.0.0/8,actions=drop",
                 "priority=150,in_port=1,ip,nw_src=192.168.0.0/16,actions=output:10",
                 "priority=100,in_port=1,ip,nw_src=10.1.0.0/16,actions=output:11",
                 "priority=0,actions=NORMAL"}));
  const json v6 = rule(a, "table=0,priority=300");
  BOOST_TEST(v6["state"] == "refused");
  BOOST_TEST(v6["reasons"][0].get<std::string>().find("ipv6 item") != std::string::npos);
  BOOST_TEST(rule(a, "table=0,priority=200")["state"] == "not_offloadable");
  BOOST_TEST(rule(a, "table=0,priority=200")["reasons"][0] == "ct_state");
  // Disjoint from both: offloaded.
  BOOST_TEST(rule(a, "table=0,priority=150")["state"] == "offloaded");
  // 10.1/16 overlaps the ct_state rule's 10/8: it must stay on OVS too.
  const json below = rule(a, "table=0,priority=100");
  BOOST_TEST(below["state"] == "shadowed");
  BOOST_TEST(below["reasons"][0].get<std::string>().find("nw_src=10.0.0.0/8") != std::string::npos);
  // NORMAL overlaps everything above it that stayed on OVS.
  BOOST_TEST(rule(a, "table=0,priority=0")["state"] == "shadowed");
  BOOST_TEST(nic.installed().size() == 1u);
  BOOST_TEST(a.stats()["refused"] == 1);
  // The refusal is remembered: the same table does not ask the NIC again.
  const auto puts = nic.puts;
  a.apply(table({"priority=300,in_port=1,ipv6,actions=drop",
                 "priority=150,in_port=1,ip,nw_src=192.168.0.0/16,actions=output:10"}));
  BOOST_TEST(nic.puts == puts);
}

BOOST_AUTO_TEST_CASE(a_refused_mark_falls_back_to_the_queue) {
  RecordingOffloader nic(8, [](const RteFlowRule& r) {
    for (const auto& x : r.actions) {
      if (x.type == RteActionType::kMark) {
        return std::string("mark action not supported");
      }
    }
    return std::string();
  });
  OffloadAgent a(ports(), nic);
  a.apply(table({"priority=10,in_port=1,ip,actions=output:10"}));
  const json r = rule(a, "table=0,priority=10");
  BOOST_TEST(r["state"] == "offloaded");
  BOOST_TEST(r["note"].get<std::string>().find("mark action not supported") != std::string::npos);
  BOOST_TEST(r["rte_flow"][0]["flow"] ==
             "flow create 0 group 0 priority 0 ingress pattern eth / ipv4 / end actions queue "
             "index 1 / count / end");
  // The table read again (another rule came): the installed rule keeps its note.
  a.apply(table({"priority=10,in_port=1,ip,actions=output:10", "priority=5,in_port=1,actions=drop"}));
  BOOST_TEST(rule(a, "table=0,priority=10")["note"].get<std::string>().find("MARK") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(more_priorities_than_levels_chain_groups_on_the_nic) {
  RecordingOffloader nic(2);  // one rule level per group, plus the jump
  OffloadAgent a(ports(), nic);
  a.apply(table({"priority=30,in_port=1,tcp,actions=drop", "priority=20,in_port=1,udp,actions=drop",
                 "priority=10,in_port=1,ip,actions=output:11"}));
  const auto got = nic.installed();
  BOOST_REQUIRE(got.size() == 5u);  // 3 rules + jumps 0→1, 1→2
  BOOST_TEST(got[0] == "flow create 0 group 0 priority 0 ingress pattern eth / ipv4 / tcp / end "
                       "actions drop / count / end");
  BOOST_TEST(got[1] == "flow create 0 group 0 priority 1 ingress pattern eth / end actions jump "
                       "group 1 / end");
  BOOST_TEST(got[4] == "flow create 0 group 2 priority 0 ingress pattern eth / ipv4 / end actions "
                       "queue index 2 / count / end");
  // Removing the top rule re-plans everything; no jump is left behind.
  a.apply(table({"priority=10,in_port=1,ip,actions=output:11"}));
  BOOST_TEST(nic.installed().size() == 1u);
}

BOOST_AUTO_TEST_CASE(overlap_is_decided_field_by_field) {
  const auto t = table({"in_port=1,ip,nw_src=10.0.0.0/8,actions=drop",
                        "in_port=1,ip,nw_src=11.0.0.0/8,actions=drop",
                        "in_port=2,ip,nw_src=10.0.0.0/8,actions=drop",
                        "in_port=1,tcp,tp_dst=80,actions=drop", "in_port=1,udp,actions=drop",
                        "in_port=1,dl_vlan=5,actions=drop", "in_port=1,dl_vlan=0xffff,actions=drop",
                        "actions=drop"});
  BOOST_TEST(!may_overlap(t[0], t[1]));  // disjoint prefixes
  BOOST_TEST(!may_overlap(t[0], t[2]));  // other in_port
  BOOST_TEST(may_overlap(t[0], t[3]));
  BOOST_TEST(!may_overlap(t[3], t[4]));  // tcp vs udp
  BOOST_TEST(!may_overlap(t[5], t[6]));  // tagged vs untagged
  BOOST_TEST(may_overlap(t[7], t[0]));   // a catch-all overlaps everything
}

BOOST_AUTO_TEST_SUITE_END()
