// Parses OpenFlow rules as ovs-ofctl writes them (`dump-flows` lines, with
// their statistics) and reads them (`add-flow` specs) into FlowSpecs. Every
// field and action OVS has is accepted; those our model lacks are kept as
// not offloadable, never dropped silently. Pure: no OVS library, no DPDK.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "offload/model/flow_spec.h"
#include "vhost-backend/base/result.h"

namespace viopool::offload {

// One rule. kInvalidArgument, with the offending text in `why`, for what is
// not a rule at all (a malformed value of a known field, no actions).
Result<FlowSpec> parse_ofctl_flow(std::string_view text, std::string& why);

// A whole `ovs-ofctl dump-flows` output: header lines (NXST_FLOW reply,
// OFPST_FLOW reply) are skipped. A line that does not parse becomes a rule
// matching everything at its priority, not offloadable ("unreadable: ..."),
// so it keeps every rule below it on OVS.
Result<std::vector<FlowSpec>> parse_ofctl_dump(std::string_view text, std::string& why);

}  // namespace viopool::offload
