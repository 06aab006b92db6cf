// Shared vhost-user message handling of viopool devices.
#include "vhost-backend/vhost/vhost_device.h"

#include <algorithm>
#include <cstring>

#include "vhost-backend/base/log.h"
#include "vhost-backend/virtio/features.h"

VIOPOOL_LOG_MODULE("vhost")

namespace viopool::vhost {
namespace {

// VHOST_USER_GET_CONFIG / SET_CONFIG payload: offset, size, flags, then up to
// 256 bytes of config space.
constexpr std::uint32_t kConfigHeaderBytes = 12;
constexpr std::uint32_t kConfigMaxBytes = 256;

}  // namespace

MessageResult VhostDevice::handle_config_message(int vid, VhostUserMessage& m,
                                                 std::span<const std::uint8_t> config) noexcept {
  if (m.request != kVhostUserGetConfig && m.request != kVhostUserSetConfig) {
    return MessageResult::kNotHandled;
  }
  // Guest-controlled offset and size: both checked against the payload.
  if (m.size < kConfigHeaderBytes) {
    VIOPOOL_LOG_WARN_RL("short config message dev={} vid={} size={}", cfg_.name, vid, m.size);
    return MessageResult::kError;
  }
  const auto offset = m.get<std::uint32_t>(0);
  const auto size = m.get<std::uint32_t>(4);
  if (size > kConfigMaxBytes || offset > kConfigMaxBytes - size ||
      m.size < kConfigHeaderBytes + size) {
    VIOPOOL_LOG_WARN_RL("bad config range dev={} vid={} offset={} size={}", cfg_.name, vid, offset,
                        size);
    return MessageResult::kError;
  }
  if (m.request == kVhostUserSetConfig) {
    return MessageResult::kHandled;
  }
  char* region = m.payload() + kConfigHeaderBytes;
  std::memset(region, 0, size);
  if (offset < config.size()) {
    const std::size_t n = std::min<std::size_t>(size, config.size() - offset);
    std::memcpy(region, config.data() + offset, n);
  }
  return MessageResult::kReply;
}

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
