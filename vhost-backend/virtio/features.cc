// Feature negotiation and names of the transport feature bits.
#include "vhost-backend/virtio/features.h"

#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::virtio {

Result<FeatureSet> negotiate(FeatureSet offered, FeatureSet acked) noexcept {
  if (!offered.contains(acked)) {
    return fail(Errc::kProtocol, "frontend acked features we did not offer");
  }
  return acked;
}

const char* feature_name(unsigned bit) noexcept {
  switch (bit) {
    case kFeatureNotifyOnEmpty:
      return "NOTIFY_ON_EMPTY";
    case kFeatureLogAll:
      return "LOG_ALL";
    case kFeatureAnyLayout:
      return "ANY_LAYOUT";
    case kFeatureRingIndirectDesc:
      return "RING_INDIRECT_DESC";
    case kFeatureRingEventIdx:
      return "RING_EVENT_IDX";
    case kFeatureProtocolFeatures:
      return "PROTOCOL_FEATURES";
    case kFeatureVersion1:
      return "VERSION_1";
    case kFeatureAccessPlatform:
      return "ACCESS_PLATFORM";
    case kFeatureRingPacked:
      return "RING_PACKED";
    case kFeatureInOrder:
      return "IN_ORDER";
    case kFeatureOrderPlatform:
      return "ORDER_PLATFORM";
    case kFeatureSrIov:
      return "SR_IOV";
    case kFeatureNotificationData:
      return "NOTIFICATION_DATA";
    default:
      return nullptr;
  }
}

std::string to_string(FeatureSet features) {
  if (features.bits() == 0) {
    return "none";
  }
  std::string out;
  for (unsigned bit = 0; bit < 64; ++bit) {
    if (!features.has(bit)) {
      continue;
    }
    if (!out.empty()) {
      out += '|';
    }
    if (const char* name = feature_name(bit)) {
      out += name;
    } else {
      out += "bit";
      out += std::to_string(bit);
    }
  }
  return out;
}

}  // namespace viopool::virtio
