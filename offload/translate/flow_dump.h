// Prints an RteFlowRule as the testpmd command that creates it
// ("flow create 0 group 0 priority 1 ingress pattern eth / ipv4 ... / end
// actions queue index 2 / count / end"): every rule viopool installs is
// logged in this form, so it can be replayed by hand in dpdk-testpmd.
#pragma once

#include <string>

#include "offload/translate/rte_flow_rule.h"

namespace viopool::offload {

std::string flow_dump(const RteFlowRule& r);

}  // namespace viopool::offload
