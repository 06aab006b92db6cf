#include "pool-manager/appliance/volume_plane.h"

namespace viopool::pool {

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

nlohmann::json VolumePlane::function_stats(std::uint32_t function_id) {
  const auto s = target_.volume_stats(function_id);
  if (!s) {
    return nlohmann::json::object();
  }
  return {{"requests", s->requests},     {"completions", s->completions},
          {"errors", s->errors},         {"bytes_read", s->bytes_read},
          {"bytes_written", s->bytes_written}, {"throttled", s->throttled},
          {"channels", s->channels},     {"grants", s->grants},
          {"sessions", s->sessions}};
}

}  // namespace viopool::pool
