// Shared vhost-user message handling of viopool devices.
#include "vhost-backend/vhost/vhost_device.h"

#include "vhost-backend/base/log.h"
#include "vhost-backend/virtio/features.h"

VIOPOOL_LOG_MODULE("vhost")

namespace viopool::vhost {

MessageResult VhostDevice::handle_common_message(int vid, VhostUserMessage& m,
                                                 std::uint64_t offered,
                                                 std::uint16_t queues) noexcept {
  switch (m.request) {
    case kVhostUserGetQueueNum:
      m.put<std::uint64_t>(queues);
      m.size = sizeof(std::uint64_t);
      return MessageResult::kReply;
    case kVhostUserSetFeatures: {
      if (m.size < sizeof(std::uint64_t)) {
        return MessageResult::kNotHandled;  // rte_vhost rejects the short message
      }
      const auto acked = m.get<std::uint64_t>();
      auto r = virtio::negotiate(virtio::FeatureSet(offered), virtio::FeatureSet(acked));
      if (!r) {
        VIOPOOL_LOG_ERROR_RL(
            "frontend acked invalid features dev={} vid={} acked={:#x} offered={:#x} "
            "error=\"{}\"; closing the connection",
            cfg_.name, vid, acked, offered, r.error().what);
        return MessageResult::kError;
      }
      return MessageResult::kNotHandled;
    }
    default:
      return MessageResult::kNotHandled;
  }
}

}  // namespace viopool::vhost
