// Stream printers so that Boost.Test can show viopool values in failed
// assertions (operator<< found by ADL, in namespace viopool).
#pragma once

#include <ostream>

#include "vhost-backend/base/error.h"
#include "vhost-backend/virtio/split_queue.h"

namespace viopool {

inline std::ostream& operator<<(std::ostream& os, Errc code) { return os << errc_name(code); }

namespace virtio {
inline std::ostream& operator<<(std::ostream& os, EventIdx e) {
  return os << (e == EventIdx::kYes ? "event_idx" : "no_event_idx");
}
}  // namespace virtio

}  // namespace viopool
