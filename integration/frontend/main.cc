// viopool-frontend: a vhost-user frontend on the command line. `blk` runs an
// fio-like workload against a vhost-user-blk backend and prints IOPS, MB/s and
// latency percentiles; `crypto` runs a closed-loop encrypt / hash benchmark
// against a vhost-user virtio-crypto backend; `info` prints what a blk backend
// negotiates. Parsing and printing only: the work is in blk_driver.h,
// blk_workload.h, crypto_driver.h and crypto_workload.h.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "integration/frontend/blk_driver.h"
#include "integration/frontend/blk_workload.h"
#include "integration/frontend/crypto_driver.h"
#include "integration/frontend/crypto_workload.h"
#include "vhost-backend/base/log.h"

namespace {

using nlohmann::json;
using namespace viopool::frontend;

constexpr int kExitOk = 0;
constexpr int kExitIoErrors = 1;  // request errors, verify mismatches, crypto errors
constexpr int kExitSetup = 2;     // could not connect, negotiate or start the run

struct Args {
  std::string socket;
  std::string rw = "randread";
  std::string bs;  // empty: 4k, or 64k for verify
  std::uint32_t qd = 32;
  std::uint16_t queues = 1;
  unsigned threads = 1;
  double runtime_s = 10;
  std::string size = "auto";
  unsigned rwmixread = 50;
  std::string wait_mode = "poll";
  std::uint32_t queue_size = 0;  // 0: 256, raised to fit --qd
  std::string mem = "256M";
  bool hugepages = false;
  bool indirect = false;
  bool packed = false;
  bool no_event_idx = false;
  std::vector<int> cpus;
  std::uint64_t seed = 1;
  double timeout_s = 5;
  double connect_timeout_s = 0;
  double io_timeout_s = 10;
  bool json_out = false;
  std::string log_level = "warn";
  // crypto
  std::string algo = "aes-gcm";
  std::uint32_t key_size = 16;
  std::uint32_t aad_len = 0;
};

// "4096", "4k", "64K", "1m", "2MiB", "1g" (binary multiples). False if malformed.
bool parse_bytes(const std::string& s, std::uint64_t& out) {
  if (s.empty()) {
    return false;
  }
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) {
    return false;
  }
  const auto pos = static_cast<std::size_t>(end - s.data());
  std::string unit = s.substr(pos);
  for (auto& c : unit) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::uint64_t mul = 1;
  if (unit.empty() || unit == "b") {
    mul = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    mul = 1ull << 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    mul = 1ull << 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    mul = 1ull << 30;
  } else if (unit == "t" || unit == "tb" || unit == "tib") {
    mul = 1ull << 40;
  } else {
    return false;
  }
  if (v > ~std::uint64_t{0} / mul) {
    return false;
  }
  out = v * mul;
  return true;
}

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
}

json feature_names(viopool::virtio::FeatureSet f,
                   const char* (*name_of)(unsigned) = blk_feature_name) {
  json a = json::array();
  for (unsigned bit = 0; bit < 64; ++bit) {
    if (f.has(bit)) {
      const char* n = name_of(bit);
      a.push_back(n ? std::string(n) : "bit" + std::to_string(bit));
    }
  }
  return a;
}

json protocol_names(std::uint64_t f) {
  json a = json::array();
  for (unsigned bit = 0; bit < 64; ++bit) {
    if ((f >> bit) & 1) {
      const char* n = vhost_user::protocol_feature_name(bit);
      a.push_back(n ? std::string(n) : "bit" + std::to_string(bit));
    }
  }
  return a;
}

std::string join(const json& a) {
  std::string s;
  for (const auto& v : a) {
    s += (s.empty() ? "" : ",") + v.get<std::string>();
  }
  return s.empty() ? "none" : s;
}

// What any driver negotiated: ring layout, features (named by `name_of`) and
// protocol features, added to a device's JSON object.
template <typename Driver>
json with_negotiated(json j, Driver& d, const char* (*name_of)(unsigned)) {
  j["ring"] = d.ring_layout() == RingLayout::kPacked ? "packed" : "split";
  j["offered_features"] = feature_names(d.offered_features(), name_of);
  j["features"] = feature_names(d.features(), name_of);
  j["offered_protocol_features"] = protocol_names(d.offered_protocol_features());
  j["protocol_features"] = protocol_names(d.protocol_features());
  return j;
}

