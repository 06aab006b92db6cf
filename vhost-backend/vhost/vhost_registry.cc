// socket path → VhostClient table and the rte_vhost callback trampolines.
#include "vhost-backend/vhost/vhost_registry.h"

#include <rte_vhost.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "vhost-backend/base/log.h"
#include "vhost-backend/base/unix_socket.h"

VIOPOOL_LOG_MODULE("vhost")

namespace viopool::vhost {
namespace {

struct Table {
  std::shared_mutex mu;
  std::map<std::string, VhostClient*> clients;
};

Table& table() {
  static Table t;  // process-wide: rte_vhost's callbacks carry no context pointer
  return t;
}

// Runs fn(client) for the socket of `vid` under a shared lock, so that
// unregister_socket() cannot free the client meanwhile.
template <typename Fn>
auto with_client(int vid, Fn&& fn, decltype(fn(nullptr)) fallback) {
  char path[PATH_MAX];
  if (rte_vhost_get_ifname(vid, path, sizeof(path)) != 0) {
    return fallback;
  }
  auto& t = table();
  std::shared_lock<std::shared_mutex> lock(t.mu);
  auto it = t.clients.find(path);
  if (it == t.clients.end()) {
    return fallback;
  }
  return fn(it->second);
}

int cb_new_device(int vid) {
  return with_client(vid, [vid](VhostClient* c) { return c->on_new_device(vid); }, -1);
}
void cb_destroy_device(int vid) {
  with_client(vid, [vid](VhostClient* c) { c->on_destroy_device(vid); return 0; }, 0);
}
int cb_vring_state_changed(int vid, uint16_t q, int enable) {
  return with_client(
      vid, [=](VhostClient* c) { return c->on_vring_state_changed(vid, q, enable); }, -1);
}
// Per-connection hook for the message thread, indexed by vid (rte_vhost
// bounds vids by RTE_MAX_VHOST_DEVICE). Set in new_connection, cleared in
// destroy_connection; messages only arrive in between.
std::array<std::atomic<VhostClient*>, RTE_MAX_VHOST_DEVICE> g_hooks{};

rte_vhost_msg_result pre_msg(int vid, void* raw) {
  if (vid < 0 || vid >= RTE_MAX_VHOST_DEVICE) {
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
  }
  VhostClient* c = g_hooks[static_cast<std::size_t>(vid)].load(std::memory_order_acquire);
  if (c == nullptr) {
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
  }
  switch (c->on_message(vid, *static_cast<VhostUserMessage*>(raw))) {
    case MessageResult::kNotHandled: return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
    case MessageResult::kHandled: return RTE_VHOST_MSG_RESULT_OK;
    case MessageResult::kReply: return RTE_VHOST_MSG_RESULT_REPLY;
    case MessageResult::kError: return RTE_VHOST_MSG_RESULT_ERR;
  }
  return RTE_VHOST_MSG_RESULT_ERR;
}

const rte_vhost_user_extern_ops kExternOps = {.pre_msg_handle = pre_msg, .post_msg_handle = nullptr};

int cb_new_connection(int vid) {
  return with_client(
      vid,
      [vid](VhostClient* c) {
        if (vid < 0 || vid >= RTE_MAX_VHOST_DEVICE) {
          return -1;
        }
        g_hooks[static_cast<std::size_t>(vid)].store(c, std::memory_order_release);
        // Installed here, not in new_device: features, queue number and
        // config are asked long before the device is ready.
        if (rte_vhost_extern_callback_register(vid, &kExternOps, nullptr) != 0) {
          return -1;
        }
        return c->on_new_connection(vid);
      },
      -1);
}
void cb_destroy_connection(int vid) {
  with_client(vid, [vid](VhostClient* c) { c->on_destroy_connection(vid); return 0; }, 0);
  if (vid >= 0 && vid < RTE_MAX_VHOST_DEVICE) {
    g_hooks[static_cast<std::size_t>(vid)].store(nullptr, std::memory_order_release);
  }
}

const rte_vhost_device_ops kOps = {
    .new_device = cb_new_device,
    .destroy_device = cb_destroy_device,
    .vring_state_changed = cb_vring_state_changed,
    .features_changed = nullptr,
    .new_connection = cb_new_connection,
    .destroy_connection = cb_destroy_connection,
    .guest_notified = nullptr,
    .reserved = {},
};

}  // namespace

Result<std::uint64_t> register_socket(const VhostSocketOptions& o, VhostClient* client,
                                      std::string& why) {
  auto& t = table();
  {
    std::unique_lock<std::shared_mutex> lock(t.mu);
    if (t.clients.count(o.path)) {
      why = o.path + " is already used by another device";
      return fail(Errc::kAlreadyExists, "vhost: socket path in use");
    }
    t.clients[o.path] = client;
  }
  auto undo = [&] {
    std::unique_lock<std::shared_mutex> lock(t.mu);
    t.clients.erase(o.path);
  };
  if (o.role == SocketRole::kServer) {
    auto r = prepare_unix_socket_path(o.path, why);
    if (!r) {
      undo();
      return unexpected(r.error());
    }
  }
  std::uint64_t flags = 0;
  if (o.role == SocketRole::kClient) {
    flags |= RTE_VHOST_USER_CLIENT;  // reconnects every second by default
  }
  if (o.builtin_net) {
    flags |= RTE_VHOST_USER_NET_STATS_ENABLE;
  }
  if (rte_vhost_driver_register(o.path.c_str(), flags) != 0) {
    undo();
    why = "rte_vhost_driver_register failed for " + o.path;
    return fail(Errc::kIo, "vhost: register failed");
  }
  std::uint64_t offered = o.features;
  bool features_ok;
  if (o.builtin_net) {
    // rte_vhost's own virtio-net stays enabled only if features are narrowed
    // with disable_features; set_features would switch it off.
    std::uint64_t lib = 0;
    features_ok = rte_vhost_driver_get_features(o.path.c_str(), &lib) == 0 &&
                  rte_vhost_driver_disable_features(o.path.c_str(), lib & ~o.features) == 0;
    if (o.features & ~lib) {
      VIOPOOL_LOG_WARN("rte_vhost does not support feature bits {:#x} path={}; not offered",
                       o.features & ~lib, o.path);
    }
    offered = lib & o.features;
  } else {
    features_ok = rte_vhost_driver_set_features(o.path.c_str(), o.features) == 0;
  }
  if (features_ok && (o.protocol_features_add | o.protocol_features_remove) != 0) {
    std::uint64_t pf = 0;
    features_ok = rte_vhost_driver_get_protocol_features(o.path.c_str(), &pf) == 0 &&
                  rte_vhost_driver_set_protocol_features(
                      o.path.c_str(),
                      (pf | o.protocol_features_add) & ~o.protocol_features_remove) == 0;
  }
  if (!features_ok || rte_vhost_driver_callback_register(o.path.c_str(), &kOps) != 0) {
    rte_vhost_driver_unregister(o.path.c_str());
    undo();
    why = "cannot configure vhost-user socket " + o.path;
    return fail(Errc::kIo, "vhost: configure failed");
  }
  if (rte_vhost_driver_start(o.path.c_str()) != 0) {
    rte_vhost_driver_unregister(o.path.c_str());
    undo();
    why = "cannot start vhost-user socket " + o.path + " (see log)";
    return fail(Errc::kIo, "vhost: start failed");
  }
  VIOPOOL_LOG_INFO("vhost-user socket ready path={} role={}", o.path,
                   o.role == SocketRole::kServer ? "server" : "client");
  return offered;
}

void unregister_socket(const std::string& path) noexcept {
  // Destroy callbacks run inside this call (on this thread) while the client
  // is still in the table; only then is it removed.
  rte_vhost_driver_unregister(path.c_str());
  auto& t = table();
  std::unique_lock<std::shared_mutex> lock(t.mu);
  t.clients.erase(path);
}

}  // namespace viopool::vhost
