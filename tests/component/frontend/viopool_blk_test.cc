// Our vhost-user frontend against viopool-host's virtio-blk device: discard
// and write-zeroes, data reaching the backing file, flush and GET_ID, error
// statuses, and a guest that posts malformed chains or corrupts its ring —
// which costs it its own requests or queue, never the daemon or another device.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "integration/frontend/blk_driver.h"
#include "tests/component/frontend/blk_requests.h"
#include "tests/component/frontend/printers.h"
#include "tests/support/process.h"
#include "tests/support/viopool_harness.h"

using namespace viopool;
using namespace viopool::frontend;
using namespace viopool::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr std::uint64_t kImageBytes = std::uint64_t{32} << 20;

// viopool-host with blk devices vol0 (2 queues) and vol1 on fresh image files.
struct ViopoolBlk {
  ViopoolBlk() {
    for (const char* n : {"vol0", "vol1"}) {
      const std::string img = dir.file(std::string(n) + ".img");
      std::ofstream(img).close();
      BOOST_REQUIRE(::truncate(img.c_str(), kImageBytes) == 0);
    }
    json devs = json::array();
    devs.push_back({{"name", "vol0"},
                    {"type", "blk"},
                    {"socket", dir.file("vol0.vhost")},
                    {"queues", 2},
                    {"serial", "viopool-vol0"},
                    {"backend", {{"kind", "uring"}, {"path", dir.file("vol0.img")}}}});
    devs.push_back({{"name", "vol1"},
                    {"type", "blk"},
                    {"socket", dir.file("vol1.vhost")},
                    {"backend", {{"kind", "uring"}, {"path", dir.file("vol1.img")}}}});
    host.emplace(dir, json{{"devices", devs}});
  }
  std::unique_ptr<BlkDriver> connect(const std::string& name, std::uint16_t queues = 1) {
    BlkDriverOptions o;
    o.socket_path = dir.file(name + ".vhost");
    o.num_queues = queues;
    std::string why;
    auto d = BlkDriver::connect(o, &why);
    BOOST_REQUIRE_MESSAGE(d.has_value(), why);
    return std::move(*d);
  }