json device_json(BlkDriver& d) {
  const BlkConfig& c = d.config();
  return with_negotiated(json{{"capacity_bytes", d.capacity_bytes()},
                              {"blk_size", c.blk_size},
                              {"seg_max", c.seg_max},
                              {"size_max", c.size_max},
                              {"num_queues", c.num_queues},
                              {"backend_queues", d.backend_queue_count()},
                              {"max_discard_sectors", c.max_discard_sectors},
                              {"max_discard_seg", c.max_discard_seg},
                              {"max_write_zeroes_sectors", c.max_write_zeroes_sectors},
                              {"max_write_zeroes_seg", c.max_write_zeroes_seg},
                              {"opt_io_size", c.opt_io_size}},
                         d, blk_feature_name);
}

// Names of the set bits of a 64-bit algorithm mask (lo: bits 0-31, hi: 32-63).
json mask_names(std::uint32_t lo, std::uint32_t hi, const char* (*name_of)(std::uint32_t)) {
  json a = json::array();
  const std::uint64_t mask = (std::uint64_t{hi} << 32) | lo;
  for (std::uint32_t bit = 0; bit < 64; ++bit) {
    if ((mask >> bit) & 1) {
      const char* n = name_of(bit);
      a.push_back(n ? std::string(n) : "bit" + std::to_string(bit));
    }
  }
  return a;
}

json crypto_device_json(CryptoDriver& d) {
  const CryptoConfig& c = d.config();
  return with_negotiated(
      json{{"status", c.status},
           {"hw_ready", c.hw_ready()},
           {"max_dataqueues", c.max_dataqueues},
           {"control_ring", d.control_ring_index()},
           {"backend_queues", d.backend_queue_count()},
           {"services", mask_names(c.crypto_services, 0, crypto_service_name)},
           {"ciphers", mask_names(c.cipher_algo_l, c.cipher_algo_h, crypto_cipher_name)},
           {"hashes", mask_names(c.hash_algo, 0, crypto_hash_name)},
           {"macs", mask_names(c.mac_algo_l, c.mac_algo_h, crypto_mac_name)},
           {"aeads", mask_names(c.aead_algo, 0, crypto_aead_name)},
           {"akcipher_algo", c.akcipher_algo},
           {"max_cipher_key_len", c.max_cipher_key_len},
           {"max_auth_key_len", c.max_auth_key_len},
           {"max_size", c.max_size}},
      d, crypto_feature_name);
}

json latency_json(const LatencyHistogram& h) {
  auto us = [](double ns) { return ns / 1000.0; };
  return json{{"min", us(static_cast<double>(h.min()))},
              {"mean", us(h.mean())},
              {"p50", us(static_cast<double>(h.percentile(0.50)))},
              {"p99", us(static_cast<double>(h.percentile(0.99)))},
              {"p999", us(static_cast<double>(h.percentile(0.999)))},
              {"max", us(static_cast<double>(h.max()))}};
}

json op_json(const OpStats& s, double seconds) {
  const double secs = seconds > 0 ? seconds : 1;
  return json{{"ios", s.ios},       {"iops", static_cast<double>(s.ios) / secs},
              {"bytes", s.bytes},   {"mb_s", static_cast<double>(s.bytes) / secs / 1e6},
              {"errors", s.errors}, {"lat_us", latency_json(s.latency)}};
}

void print_op(const char* name, const json& j) {
  const auto& l = j["lat_us"];
  std::printf(
      "  %-5s ios=%llu iops=%.0f MB/s=%.1f errors=%llu lat(us) min=%.1f p50=%.1f p99=%.1f "
      "p999=%.1f max=%.1f\n",
      name, j["ios"].get<unsigned long long>(), j["iops"].get<double>(), j["mb_s"].get<double>(),
      j["errors"].get<unsigned long long>(), l["min"].get<double>(), l["p50"].get<double>(),
      l["p99"].get<double>(), l["p999"].get<double>(), l["max"].get<double>());
}

