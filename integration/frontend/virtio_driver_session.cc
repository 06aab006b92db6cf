// DeviceSession: the vhost-user bring-up every virtio device needs, factored
// out of BlkDriver so the blk and crypto drivers send the same messages in the
// same order and name failed steps the same way.
#include "integration/frontend/virtio_driver_session.h"

#include "vhost-backend/base/log.h"

VIOPOOL_LOG_MODULE("frontend.session")

namespace viopool::frontend {

DeviceSession::~DeviceSession() {
  if (started_ && !stop_result_) {
    (void)stop();
  }
  // Queues give their ring memory back to the arena before it goes away.
  queues_.clear();
}

unexpected DeviceSession::failed_step(std::string* why, const char* step, const Error& e) const {
  if (why != nullptr) {
    std::string detail = frontend_ ? frontend_->last_error_detail() : std::string();
    *why = std::string(step) + ": " + (detail.empty() ? to_string(e) : detail);
  }
  return unexpected(e);
}

Result<void> DeviceSession::open(const DeviceSessionOptions& o, std::string* why) {
  options_ = o;
  auto fe = VhostUserFrontend::connect(o.socket_path, o.frontend);
  if (!fe) {
    return failed_step(why, ("connect " + o.socket_path).c_str(), fe.error());
  }
  frontend_ = std::move(*fe);
  if (auto r = frontend_->set_owner(); !r) {
    return failed_step(why, "set owner", r.error());
  }
  auto offered = frontend_->get_features();
  if (!offered) {
    return failed_step(why, "get features", offered.error());
  }
  offered_ = virtio::FeatureSet(*offered);
  if (!offered_.has(virtio::kFeatureVersion1)) {
    return failed_step(why, "features",
                       make_error(Errc::kUnsupported, "device does not offer VIRTIO_F_VERSION_1"));
  }
  if (!offered_.has(virtio::kFeatureProtocolFeatures)) {
    return failed_step(why, "features",
                       make_error(Errc::kUnsupported,
                                  "backend offers no protocol features (needed for GET_CONFIG)"));
  }
  auto proto = frontend_->get_protocol_features();
  if (!proto) {
    return failed_step(why, "get protocol features", proto.error());
  }
  offered_protocol_ = *proto;
  const std::uint64_t want_proto = (std::uint64_t{1} << vhost_user::kProtocolMq) |
                                   (std::uint64_t{1} << vhost_user::kProtocolReplyAck) |
                                   (std::uint64_t{1} << vhost_user::kProtocolConfig) |
                                   (std::uint64_t{1} << vhost_user::kProtocolCryptoSession);
  if (auto r = frontend_->set_protocol_features(offered_protocol_ & want_proto); !r) {
    return failed_step(why, "set protocol features", r.error());
  }
  if (((offered_protocol_ >> vhost_user::kProtocolConfig) & 1) == 0) {
    return failed_step(why, "protocol features",
                       make_error(Errc::kUnsupported, "backend lacks the CONFIG protocol feature"));
  }
  if ((offered_protocol_ >> vhost_user::kProtocolMq) & 1) {
    auto n = frontend_->get_queue_num();
    if (!n) {
      return failed_step(why, "get queue num", n.error());
    }
    backend_queues_ = *n;
  }
  return {};
}

Result<void> DeviceSession::read_config(std::span<std::byte> out, std::string* why) {
  if (auto r = frontend_->get_config(0, out); !r) {
    return failed_step(why, "get config", r.error());
  }
  return {};
}

Result<void> DeviceSession::negotiate(std::span<const unsigned> wanted, std::string* why) {
  const bool packed = options_.ring_layout == RingLayout::kPacked;
  if (packed && (!offered_.has(virtio::kFeatureRingPacked) ||
                 options_.exclude.has(virtio::kFeatureRingPacked))) {
    return failed_step(
        why, "features",
        make_error(Errc::kUnsupported,
                   offered_.has(virtio::kFeatureRingPacked)
                       ? "packed rings requested but VIRTIO_F_RING_PACKED is excluded"
                       : "packed rings requested but the backend does not offer "
                         "VIRTIO_F_RING_PACKED (feature bit 34)"));
  }
  virtio::FeatureSet acked;
  for (unsigned bit : wanted) {
    if (offered_.has(bit) && !options_.exclude.has(bit)) {
      acked = acked.with(bit);
    }
  }
  if (packed) {
    acked = acked.with(virtio::kFeatureRingPacked);
  }
  // Keeps protocol features (and vring enable/disable) in effect.
  acked = acked.with(virtio::kFeatureProtocolFeatures);
  acked_ = acked;
  if (auto r = frontend_->set_features(acked_.bits()); !r) {
    return failed_step(why, "set features", r.error());
  }
  return {};
}

Result<void> DeviceSession::setup_memory(std::string* why) {
  auto arena = GuestMemoryArena::create(options_.arena);
  if (!arena) {
    return failed_step(why, "guest memory", arena.error());
  }
  arena_ = std::move(*arena);
  const MemTableEntry region = arena_->mem_table_entry();
  if (auto r = frontend_->set_mem_table(std::span<const MemTableEntry>(&region, 1)); !r) {
    return failed_step(why, "set mem table", r.error());
  }
  return {};
}

Result<void> DeviceSession::setup_queues(std::span<const std::uint16_t> ring_indices,
                                         const SessionQueueOptions& qopt, const QueueHook& hook,
                                         std::string* why) {
  const bool packed = ring_layout() == RingLayout::kPacked;
  const auto event_idx =
      acked_.has(virtio::kFeatureRingEventIdx) ? virtio::EventIdx::kYes : virtio::EventIdx::kNo;
  const auto indirect =
      options_.use_indirect == Indirect::kYes && acked_.has(virtio::kFeatureRingIndirectDesc)
          ? Indirect::kYes
          : Indirect::kNo;
  queues_.reserve(ring_indices.size());
  for (std::size_t i = 0; i < ring_indices.size(); ++i) {
    const std::uint16_t index = ring_indices[i];
    DriverQueueOptions qo;
    qo.layout = packed ? RingLayout::kPacked : RingLayout::kSplit;
    qo.start_idx = packed ? kPackedFreshStart : 0;
    qo.size = qopt.size;
    qo.event_idx = event_idx;
    qo.indirect = indirect;
    qo.max_indirect = qopt.max_indirect;
    auto vq = DriverQueue::create(*arena_, qo);
    if (!vq) {
      return failed_step(why, "create virtqueue", vq.error());
    }
    DriverQueue& q = **vq;
    queues_.push_back(std::move(*vq));
    ring_indices_.push_back(index);
    // Busy-polling is the default; drivers' wait() turns interrupts on when used.
    q.set_interrupts(virtio::Notifications::kDisabled);
    if (hook) {
      VIOPOOL_TRY(hook(i, q, why));
    }

    if (auto r = frontend_->set_vring_num(index, qopt.size); !r) {
      return failed_step(why, "set vring num", r.error());
    }
    if (auto r = frontend_->set_vring_base(index, q.start_idx()); !r) {
      return failed_step(why, "set vring base", r.error());
    }
    // Packed: desc is the descriptor ring, avail the driver event area and
    // used the device event area (DriverQueue names them the same way).
    const vhost_user::VringAddr addr{
        index, 0, q.desc_user_addr(), q.used_user_addr(), q.avail_user_addr(), 0};
    if (auto r = frontend_->set_vring_addr(addr); !r) {
      return failed_step(why, "set vring addr", r.error());
    }
    // Call before kick: a backend may start the ring on the kick fd
    // (libvhost-user does) and should be able to signal from its first request.
    if (auto r = frontend_->set_vring_call(index, q.call_fd()); !r) {
      return failed_step(why, "set vring call", r.error());
    }
    if (auto r = frontend_->set_vring_kick(index, q.kick_fd()); !r) {
      return failed_step(why, "set vring kick", r.error());
    }
  }
  // With VHOST_USER_F_PROTOCOL_FEATURES rings start disabled.
  for (const std::uint16_t index : ring_indices) {
    if (auto r = frontend_->set_vring_enable(index, VringEnable::kYes); !r) {
      return failed_step(why, "set vring enable", r.error());
    }
  }
  if (!frontend_->reply_ack()) {
    // Without acks, one round trip proves the backend took every message.
    if (auto r = frontend_->sync(); !r) {
      return failed_step(why, "sync", r.error());
    }
  }
  started_ = true;
  VIOPOOL_LOG_DEBUG("rings up socket={} features={} ring={} rings={}", options_.socket_path,
                    virtio::to_string(acked_), packed ? "packed" : "split", ring_indices.size());
  return {};
}

Result<std::vector<std::uint32_t>> DeviceSession::stop() {
  if (stop_result_) {
    return *stop_result_;
  }
  std::vector<std::uint32_t> bases;
  Result<std::vector<std::uint32_t>> result = bases;
  if (!started_) {
    stop_result_ = result;  // nothing was set up, nothing to stop
    return result;
  }
  for (const std::uint16_t index : ring_indices_) {
    if (auto r = frontend_->set_vring_enable(index, VringEnable::kNo); !r) {
      result = unexpected(r.error());
      break;
    }
  }
  if (result) {
    for (const std::uint16_t index : ring_indices_) {
      auto b = frontend_->get_vring_base(index);
      if (!b) {
        result = unexpected(b.error());
        break;
      }
      bases.push_back(*b);
    }
    if (result) {
      result = bases;
    }
  }
  stop_result_ = result;
  return result;
}

}  // namespace viopool::frontend
