// Stream printers so that Boost.Test can show viopool values in failed
// assertions (it needs operator<< found by ADL, in namespace viopool).
#pragma once

#include <ostream>

#include "vhost-backend/base/error.h"
#include "vhost-backend/base/types.h"

namespace viopool {

inline std::ostream& operator<<(std::ostream& os, Errc code) { return os << errc_name(code); }

inline std::ostream& operator<<(std::ostream& os, GuestAddr addr) {
  return os << "gpa:0x" << std::hex << addr.value << std::dec;
}

}  // namespace viopool