// Fills what BlkDriverOptions and CryptoDriverOptions share. A request takes
// up to `descs_per_request` descriptors without indirect tables, which sizes
// the default ring; `need` is the guest memory the run's buffers take.
template <typename Options>
void fill_common_options(const Args& a, std::uint32_t descs_per_request, std::uint64_t need,
                         Options& o, std::string& err) {
  o.socket_path = a.socket;
  o.num_queues = a.queues;
  std::uint32_t qsize = a.queue_size;
  if (qsize == 0) {
    // Make the ring large enough that --qd, not the ring, limits.
    qsize = 256;
    while (qsize < 1024 && qsize < a.qd * descs_per_request) {
      qsize *= 2;
    }
  }
  if (qsize == 0 || qsize > 32768 || (qsize & (qsize - 1)) != 0) {
    err = "--queue-size must be a power of two up to 32768";
    return;
  }
  o.queue_size = static_cast<std::uint16_t>(qsize);
  std::uint64_t mem = 0;
  if (!parse_bytes(a.mem, mem) || mem == 0) {
    err = "--mem: not a size: " + a.mem;
    return;
  }
  // Rings, slots and buffers must fit: grow guest memory for large runs.
  o.arena.size = std::max(mem, need + need / 4);
  o.arena.huge_pages = a.hugepages ? HugePages::kYes : HugePages::kNo;
  o.frontend.timeout = seconds_to_ms(a.timeout_s);
  o.frontend.connect_timeout = seconds_to_ms(a.connect_timeout_s);
  o.use_indirect = a.indirect ? Indirect::kYes : Indirect::kNo;
  o.ring_layout = a.packed ? RingLayout::kPacked : RingLayout::kSplit;
  if (a.no_event_idx) {
    o.exclude = o.exclude.with(viopool::virtio::kFeatureRingEventIdx);
  }
}

BlkDriverOptions driver_options(const Args& a, std::uint32_t bs, std::string& err) {
  BlkDriverOptions o;
  // Header, data, status.
  const std::uint64_t need = std::uint64_t{a.queues} * (std::uint64_t{a.qd} * bs + (4u << 20));
  fill_common_options(a, 3, need, o, err);
  return o;
}

CryptoDriverOptions crypto_driver_options(const Args& a, std::uint32_t bs, std::string& err) {
  CryptoDriverOptions o;
  // Header, iv, src, aad, dst (+ hash result), status; src and dst buffers
  // per operation plus slots, rings and indirect tables per queue, and one
  // more queue's worth for the control queue.
  const std::uint64_t need = (std::uint64_t{a.queues} + 1) *
                             (std::uint64_t{a.qd} * (2 * std::uint64_t{bs} + 256) + (4u << 20));
  fill_common_options(a, 6, need, o, err);
  return o;
}

// Connects a driver with options `o` built with error `err` (empty: none);
// null after printing why it failed.
template <typename Driver, typename Options>
std::unique_ptr<Driver> connect_driver(const Options& o, const std::string& err) {
  if (!err.empty()) {
    std::fprintf(stderr, "viopool-frontend: %s\n", err.c_str());
    return nullptr;
  }
  std::string why;
  auto d = Driver::connect(o, &why);
  if (!d) {
    std::fprintf(stderr, "viopool-frontend: %s\n", why.c_str());
    return nullptr;
  }
  return std::move(*d);
}

// Fills the closed-loop options WorkloadOptions and CryptoWorkloadOptions
// share; false after printing why --wait-mode is wrong.
template <typename WorkloadOptionsT>
bool fill_loop_options(const Args& a, WorkloadOptionsT& w) {
  if (a.wait_mode != "poll" && a.wait_mode != "interrupt") {
    std::fprintf(stderr, "viopool-frontend: --wait-mode is poll or interrupt\n");
    return false;
  }
  w.queue_depth = a.qd;
  w.runtime = seconds_to_ms(a.runtime_s);
  w.wait_mode = a.wait_mode == "poll" ? WaitMode::kPoll : WaitMode::kInterrupt;
  w.threads = a.threads;
  w.cpus = a.cpus;
  w.seed = a.seed;
  w.io_timeout = seconds_to_ms(a.io_timeout_s);
  return true;
}

// Connects with driver options `o` (built with error `err`), runs the
// workload with run(driver, w, &why) and returns report(driver, report)'s
// exit status; kExitSetup, after saying why, when either step fails.
template <typename Driver, typename Options, typename WorkloadOptionsT, typename Run,
          typename Report>
int run_workload(const Options& o, const std::string& err, const WorkloadOptionsT& w, Run&& run,
                 Report&& report) {
  auto d = connect_driver<Driver>(o, err);
  if (!d) {
    return kExitSetup;
  }
  std::string why;
  auto rep = run(*d, w, &why);
  if (!rep) {
    std::fprintf(stderr, "viopool-frontend: %s\n",
                 why.empty() ? viopool::to_string(rep.error()).c_str() : why.c_str());
    return kExitSetup;
  }
  return report(*d, *rep);
}