  TempDir dir;
  std::optional<HostProc> host;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(viopool_blk, ViopoolBlk)

BOOST_AUTO_TEST_CASE(negotiation_and_config_match_the_device) {
  auto d = connect("vol0", 2);
  BOOST_TEST(d->capacity_bytes() == kImageBytes);
  BOOST_TEST(d->backend_queue_count() == 2u);
  BOOST_TEST(d->has_feature(blk::kFeatFlush));
  BOOST_TEST(d->has_feature(blk::kFeatDiscard));
  BOOST_TEST(d->has_feature(blk::kFeatWriteZeroes));
  BOOST_TEST(d->config().num_queues == 2);
  BOOST_TEST(d->config().max_discard_seg == 1u);
  auto id = alloc(*d, 20);
  BOOST_TEST(run(*d, blk::kTypeGetId, 0, {}, {to_blk_buffer(id)}) == blk::kStatusOk);
  BOOST_TEST(std::memcmp(id.bytes().data(), "viopool-vol0", 12) == 0);
}

BOOST_AUTO_TEST_CASE(written_data_lands_in_the_backing_file) {
  auto d = connect("vol0");
  auto buf = alloc(*d, 8192);
  fill_pattern(buf.bytes(), 4096 * 512, 99);
  BOOST_TEST(run(*d, blk::kTypeOut, 4096, {to_blk_buffer(buf)}, {}) == blk::kStatusOk);
  BOOST_TEST(run(*d, blk::kTypeFlush, 0, {}, {}) == blk::kStatusOk);
  std::ifstream f(dir.file("vol0.img"), std::ios::binary);
  f.seekg(4096 * 512);
  std::vector<char> got(8192);
  f.read(got.data(), static_cast<std::streamsize>(got.size()));
  BOOST_TEST(std::memcmp(got.data(), buf.bytes().data(), got.size()) == 0);
}

BOOST_AUTO_TEST_CASE(discard_and_write_zeroes_read_back_as_zeroes) {
  auto d = connect("vol0");
  auto data = alloc(*d, 64 * 1024);
  auto back = alloc(*d, 64 * 1024);
  struct Case {
    std::uint32_t type;
    bool unmap;
    std::uint64_t sector;
  };
  for (const Case& k : {Case{blk::kTypeWriteZeroes, false, 2048}, Case{blk::kTypeWriteZeroes, true, 4096},
                        Case{blk::kTypeDiscard, false, 8192}}) {
    BOOST_TEST_CONTEXT("type " << k.type << " unmap " << k.unmap) {
      fill_pattern(data.bytes(), k.sector * 512, k.sector);
      BOOST_TEST(run(*d, blk::kTypeOut, k.sector, {to_blk_buffer(data)}, {}) == blk::kStatusOk);
      const BlkRange r{k.sector + 32, 64, k.unmap};
      auto s = k.type == blk::kTypeDiscard ? d->discard(0, std::span<const BlkRange>(&r, 1), 1)
                                         : d->write_zeroes(0, std::span<const BlkRange>(&r, 1), 1);
      BOOST_REQUIRE(s.has_value());
      BOOST_REQUIRE(d->kick(0).has_value());
      BOOST_TEST(collect(*d, 0, 1)[0].status == blk::kStatusOk);
      BOOST_TEST(run(*d, blk::kTypeIn, k.sector, {}, {to_blk_buffer(back)}) == blk::kStatusOk);
      auto b = back.bytes();
      BOOST_TEST(all_zero(b.subspan(16 * 1024, 32 * 1024)));
      BOOST_TEST(std::memcmp(b.data(), data.bytes().data(), 16 * 1024) == 0);
      BOOST_TEST(std::memcmp(b.data() + 48 * 1024, data.bytes().data() + 48 * 1024, 16 * 1024) == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_requests_get_error_statuses_and_good_ones_still_work) {
  auto d = connect("vol0");
  auto buf = alloc(*d, 4096);
  BOOST_TEST(run(*d, 0x7f, 0, {}, {to_blk_buffer(buf)}) == blk::kStatusUnsupp);
  BOOST_TEST(run(*d, blk::kTypeIn, kImageBytes / 512, {}, {to_blk_buffer(buf)}) == blk::kStatusIoErr);
  BOOST_TEST(run(*d, blk::kTypeIn, UINT64_MAX - 1, {}, {to_blk_buffer(buf)}) == blk::kStatusIoErr);
  const BlkRange past{kImageBytes / 512 - 4, 8, false};
  BOOST_REQUIRE(d->discard(0, std::span<const BlkRange>(&past, 1), 7).has_value());
  BOOST_REQUIRE(d->kick(0).has_value());
  BOOST_TEST(collect(*d, 0, 1)[0].status == blk::kStatusIoErr);
  BOOST_TEST(run(*d, blk::kTypeIn, 0, {}, {to_blk_buffer(buf)}) == blk::kStatusOk);
  const auto s = host->stats("vol0");
  BOOST_TEST(s["total"].value("rejected", 0ull) >= 3u);
  BOOST_TEST(s["total"].value("unsupported", 0ull) == 1u);
}

BOOST_AUTO_TEST_CASE(malformed_chains_complete_alone) {
  auto d = connect("vol0", 2);
  auto& q = d->queue(1);  // raw chains on queue 1; queue 0 stays with the driver
  auto hdr = alloc(*d, 16);
  auto data = alloc(*d, 4096);
  auto st = alloc(*d, 1);
  const BlkOutHdr h{blk::kTypeIn, 0, 0};
  std::memcpy(hdr.bytes().data(), &h, sizeof(h));
  // 1: no device-writable status byte: nothing to report into, used len 0.
  const DriverSegment no_status[] = {{hdr.gpa, 16, Writable::kNo}};
  BOOST_REQUIRE(q.add(no_status, 1).has_value());
  // 2: a data buffer outside guest memory: IOERR in the status byte.
  const DriverSegment wild[] = {{hdr.gpa, 16, Writable::kNo},
                                {GuestAddr(0x10), 4096, Writable::kYes},
                                {st.gpa, 1, Writable::kYes}};
  BOOST_REQUIRE(q.add(wild, 2).has_value());
  // 3: a good read after them.
  const DriverSegment good[] = {{hdr.gpa, 16, Writable::kNo},
                                {data.gpa, 4096, Writable::kYes},
                                {st.gpa, 1, Writable::kYes}};
  BOOST_REQUIRE(q.add(good, 3).has_value());
  q.publish();
  BOOST_REQUIRE(q.kick().has_value());
  std::vector<DriverCompletion> done;
  const bool all = wait_until(
      [&] {
        std::array<DriverCompletion, 8> c;
        auto n = q.reap(c);
        if (n.has_value()) {
          done.insert(done.end(), c.begin(), c.begin() + *n);
        }
        return done.size() == 3;
      },
      10s);
  BOOST_REQUIRE(all);
  for (const auto& c : done) {
    if (c.cookie == 1) {
      BOOST_TEST(c.len == 0u);
    } else if (c.cookie == 3) {
      BOOST_TEST(c.len == 4097u);
    }
  }
  BOOST_TEST(static_cast<int>(st.bytes()[0]) == blk::kStatusOk);  // the last writer was the good read
  BOOST_TEST(run(*d, blk::kTypeFlush, 0, {}, {}) == blk::kStatusOk);
}

BOOST_AUTO_TEST_CASE(a_corrupted_ring_stops_only_that_queue) {
  auto d = connect("vol0", 2);
  auto other = connect("vol1");
  // The guest claims 1000 new entries on a 256-entry ring of queue 1.
  auto& q1 = d->queue(1);
  auto idx = d->arena().guest_memory().translate(GuestAddr(q1.avail_gpa().value + 2), 2);
  BOOST_REQUIRE(idx.has_value());
  const std::uint16_t bogus = static_cast<std::uint16_t>(q1.avail_idx() + 1000);
  std::memcpy(idx->data(), &bogus, 2);
  BOOST_REQUIRE(q1.kick().has_value());
  std::this_thread::sleep_for(200ms);
  BOOST_TEST(host->process().running());
  // Queue 0 of the same device and the other device keep working.
  auto buf = alloc(*d, 4096);
  BOOST_TEST(run(*d, blk::kTypeIn, 0, {}, {to_blk_buffer(buf)}) == blk::kStatusOk);
  auto buf2 = alloc(*other, 4096);
  BOOST_TEST(run(*other, blk::kTypeOut, 0, {to_blk_buffer(buf2)}, {}) == blk::kStatusOk);
  // A new connection gets fresh queues.
  d.reset();
  auto again = connect("vol0", 2);
  auto buf3 = alloc(*again, 4096);
  BOOST_TEST(run(*again, blk::kTypeIn, 0, {}, {to_blk_buffer(buf3)}) == blk::kStatusOk);
}

BOOST_AUTO_TEST_CASE(stop_reports_where_the_device_stopped) {
  auto d = connect("vol0");
  auto buf = alloc(*d, 4096);
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(run(*d, blk::kTypeIn, static_cast<std::uint64_t>(i) * 8, {}, {to_blk_buffer(buf)}) ==
               blk::kStatusOk);
  }
  const std::uint16_t avail = d->queue(0).avail_idx();
  auto bases = d->stop();
  BOOST_REQUIRE(bases.has_value());
  BOOST_TEST((*bases)[0] == avail);
}

BOOST_AUTO_TEST_SUITE_END()
