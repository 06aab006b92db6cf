// The bridge between rte_vhost's per-process C callbacks and viopool's device
// objects: a socket path → VhostClient table. rte_vhost calls back with a vid
// only, so one table per process is unavoidable; everything else is owned.
// This directory is the only code that includes rte_vhost.h.
#pragma once

#include <cstdint>
#include <string>

#include "vhost-backend/base/result.h"

namespace viopool::vhost {

// Implemented by a device. Called on rte_vhost's message thread (or on the
// thread that unregisters, for destroy_*). Must not call back into the
// registry. Return 0 on success as rte_vhost expects.
class VhostClient {
 public:
  virtual ~VhostClient() = default;
  virtual int on_new_connection(int vid) noexcept = 0;
  virtual void on_destroy_connection(int vid) noexcept = 0;
  virtual int on_new_device(int vid) noexcept = 0;
  virtual void on_destroy_device(int vid) noexcept = 0;
  virtual int on_vring_state_changed(int vid, std::uint16_t vring, int enable) noexcept = 0;
};

enum class SocketRole : std::uint8_t { kServer, kClient };

struct VhostSocketOptions {
  std::string path;
  SocketRole role = SocketRole::kServer;
  // Offered to the frontend. With builtin_net, rte_vhost may support fewer
  // bits; register_socket() reports what is really offered.
  std::uint64_t features = 0;
  bool builtin_net = true;              // rte_vhost's virtio-net data path (stats on)
};

// Control thread. Registers the socket and starts serving it (server: listen,
// client: connect and reconnect every second until the frontend is there).
// Returns the feature bits actually offered.
Result<std::uint64_t> register_socket(const VhostSocketOptions& o, VhostClient* client,
                                      std::string& why);
// Control thread. Closes the connection (destroy callbacks run first, on this
// thread) and forgets the socket. Idempotent.
void unregister_socket(const std::string& path) noexcept;

}  // namespace viopool::vhost