// The keys every workload's JSON report starts with.
template <typename WorkloadOptionsT, typename Driver>
json run_json(const Args& a, const WorkloadOptionsT& w, Driver& drv, double seconds) {
  return json{{"qd", w.queue_depth},
              {"queues", drv.num_queues()},
              {"threads", effective_threads(w.threads, drv.num_queues())},
              {"wait_mode", a.wait_mode},
              {"runtime_s", seconds}};
}

// Prints the report (`j` with --json, else print_text()), repeats the first
// error on stderr when stdout is JSON, stops the driver and returns the exit
// status: kExitIoErrors when `bad`.
template <typename Driver, typename PrintText>
int finish_run(const Args& a, Driver& drv, const json& j, const std::string& first_error, bool bad,
               PrintText&& print_text) {
  if (a.json_out) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_text();
  }
  if (!first_error.empty() && a.json_out) {
    std::fprintf(stderr, "viopool-frontend: %s\n", first_error.c_str());
  }
  if (auto s = drv.stop(); !s) {
    std::fprintf(stderr, "viopool-frontend: stopping the queues failed: %s\n",
                 drv.frontend().last_error_detail().c_str());
  }
  return bad ? kExitIoErrors : kExitOk;
}

int run_info(const Args& a) {
  std::string err;
  BlkDriverOptions o = driver_options(a, 4096, err);
  o.num_queues = 1;
  auto d = connect_driver<BlkDriver>(o, err);
  if (!d) {
    return kExitSetup;
  }
  json j = device_json(*d);
  auto bases = d->stop();
  if (a.json_out) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("socket:            %s\n", a.socket.c_str());
    std::printf("capacity:          %llu bytes (%llu sectors)\n",
                j["capacity_bytes"].get<unsigned long long>(),
                j["capacity_bytes"].get<unsigned long long>() / 512);
    std::printf("blk_size:          %u\n", j["blk_size"].get<unsigned>());
    std::printf("seg_max/size_max:  %u / %u\n", j["seg_max"].get<unsigned>(),
                j["size_max"].get<unsigned>());
    std::printf("queues:            %u (config), %u (GET_QUEUE_NUM)\n",
                j["num_queues"].get<unsigned>(), j["backend_queues"].get<unsigned>());
    std::printf("discard:           max %u sectors, %u segments\n",
                j["max_discard_sectors"].get<unsigned>(), j["max_discard_seg"].get<unsigned>());
    std::printf("write zeroes:      max %u sectors, %u segments\n",
                j["max_write_zeroes_sectors"].get<unsigned>(),
                j["max_write_zeroes_seg"].get<unsigned>());
    std::printf("ring layout:       %s\n", j["ring"].get<std::string>().c_str());
    std::printf("offered features:  %s\n", join(j["offered_features"]).c_str());
    std::printf("acked features:    %s\n", join(j["features"]).c_str());
    std::printf("offered protocol:  %s\n", join(j["offered_protocol_features"]).c_str());
    std::printf("acked protocol:    %s\n", join(j["protocol_features"]).c_str());
  }
  if (!bases) {
    std::fprintf(stderr, "viopool-frontend: stopping the queue failed: %s\n",
                 d->frontend().last_error_detail().c_str());
    return kExitSetup;
  }
  return kExitOk;
}

