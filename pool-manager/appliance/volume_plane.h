// VolumePlane: the PoolService's DataPlane on the appliance: carved volumes
// are served by the fabric's VolumeTarget, leases become its grants.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "pool-manager/appliance/ovs_bridge.h"
#include "pool-manager/pool/pool_service.h"
#include "pool-manager/target/volume_target.h"

namespace viopool::pool {

class VolumePlane final : public DataPlane {
 public:
  // Makes a crypto engine instance from DPDK devargs (the appliance passes
  // the cryptodev backend; empty: no crypto slots on this appliance).
  using CryptoFactory =
      std::function<std::unique_ptr<crypto::CryptoBackend>(const std::string& devargs)>;

  // Opens a vhost-user port served by the appliance (DPDK devargs of a
  // virtio_user port in server mode), for vNICs attached to Open vSwitch.
  using PortFactory = std::function<std::shared_ptr<NicPort>(const std::string& devargs,
                                                             std::string& why)>;

  explicit VolumePlane(VolumeTarget& target, std::uint32_t max_io_bytes = 256 * 1024,
                       CryptoFactory crypto = {}, PortFactory ports = {})
      : target_(target),
        max_io_bytes_(max_io_bytes),
        crypto_(std::move(crypto)),
        ports_(std::move(ports)) {}

  Result<void> add_volume(const FunctionRecord& f, const StorageDevice& d,
                          std::string& why) override;
  Result<void> add_crypto(const FunctionRecord& f, const StorageDevice& d,
                          std::string& why) override;
  Result<void> add_vnic(const FunctionRecord& f, const StorageDevice& d,
                        std::string& why) override;
  nlohmann::json device_info(const StorageDevice& d) override;
  // A NIC port of the inventory, opened by the appliance, and what it is.
  void add_nic_port(const std::string& device, std::shared_ptr<NicPort> port, nlohmann::json info) {
    nics_[device] = {std::move(port), std::move(info)};
  }
  // What a device of the inventory is, learnt at start (crypto engines).
  void set_device_info(const std::string& device, nlohmann::json info) {
    infos_[device] = std::move(info);
  }
  void remove_function(std::uint32_t function_id) override;
  // A NIC port switched by Open vSwitch: its uplink becomes a port of the
  // bridge (named after the device) joined to the NIC, and its vNICs become
  // ports of the bridge too.
  Result<void> attach_to_ovs(const StorageDevice& d, std::shared_ptr<NicPort> nic,
                             std::string& why);
  void grant(std::uint32_t function_id, std::uint64_t lease_id, const AuthKey& key) override {
    target_.grant(function_id, lease_id, key);
  }
  void revoke(std::uint32_t function_id, std::uint64_t lease_id) override {
    target_.revoke(function_id, lease_id);
  }
  nlohmann::json function_stats(std::uint32_t function_id) override;

 private:
  VolumeTarget& target_;
  std::uint32_t max_io_bytes_;
  CryptoFactory crypto_;
  struct Nic {
    std::shared_ptr<NicPort> port;
    nlohmann::json info;
  };
  std::map<std::string, Nic> nics_;
  std::map<std::string, nlohmann::json> infos_;
  PortFactory ports_;
  // Port `name` of the bridge and the vhost-user port (DPDK device name
  // `device`) serving its socket; null (and the OVS port gone) on failure.
  std::shared_ptr<NicPort> open_ovs_port(const OvsBridge& br, const std::string& name,
                                         const std::string& device, std::uint16_t vlan,
                                         std::string& why);
  struct OvsPort {
    OvsBridge bridge;
    FunctionRecord f;
  };
  std::map<std::uint32_t, OvsPort> ovs_ports_;  // by function id
  std::vector<std::shared_ptr<NicPort>> uplinks_;

 public:
  // Called (on the caller's thread) after a vNIC of an OVS-switched port
  // came or went, with the port's name.
  std::function<void(const std::string& device)> on_vnics_changed;
  // The vNICs attached to OVS on a port.
  std::vector<FunctionRecord> ovs_vnics(const std::string& device) const;
};

}  // namespace viopool::pool
