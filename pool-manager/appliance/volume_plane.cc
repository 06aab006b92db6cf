#include "pool-manager/appliance/volume_plane.h"

#include "pool-manager/transport/mac_address.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace viopool::pool {
namespace {

// A socket left by an appliance that was killed: ours to replace (the
// virtio_user port refuses to bind over it).
void remove_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(path.c_str());
  }
}

}  // namespace

Result<void> VolumePlane::add_volume(const FunctionRecord& f, const StorageDevice& d,
                                     std::string& why) {
  VolumeExport e;
  e.name = f.name;
  e.function_id = f.id;
  e.backend.path = f.path;
  e.backend.direct = d.direct ? blk::UringBackendOptions::DirectIo::kAuto
                              : blk::UringBackendOptions::DirectIo::kOff;
  e.backend.block_size = f.block_size;
  if (d.kind == StorageKind::kBlock) {
    e.backend.extent_offset = f.offset_bytes;
    e.backend.extent_bytes = f.size_bytes;
  }
  e.queues = f.queues;
  e.max_io_bytes = max_io_bytes_;
  e.iops_limit = f.iops_limit;
  e.bps_limit = f.bps_limit;
  return target_.add_volume(std::move(e), why);
}

Result<void> VolumePlane::add_crypto(const FunctionRecord& f, const StorageDevice& d,
                                     std::string& why) {
  if (!crypto_) {
    why = "this appliance runs without DPDK: no crypto engines";
    return fail(Errc::kUnsupported, "plane: no crypto");
  }
  VolumeExport e;
  e.name = f.name;
  e.function_id = f.id;
  e.queues = f.queues;
  e.max_sessions = f.max_sessions;
  e.iops_limit = f.iops_limit;
  // One engine instance per slot, named after the function: sessions and
  // queue pairs are the slot's own.
  e.crypto = crypto_(d.driver + "_vp" + std::to_string(f.id) +
                     ",max_nb_queue_pairs=" + std::to_string(f.queues));
  if (!e.crypto) {
    why = "cannot make a " + d.driver + " engine";
    return fail(Errc::kIo, "plane: no engine");
  }
  return target_.add_volume(std::move(e), why);
}

std::shared_ptr<NicPort> VolumePlane::open_ovs_port(const OvsBridge& br, const std::string& name,
                                                   const std::string& device, std::uint16_t vlan,
                                                   std::string& why) {
  if (!ports_) {
    why = "this appliance cannot open vhost-user ports";
    return nullptr;
  }
  // The OVS port first: its vhost-user client connects (retrying every
  // second) to the socket the virtio_user port then serves, whose creation
  // waits for that connection.
  if (!br.add_vhost_port(name, vlan, why)) {
    return nullptr;
  }
  remove_stale_socket(br.socket_of(name));
  auto port = ports_(device + ",path=" + br.socket_of(name) + ",server=1,queues=1,queue_size=1024",
                     why);
  if (!port) {
    br.del_port(name);
  }
  return port;
}

Result<void> VolumePlane::attach_to_ovs(const StorageDevice& d, std::shared_ptr<NicPort> nic,
                                        std::string& why) {
  OvsBridge br({d.ovs_bridge, d.ovs_db, d.ovs_socket_dir});
  std::error_code ec;
  std::filesystem::create_directories(d.ovs_socket_dir, ec);
  if (ec) {
    why = "ovs.socket_dir " + d.ovs_socket_dir + ": " + ec.message();
    return fail(Errc::kIo, "plane: socket dir");
  }
  auto up = open_ovs_port(br, d.name, "net_virtio_user_up_" + d.name, 0, why);
  if (!up) {
    return fail(Errc::kIo, "plane: no uplink port");
  }
  target_.add_patch(std::move(nic), up);
  uplinks_.push_back(std::move(up));
  return {};
}

void VolumePlane::remove_function(std::uint32_t function_id) {
  target_.remove_volume(function_id);
  if (auto it = ovs_ports_.find(function_id); it != ovs_ports_.end()) {
    it->second.bridge.del_port(it->second.f.name);
    const std::string device = it->second.f.device;
    ovs_ports_.erase(it);
    if (on_vnics_changed) {
      on_vnics_changed(device);
    }
  }
}

std::vector<FunctionRecord> VolumePlane::ovs_vnics(const std::string& device) const {
  std::vector<FunctionRecord> out;
  for (const auto& [id, p] : ovs_ports_) {
    if (p.f.device == device) {
      out.push_back(p.f);
    }
  }
  return out;
}

Result<void> VolumePlane::add_vnic(const FunctionRecord& f, const StorageDevice& d,
                                   std::string& why) {
  auto it = nics_.find(d.name);
  if (it == nics_.end()) {
    why = "NIC port '" + d.name + "' is not open on this appliance";
    return fail(Errc::kUnsupported, "plane: no nic");
  }
  auto mac = parse_mac(f.mac);
  if (!mac) {
    why = "vNIC '" + f.name + "': bad MAC '" + f.mac + "'";
    return unexpected(mac.error());
  }
  std::optional<OvsBridge> br;
  std::shared_ptr<NicPort> port;
  if (!d.ovs_bridge.empty()) {
    // Switched by OVS: the vNIC is a vhost-user port of the bridge.
    br.emplace(OvsBridgeOptions{d.ovs_bridge, d.ovs_db, d.ovs_socket_dir});
    port = open_ovs_port(*br, f.name, "net_virtio_user_fn" + std::to_string(f.id), f.vlan, why);
    if (!port) {
      return fail(Errc::kIo, "plane: no vnic port");
    }
  }
  VolumeExport e;
  e.name = f.name;
  e.function_id = f.id;
  e.queues = f.queues;
  e.nic = it->second.port;
  std::copy(mac->bytes.begin(), mac->bytes.begin() + 6, e.vnic.mac.begin());
  e.vnic.vlan = f.vlan;
  e.vnic.mtu = static_cast<std::uint16_t>(f.mtu);
  e.vnic.rate_mbps = f.rate_mbps;
  e.vnic.peak_mbps = f.peak_mbps;
  if (port) {
    e.nic.reset();
    e.ovs_port = port;
  }
  auto r = target_.add_volume(std::move(e), why);
  if (br) {
    if (r) {
      ovs_ports_.emplace(f.id, OvsPort{*br, f});
      if (on_vnics_changed) {
        on_vnics_changed(d.name);
      }
    } else {
      br->del_port(f.name);
    }
  }
  return r;
}

nlohmann::json VolumePlane::device_info(const StorageDevice& d) {
  if (auto it = nics_.find(d.name); it != nics_.end()) {
    return it->second.info;
  }
  if (auto it = infos_.find(d.name); it != infos_.end()) {
    return it->second;
  }
  return nlohmann::json::object();
}

nlohmann::json VolumePlane::function_stats(std::uint32_t function_id) {
  const auto s = target_.volume_stats(function_id);
  if (!s) {
    return nlohmann::json::object();
  }
  return {{"requests", s->requests},     {"completions", s->completions},
          {"errors", s->errors},         {"bytes_read", s->bytes_read},
          {"bytes_written", s->bytes_written}, {"throttled", s->throttled},
          {"channels", s->channels},     {"grants", s->grants},
          {"sessions", s->sessions},     {"tx_packets", s->tx_packets},
          {"tx_bytes", s->tx_bytes},     {"rx_packets", s->rx_packets},
          {"rx_bytes", s->rx_bytes},     {"tx_dropped", s->tx_dropped},
          {"rx_dropped", s->rx_dropped}, {"spoofed", s->spoofed},
          {"policed", s->policed}};
}

}  // namespace viopool::pool