// Prints a blk run (JSON or text), stops the driver and returns the exit status.
int report_blk(const Args& a, const WorkloadOptions& w, BlkDriver& drv, const WorkloadReport& r) {
  const double secs = r.seconds > 0 ? r.seconds : 1;
  json j = run_json(a, w, drv, r.seconds);
  j.update(json{{"rw", a.rw},
                {"bs", w.block_size},
                {"size", w.size != 0 ? w.size : drv.capacity_bytes()},
                {"device", device_json(drv)},
                {"ios", r.ios()},
                {"iops", static_cast<double>(r.ios()) / secs},
                {"mb_s", static_cast<double>(r.read.bytes + r.write.bytes) / secs / 1e6},
                {"mib_s", static_cast<double>(r.read.bytes + r.write.bytes) / secs / (1 << 20)},
                {"errors", r.errors()},
                {"lat_us", latency_json(r.latency)},
                {"read", op_json(r.read, r.seconds)},
                {"write", op_json(r.write, r.seconds)},
                {"kicks", r.kicks},
                {"kicks_suppressed", r.kicks_suppressed}});
  if (w.rw == RwMode::kVerify) {
    j["verify"] = json{{"bytes", r.verify_bytes},
                       {"mismatches", r.verify_mismatches},
                       {"readback_ios", r.verify_readback_ios}};
  }
  j["first_error"] = r.first_error;
  const bool bad = r.errors() != 0 || r.verify_mismatches != 0;
  return finish_run(a, drv, j, r.first_error, bad, [&] {
    std::printf(
        "viopool-frontend blk: rw=%s bs=%u qd=%u queues=%u wait=%s runtime=%.2fs "
        "size=%llu\n",
        a.rw.c_str(), w.block_size, w.queue_depth, drv.num_queues(), a.wait_mode.c_str(), r.seconds,
        j["size"].get<unsigned long long>());
    std::printf("  device: capacity=%llu features=%s\n",
                static_cast<unsigned long long>(drv.capacity_bytes()),
                join(j["device"]["features"]).c_str());
    if (r.read.ios > 0) {
      print_op("read", j["read"]);
    }
    if (r.write.ios > 0) {
      print_op("write", j["write"]);
    }
    const auto& l = j["lat_us"];
    std::printf(
        "  all   ios=%llu iops=%.0f MB/s=%.1f errors=%llu lat(us) p50=%.1f p99=%.1f "
        "p999=%.1f\n",
        static_cast<unsigned long long>(r.ios()), j["iops"].get<double>(), j["mb_s"].get<double>(),
        static_cast<unsigned long long>(r.errors()), l["p50"].get<double>(), l["p99"].get<double>(),
        l["p999"].get<double>());
    if (w.rw == RwMode::kVerify) {
      std::printf("  verify: %llu bytes compared, %llu mismatches, %llu read-back reads\n",
                  static_cast<unsigned long long>(r.verify_bytes),
                  static_cast<unsigned long long>(r.verify_mismatches),
                  static_cast<unsigned long long>(r.verify_readback_ios));
    }
    if (!r.first_error.empty()) {
      std::printf("  first error: %s\n", r.first_error.c_str());
    }
  });
}

int run_blk(const Args& a) {
  WorkloadOptions w;
  if (!parse_rw_mode(a.rw, w.rw)) {
    std::fprintf(stderr, "viopool-frontend: unknown --rw %s\n", a.rw.c_str());
    return kExitSetup;
  }
  std::uint64_t bs = 0;
  const std::string bs_text = a.bs.empty() ? (w.rw == RwMode::kVerify ? "64k" : "4k") : a.bs;
  if (!parse_bytes(bs_text, bs) || bs == 0 || bs % 512 != 0 || bs > (1u << 30)) {
    std::fprintf(stderr, "viopool-frontend: --bs must be a multiple of 512: %s\n", bs_text.c_str());
    return kExitSetup;
  }
  w.block_size = static_cast<std::uint32_t>(bs);
  if (a.size != "auto" && (!parse_bytes(a.size, w.size) || w.size == 0)) {
    std::fprintf(stderr, "viopool-frontend: --size is not a size: %s\n", a.size.c_str());
    return kExitSetup;
  }
  w.rw_mix_read = a.rwmixread;
  if (!fill_loop_options(a, w)) {
    return kExitSetup;
  }

  std::string err;
  const BlkDriverOptions o = driver_options(a, w.block_size, err);
  return run_workload<BlkDriver>(
      o, err, w, run_blk_workload,
      [&](BlkDriver& drv, const WorkloadReport& r) { return report_blk(a, w, drv, r); });
}

