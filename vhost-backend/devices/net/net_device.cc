// Feature policy of viopool's virtio-net devices.
#include "vhost-backend/devices/net/net_device.h"

#include "vhost-backend/virtio/features.h"
#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::net {
namespace {
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
}  // namespace

std::uint64_t offered_features(const NetFeatureOptions& o) noexcept {
  namespace v = viopool::virtio;
  // The control queue is served by the frontend (QEMU, virtio_user), which
  // needs it to enable more than one queue pair; the backend never sees it.
  std::uint64_t f = bit(v::kFeatureVersion1) | bit(v::kFeatureAnyLayout) | bit(v::kFeatureRingIndirectDesc) |
                    bit(v::kFeatureRingEventIdx) | bit(v::kFeatureLogAll) |
                    bit(v::kFeatureProtocolFeatures) | bit(kFeatCtrlVq) | bit(kFeatGuestAnnounce) |
                    bit(v::kFeatureInOrder);
  if (o.queue_pairs > 1) {
    f |= bit(kFeatMq);
  }
  if (o.mrg_rxbuf) {
    f |= bit(kFeatMrgRxbuf);
  }
  if (o.packed_ring) {
    f |= bit(v::kFeatureRingPacked);
  }
  return f;
}

Result<void> check_acked_features(std::uint64_t offered, std::uint64_t acked) noexcept {
  // Frontends keep the control queue to themselves (QEMU and virtio_user
  // emulate it) and may ack MQ without CTRL_VQ towards the backend: only the
  // subset rule applies here.
  auto n = viopool::virtio::negotiate(viopool::virtio::FeatureSet(offered),
                                      viopool::virtio::FeatureSet(acked));
  if (!n) {
    return unexpected(n.error());
  }
  return {};
}

}  // namespace viopool::net
