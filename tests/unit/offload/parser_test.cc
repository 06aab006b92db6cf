// The OpenFlow parser: ovs-ofctl dump-flows output with its statistics, the
// identity of a rule (however its fields are written), and malformed rules
// refused with the offending text.
#include <boost/test/unit_test.hpp>

#include "offload/ovs/ofctl_flow.h"

using namespace viopool;
using namespace viopool::offload;

BOOST_AUTO_TEST_SUITE(ofctl_parser)

BOOST_AUTO_TEST_CASE(a_dump_reads_back_with_cookies_tables_and_priorities) {
  const char* dump =
      "NXST_FLOW reply (xid=0x4):\n"
      " cookie=0x2a, duration=12.456s, table=0, n_packets=3, n_bytes=180, idle_age=4, "
      "priority=200,tcp,in_port=1,nw_dst=10.0.0.5,tp_dst=22 actions=output:10\n"
      " cookie=0x0, duration=12.001s, table=0, n_packets=0, n_bytes=0, priority=0 actions=NORMAL\n"
      " cookie=0x0, duration=1.5s, table=3, n_packets=0, n_bytes=0, priority=5,ct_state=+new+trk,ip "
      "actions=ct(commit),output:2\n";
  std::string why;
  auto flows = parse_ofctl_dump(dump, why);
  BOOST_REQUIRE_MESSAGE(flows.has_value(), why);
  BOOST_REQUIRE(flows->size() == 3u);
  const FlowSpec& a = (*flows)[0];
  BOOST_TEST(a.cookie == 0x2au);
  BOOST_TEST(a.priority == 200u);
  BOOST_TEST(*a.match.in_port == "1");
  BOOST_TEST(*a.match.eth_type == 0x0800u);
  BOOST_TEST(*a.match.ip_proto == 6u);
  BOOST_TEST(a.match.ipv4_dst->value == 0x0a000005u);
  BOOST_TEST(a.match.tp_dst->value == 22u);
  BOOST_TEST(a.actions.size() == 1u);
  BOOST_TEST(a.unsupported.empty());
  BOOST_TEST((*flows)[1].priority == 0u);
  BOOST_TEST(((*flows)[1].actions.at(0).kind == ActionKind::kNormal));
  const FlowSpec& c = (*flows)[2];
  BOOST_TEST(c.table == 3u);
  BOOST_TEST(c.other_match.at(0) == "ct_state=+new+trk");
  // Each reason once: the match field, the action, the table.
  BOOST_TEST(c.unsupported.size() == 3u);
}

BOOST_AUTO_TEST_CASE(an_unreadable_line_stays_on_ovs_and_shadows_what_is_below) {
  const char* dump =
      " cookie=0x0, duration=1s, table=0, n_packets=0, n_bytes=0, priority=90,ip actions=set_field:10.0.0.0/255.0.0.0->ip_src,output:2\n"
      " cookie=0x0, duration=1s, table=0, n_packets=0, n_bytes=0, priority=10,ip actions=drop\n";
  std::string why;
  auto flows = parse_ofctl_dump(dump, why);
  BOOST_REQUIRE_MESSAGE(flows.has_value(), why);
  BOOST_REQUIRE(flows->size() == 2u);
  const FlowSpec& u = (*flows)[0];
  BOOST_TEST(u.priority == 90u);
  BOOST_TEST(u.unsupported.at(0).rfind("unreadable: ", 0) == 0u);
  BOOST_TEST((u.match == FlowMatch{}));  // matches everything
  BOOST_TEST((*flows)[1].unsupported.empty());
}

BOOST_AUTO_TEST_CASE(a_rules_identity_does_not_depend_on_how_it_is_written) {
  std::string why;
  auto a = parse_ofctl_flow("priority=5,ip,nw_src=1.2.3.0/24,actions=drop", why);
  auto b = parse_ofctl_flow("nw_src=1.2.3.7/255.255.255.0 dl_type=0x0800 priority=5 actions=output:3",
                            why);
  auto c = parse_ofctl_flow("priority=6,ip,nw_src=1.2.3.0/24,actions=drop", why);
  auto d = parse_ofctl_flow("priority=5,ip,nw_src=1.2.3.0/24,ct_state=+trk,actions=drop", why);
  BOOST_REQUIRE(a && b && c && d);
  BOOST_TEST(a->key() == b->key());
  BOOST_TEST(a->key() != c->key());
  BOOST_TEST(a->key() != d->key());
  BOOST_TEST(a->key() == "table=0,priority=5,dl_type=0x800,nw_src=1.2.3.0/24");
}

BOOST_AUTO_TEST_CASE(malformed_rules_are_refused_with_the_offending_text) {
  const std::pair<const char*, const char*> bad[] = {
      {"priority=70000,actions=drop", "priority=70000"},
      {"ip,nw_src=10.0.0.300,actions=drop", "nw_src=10.0.0.300"},
      {"dl_dst=zz:00:00:00:00:00,actions=drop", "dl_dst"},
      {"in_port=1", "no actions="},
      {"in_port=1,actions=", "actions= is empty"},
      {"tcp,tp_dst=70000,actions=drop", "tp_dst=70000"},
      {"dl_vlan=5000,actions=drop", "dl_vlan=5000"},
      {"ipv6,ipv6_src=2001:db8::/129,actions=drop", "ipv6_src"},
      {"tcp,tcp_flags=+bogus,actions=drop", "tcp_flags"},
      {"ip,actions=mod_vlan_vid:9999", "mod_vlan_vid:9999"},
      {"ip,actions=push_vlan:0x0800", "push_vlan"},
      {"frobnicate,actions=drop", "frobnicate"},
      {"table=255,actions=drop", "table=255"},
  };
  for (const auto& [flow, expect] : bad) {
    std::string why;
    auto f = parse_ofctl_flow(flow, why);
    BOOST_TEST_CONTEXT(flow) {
      BOOST_TEST(!f.has_value());
      BOOST_TEST(why.find(expect) != std::string::npos, why);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