// Prints a crypto run (JSON or text), stops the driver and returns the exit status.
int report_crypto(const Args& a, const CryptoWorkloadOptions& w, CryptoDriver& drv,
                  const CryptoWorkloadReport& r) {
  const auto& h = r.latency;
  json statuses = json::object();
  for (std::size_t st = 0; st < r.status_counts.size(); ++st) {
    if (r.status_counts[st] != 0) {
      statuses[crypto_status_name(static_cast<std::uint8_t>(st))] = r.status_counts[st];
    }
  }
  std::string first_error = r.first_error;
  if (first_error.empty() && r.destroy_status != viopool::crypto::kStatusOk) {
    first_error = std::string("destroy session: status ") + crypto_status_name(r.destroy_status);
  }
  json j = run_json(a, w, drv, r.seconds);
  j.update(json{{"algo", crypto_algo_name(w.algo)},
                {"key_size", w.key_size},
                {"bs", w.block_size},
                {"aad_len", w.aad_len},
                {"device", crypto_device_json(drv)},
                {"session_id", r.session_id},
                {"ops", r.ops},
                {"ops_per_sec", r.ops_per_sec()},
                {"gbps", r.gbps()},
                {"payload_bytes", r.payload_bytes},
                {"errors", r.errors},
                {"status_counts", statuses},
                {"lat_ns", json{{"min", h.min()},
                                {"mean", h.mean()},
                                {"p50", h.percentile(0.50)},
                                {"p99", h.percentile(0.99)},
                                {"p999", h.percentile(0.999)},
                                {"max", h.max()}}},
                {"destroy_status", crypto_status_name(r.destroy_status)},
                {"kicks", r.kicks},
                {"kicks_suppressed", r.kicks_suppressed},
                {"first_error", first_error}});
  const bool bad = r.errors != 0 || r.destroy_status != viopool::crypto::kStatusOk;
  return finish_run(a, drv, j, first_error, bad, [&] {
    std::printf(
        "viopool-frontend crypto: algo=%s key=%u bs=%u qd=%u queues=%u wait=%s "
        "runtime=%.2fs\n",
        crypto_algo_name(w.algo), w.key_size, w.block_size, w.queue_depth, drv.num_queues(),
        a.wait_mode.c_str(), r.seconds);
    std::printf("  device: max_dataqueues=%u services=%s features=%s\n",
                drv.config().max_dataqueues, join(j["device"]["services"]).c_str(),
                join(j["device"]["features"]).c_str());
    std::printf("  ops=%llu ops/s=%.0f Gbps=%.3f errors=%llu lat(ns) p50=%llu p99=%llu p999=%llu\n",
                static_cast<unsigned long long>(r.ops), r.ops_per_sec(), r.gbps(),
                static_cast<unsigned long long>(r.errors),
                static_cast<unsigned long long>(h.percentile(0.50)),
                static_cast<unsigned long long>(h.percentile(0.99)),
                static_cast<unsigned long long>(h.percentile(0.999)));
    std::string st;
    for (const auto& [name, count] : statuses.items()) {
      st += (st.empty() ? "" : " ") + name + "=" + std::to_string(count.get<unsigned long long>());
    }
    std::printf("  status: %s\n", st.empty() ? "none" : st.c_str());
    if (!first_error.empty()) {
      std::printf("  first error: %s\n", first_error.c_str());
    }
  });
}

int run_crypto(const Args& a) {
  CryptoWorkloadOptions w;
  if (!parse_crypto_algo(a.algo, w.algo)) {
    std::fprintf(stderr, "viopool-frontend: unknown --algo %s\n", a.algo.c_str());
    return kExitSetup;
  }
  std::uint64_t bs = 0;
  const std::string bs_text = a.bs.empty() ? "4k" : a.bs;
  if (!parse_bytes(bs_text, bs) || bs == 0 || bs > (1u << 30)) {
    std::fprintf(stderr, "viopool-frontend: --bs must be 1 byte to 1 GiB: %s\n", bs_text.c_str());
    return kExitSetup;
  }
  if (!fill_loop_options(a, w)) {
    return kExitSetup;
  }
  w.block_size = static_cast<std::uint32_t>(bs);
  w.key_size = a.key_size;
  w.aad_len = a.aad_len;

  std::string err;
  const CryptoDriverOptions o = crypto_driver_options(a, w.block_size, err);
  return run_workload<CryptoDriver>(o, err, w, run_crypto_workload,
                                    [&](CryptoDriver& drv, const CryptoWorkloadReport& r) {
                                      return report_crypto(a, w, drv, r);
                                    });
}

void add_connection_options(CLI::App* c, Args& a) {
  c->add_option("--socket,-s", a.socket, "vhost-user unix socket the backend listens on")
      ->required();
  c->add_option("--timeout", a.timeout_s,
                "seconds to wait for each vhost-user reply before failing")
      ->default_val(5);
  c->add_option("--connect-timeout", a.connect_timeout_s,
                "seconds to keep retrying a socket that is missing or refuses connections "
                "(a backend still starting); 0 tries once")
      ->default_val(0);
  c->add_option("--mem", a.mem,
                "guest memory shared with the backend (memfd), e.g. 256M; grown automatically "
                "when the buffers need more")
      ->default_val("256M");
  c->add_flag("--hugepages", a.hugepages,
              "back guest memory with hugetlb pages (memfd MFD_HUGETLB; needs reserved "
              "2 MiB pages)");
  c->add_option("--queue-size", a.queue_size,
                "descriptors per virtqueue (power of two); default 256, raised up to 1024 so "
                "that --qd requests fit")
      ->default_val(0);
  c->add_flag("--indirect", a.indirect,
              "put each request's buffers in an indirect descriptor table (if the device "
              "offers INDIRECT_DESC)");
  c->add_flag("--packed", a.packed,
              "use packed virtqueues (ack VIRTIO_F_RING_PACKED, feature bit 34); fails at "
              "set-up with a message if the backend does not offer it");
  c->add_flag("--no-event-idx", a.no_event_idx,
              "do not ack VIRTIO_RING_F_EVENT_IDX (use the ring flags for notifications)");
  c->add_option("--log-level", a.log_level, "trace, debug, info, warn, error or off")
      ->default_val("warn");
  c->add_flag("--json", a.json_out, "print one JSON object on stdout instead of text");
}

// How blk and crypto name their work in the help of the options they share.
struct WorkloadNouns {
  const char* item;   // what is in flight: "requests", "operations"
  const char* queue;  // what carries it: "queue", "data queue"
  const char* work;   // what --runtime times: "I/O", "operations"
};

// --qd, --queues, --threads and --runtime (--queues' help is the device's).
void add_queue_options(CLI::App* c, Args& a, const WorkloadNouns& n, const char* queues_help) {
  c->add_option("--qd", a.qd, std::string(n.item) + " in flight per " + n.queue)->default_val(32);
  c->add_option("--queues", a.queues, queues_help)->default_val(1);
  c->add_option(
       "--threads", a.threads,
       std::string("threads driving the ") + n.queue + "s (queue i runs on thread i mod N)")
      ->default_val(1);
  c->add_option("--runtime", a.runtime_s,
                std::string("seconds of ") + n.work + " (fractions allowed)")
      ->default_val(10);
}

// --wait-mode, --cpus, --seed and --io-timeout (--seed's help says what it seeds).
void add_loop_options(CLI::App* c, Args& a, const WorkloadNouns& n, const char* wait_mode_help,
                      const char* seed_help) {
  c->add_option("--wait-mode", a.wait_mode, wait_mode_help)->default_val("poll");
  c->add_option("--cpus", a.cpus, "pin thread i to CPU cpus[i mod n], e.g. --cpus 1,2")
      ->delimiter(',');
  c->add_option("--seed", a.seed, seed_help)->default_val(1);
  c->add_option("--io-timeout", a.io_timeout_s,
                std::string("seconds without any completion, with ") + n.item +
                    " in flight, before the run fails as stalled")
      ->default_val(10);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "viopool-frontend: a vhost-user frontend (the VMM/driver side) for testing and "
      "benchmarking vhost-user backends (virtio-blk and virtio-crypto).\n"
      "It connects to a backend's unix socket, negotiates features (VERSION_1, EVENT_IDX, "
      "INDIRECT_DESC, virtio-blk SEG_MAX/BLK_SIZE/FLUSH/MQ/DISCARD/WRITE_ZEROES/RO/...; for "
      "virtio-crypto never REVISION_1) and protocol features (MQ, REPLY_ACK, CONFIG), shares "
      "memfd-backed guest memory placed at guest-physical 4 GiB, sets up split virtqueues "
      "(packed ones with --packed) and drives them as a guest driver would."};
  app.footer(
      "Exit status: 0 success; 1 a request failed (a blk I/O error or verify mismatch, a crypto "
      "operation or session teardown with a status other than OK); 2 the backend could not be "
      "reached, negotiated with or driven, or refused the crypto session (message on stderr).\n"
      "Examples: viopool-frontend blk --socket /run/vblk0.sock --rw randread --bs 4k --qd 32 "
      "--runtime 10 --json\n"
      "          viopool-frontend crypto --socket /run/vcrypto0.sock --algo aes-gcm --bs 4k "
      "--qd 32 --runtime 10 --json");
  app.require_subcommand(1);

  auto* blk = app.add_subcommand(
      "blk",
      "run an fio-like workload against a vhost-user-blk backend and print IOPS, MB/s "
      "(10^6 bytes/s) and latency min/p50/p99/p99.9/max in microseconds, per direction and "
      "overall. Latency comes from a fixed-memory log-linear histogram (within 1.6 %). Each "
      "queue keeps --qd requests in flight (closed loop); by default the used rings are "
      "busy-polled with interrupts suppressed, so the numbers measure the backend rather than "
      "eventfd wake-ups. Nothing is pinned unless --cpus is given.");
  add_connection_options(blk, a);
  blk->add_option("--rw", a.rw,
                  "read | write: sequential, each queue over its own slice of the region; "
                  "randread | randwrite | randrw: random --bs-aligned offsets over the whole "
                  "region; verify: patterned writes (and reads) at random offsets and sizes "
                  "(multiples of the device block size up to --bs) for --runtime, then every "
                  "written block is read back and compared; requests never overlap while in "
                  "flight, so any difference is the backend's fault")
      ->default_val("randread");
  blk->add_option("--bs", a.bs,
                  "bytes per request (k/m/g suffixes, binary); with --rw verify the largest "
                  "request. Default 4k, or 64k for verify");
  const WorkloadNouns blk_nouns{"requests", "queue", "I/O"};
  add_queue_options(blk, a, blk_nouns, "virtqueues to use (the device must offer as many)");
  blk->add_option("--size", a.size,
                  "bytes of the device to use, from offset 0 (k/m/g/t suffixes), or auto for "
                  "the whole capacity from GET_CONFIG")
      ->default_val("auto");
  blk->add_option("--rwmixread", a.rwmixread, "randrw: percentage of reads")->default_val(50);
  add_loop_options(blk, a, blk_nouns,
                   "poll: busy-poll the used rings; interrupt: sleep on the call eventfds "
                   "(measures notification latency too)",
                   "random seed for offsets, sizes and patterns");

  auto* cry = app.add_subcommand(
      "crypto",
      "benchmark a vhost-user virtio-crypto backend: create one session (an encrypt session for "
      "the ciphers, a hash or MAC session otherwise) on the control queue, keep --qd operations "
      "of --bs bytes in flight on each data queue for --runtime seconds (a fresh IV each), then "
      "destroy the session. Prints operations/s, payload Gbps (10^9 bits/s of source data of "
      "operations that completed OK), latency p50/p99/p99.9 in nanoseconds (fixed-memory "
      "log-linear histogram, within 1.6 %), errors and the count of each completion status. The "
      "used rings are busy-polled with interrupts suppressed unless --wait-mode interrupt. "
      "Nothing is pinned unless --cpus is given. The control queue is the vring at index "
      "max_dataqueues from the config space.");
  add_connection_options(cry, a);
  cry->add_option("--algo", a.algo,
                  "aes-gcm: AEAD encrypt (12-byte IV, 16-byte tag appended to the output); "
                  "aes-cbc | aes-ctr: cipher encrypt (16-byte IV; CBC needs --bs a multiple of "
                  "16); sha256: hash; hmac-sha256: MAC (--key-size key bytes); 32-byte results")
      ->default_val("aes-gcm");
  cry->add_option("--key-size", a.key_size,
                  "key bytes: 16, 24 or 32 for AES; 1..128 for HMAC; ignored for sha256")
      ->default_val(16);
  cry->add_option("--bs", a.bs,
                  "source bytes per operation (k/m/g suffixes, binary), e.g. 64, 1k, 4k. "
                  "Default 4k");
  cry->add_option("--aad-len", a.aad_len, "aes-gcm: additional authenticated data bytes (0-512)")
      ->default_val(0);
  const WorkloadNouns crypto_nouns{"operations", "data queue", "operations"};
  add_queue_options(cry, a, crypto_nouns,
                    "data queues to use (at most the config's max_dataqueues)");
  add_loop_options(cry, a, crypto_nouns,
                   "poll: busy-poll the used rings; interrupt: sleep on the call eventfds",
                   "seed for the key, IVs and payload bytes");

  auto* info = app.add_subcommand(
      "info",
      "connect to a vhost-user-blk backend, negotiate, and print its features, protocol "
      "features, queue count and config space (capacity, limits)");
  add_connection_options(info, a);

  CLI11_PARSE(app, argc, argv);
  viopool::log::init("viopool-frontend",
                     viopool::log::parse_level(a.log_level, viopool::log::Level::kWarn));
  if (*blk) {
    return run_blk(a);
  }
  if (*cry) {
    return run_crypto(a);
  }
  return run_info(a);
}
