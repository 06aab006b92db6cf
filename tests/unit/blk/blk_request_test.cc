// virtio-blk request parsing against chains built by a fake guest driver:
// well-formed requests become backend I/O with iovecs into guest memory,
// malformed ones get the right status without touching anything else.
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <vector>

#include "tests/support/fake_guest_driver.h"
#include "vhost-backend/devices/blk/blk_device.h"
#include "vhost-backend/devices/blk/blk_request.h"
#include "vhost-backend/devices/blk/blk_stats.h"

using namespace viopool;
using namespace viopool::blk;
using viopool::testing::FakeBuf;
using viopool::testing::FakeGuestDriver;

namespace viopool::blk {
std::ostream& operator<<(std::ostream& os, BlkOp op) { return os << static_cast<int>(op); }
}  // namespace viopool::blk

namespace {

struct Header {
  std::uint32_t type;
  std::uint32_t reserved;
  std::uint64_t sector;
};
struct Segment {
  std::uint64_t sector;
  std::uint32_t num;
  std::uint32_t flags;
};

BlkLimits default_limits() {
  BlkLimits l;
  l.capacity_sectors = 2048;  // 1 MiB
  l.seg_max = 8;
  l.size_max = 64 * 1024;
  l.discard = true;
  l.write_zeroes = true;
  l.max_discard_sectors = 1024;
  l.max_write_zeroes_sectors = 1024;
  return l;
}

struct Fixture {
  Fixture() : queue(*virtio::SplitQueue::create(drv.queue_config())) {}

  GuestAddr put_header(std::uint32_t type, std::uint64_t sector) {
    Header h{type, 0, sector};
    GuestAddr a = drv.alloc(sizeof(h));
    drv.write(a, std::as_bytes(std::span(&h, 1)));
    return a;
  }
  GuestAddr put(const void* p, std::size_t n) {
    GuestAddr a = drv.alloc(n);
    drv.write(a, std::span(static_cast<const std::byte*>(p), n));
    return a;
  }
  GuestAddr status_buf() {
    GuestAddr a = drv.alloc(1);
    const std::byte ff{0xff};
    drv.write(a, std::span(&ff, 1));
    return a;
  }
  // Pops the chain just added and parses it.
  BlkRequest& parse(const BlkLimits& lim = default_limits(), std::string_view serial = "vp-serial") {
    auto r = queue.pop_into(chain);
    BOOST_REQUIRE(r.has_value());
    BOOST_REQUIRE(*r);
    parse_request(chain, drv.memory(), lim, serial, req);
    return req;
  }

  FakeGuestDriver drv;
  virtio::SplitQueue queue;
  virtio::DescChain chain;
  BlkRequest req;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(blk_request, Fixture)

BOOST_AUTO_TEST_CASE(read_maps_to_iovecs_that_point_into_guest_memory) {
  auto hdr = put_header(kTypeIn, 8);
  auto d1 = drv.alloc(1024);
  auto d2 = drv.alloc(3072);
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}};
  FakeBuf w[] = {{d1, 1024}, {d2, 3072}, {st, 1}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(q.needs_io);
  BOOST_TEST(q.io.op == BlkOp::kRead);
  BOOST_TEST(q.io.offset == 8u * 512);
  BOOST_TEST(q.io.length == 4096u);
  BOOST_REQUIRE(q.io.iovcnt == 2u);
  BOOST_TEST(q.io.iov[0].iov_base == drv.bytes(d1, 1024).data());
  BOOST_TEST(q.io.iov[1].iov_len == 3072u);
  BOOST_TEST(q.status == drv.bytes(st, 1).data());
  BOOST_TEST(complete_request(q, kStatusOk) == 4097u);
  BOOST_TEST(static_cast<int>(drv.bytes(st, 1)[0]) == kStatusOk);
}

BOOST_AUTO_TEST_CASE(write_data_follows_a_header_split_across_descriptors) {
  Header h{kTypeOut, 0, 4};
  auto h1 = put(&h, 5);
  auto h2 = put(reinterpret_cast<const char*>(&h) + 5, 11);
  auto data = drv.alloc(512);
  auto st = status_buf();
  FakeBuf r[] = {{h1, 5}, {h2, 11}, {data, 512}};
  FakeBuf w[] = {{st, 1}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(q.needs_io);
  BOOST_TEST(q.io.op == BlkOp::kWrite);
  BOOST_TEST(q.io.offset == 4u * 512);
  BOOST_TEST(q.io.length == 512u);
  BOOST_TEST(q.io.iovcnt == 1u);
  BOOST_TEST(complete_request(q, kStatusOk) == 1u);
}

BOOST_AUTO_TEST_CASE(header_and_data_may_share_one_descriptor) {
  std::vector<std::byte> buf(16 + 512);
  Header h{kTypeOut, 0, 1};
  std::memcpy(buf.data(), &h, sizeof(h));
  auto a = put(buf.data(), buf.size());
  auto st = status_buf();
  FakeBuf r[] = {{a, static_cast<std::uint32_t>(buf.size())}};
  FakeBuf w[] = {{st, 1}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(q.needs_io);
  BOOST_TEST(q.io.length == 512u);
  BOOST_TEST(q.io.iov[0].iov_base == drv.bytes(GuestAddr(a.value + 16), 512).data());
}

struct BadCase {
  const char* label;
  std::uint32_t type;
  std::uint64_t sector;
  std::uint32_t data_len;
  BlkReject reject;
  std::uint8_t status;
};
std::ostream& operator<<(std::ostream& os, const BadCase& c) { return os << c.label; }

const BadCase kBad[] = {
    {"read past capacity", kTypeIn, 2048, 512, BlkReject::kOutOfRange, kStatusIoErr},
    {"read straddling the end", kTypeIn, 2047, 1024, BlkReject::kOutOfRange, kStatusIoErr},
    {"sector overflows", kTypeIn, UINT64_MAX - 1, 1024, BlkReject::kOutOfRange, kStatusIoErr},
    {"write past capacity", kTypeOut, 4096, 512, BlkReject::kOutOfRange, kStatusIoErr},
    {"length not a sector multiple", kTypeIn, 0, 100, BlkReject::kBadLength, kStatusIoErr},
    {"unknown type", 99, 0, 512, BlkReject::kUnsupported, kStatusUnsupp},
    {"secure erase not offered", kTypeSecureErase, 0, 0, BlkReject::kUnsupported, kStatusUnsupp},
    {"lifetime not offered", kTypeGetLifetime, 0, 0, BlkReject::kUnsupported, kStatusUnsupp},
};

BOOST_DATA_TEST_CASE(malformed_requests_get_an_error_status_and_no_io,
                     boost::unit_test::data::make(kBad), c) {
  Fixture f;
  auto hdr = f.put_header(c.type, c.sector);
  auto st = f.status_buf();
  FakeBuf r[] = {{hdr, 16}};
  std::vector<FakeBuf> w;
  GuestAddr data = c.data_len ? f.drv.alloc(c.data_len) : GuestAddr(0);
  const bool in = c.type == kTypeIn;
  std::vector<FakeBuf> rr(std::begin(r), std::end(r));
  if (c.data_len && in) {
    w.push_back({data, c.data_len});
  } else if (c.data_len) {
    rr.push_back({data, c.data_len});
  }
  w.push_back({st, 1});
  f.drv.add_chain(rr, w);
  auto& q = f.parse();
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(static_cast<int>(q.reject) == static_cast<int>(c.reject));
  BOOST_TEST(q.immediate_status == c.status);
  BOOST_TEST(complete_request(q, q.immediate_status) == 1u);
  BOOST_TEST(static_cast<int>(f.drv.bytes(st, 1)[0]) == c.status);
}

BOOST_AUTO_TEST_CASE(short_header_is_an_io_error) {
  Header h{kTypeIn, 0, 0};
  auto a = put(&h, 8);
  auto st = status_buf();
  FakeBuf r[] = {{a, 8}};
  FakeBuf w[] = {{st, 1}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(static_cast<int>(q.reject) == static_cast<int>(BlkReject::kBadHeader));
  BOOST_TEST(q.immediate_status == kStatusIoErr);
}

BOOST_AUTO_TEST_CASE(chain_without_a_writable_status_completes_with_length_zero) {
  auto hdr = put_header(kTypeIn, 0);
  FakeBuf r[] = {{hdr, 16}};
  drv.add_chain(r, {});
  auto& q = parse();
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(q.status == nullptr);
  BOOST_TEST(static_cast<int>(q.reject) == static_cast<int>(BlkReject::kNoStatus));
  BOOST_TEST(complete_request(q, kStatusIoErr) == 0u);
}

BOOST_AUTO_TEST_CASE(status_outside_guest_memory_is_not_written) {
  auto hdr = put_header(kTypeFlush, 0);
  FakeBuf r[] = {{hdr, 16}};
  FakeBuf w[] = {{GuestAddr(0x10), 1}};  // below the fake's memory
  drv.add_chain(r, w);
  auto popped = queue.pop_into(chain);
  BOOST_REQUIRE(popped.has_value() && *popped);
  parse_request(chain, drv.memory(), default_limits(), "", req);
  BOOST_TEST(req.status == nullptr);
  BOOST_TEST(complete_request(req, kStatusOk) == 0u);
}

BOOST_AUTO_TEST_CASE(more_segments_than_seg_max_is_an_io_error) {
  auto hdr = put_header(kTypeIn, 0);
  auto st = status_buf();
  std::vector<FakeBuf> w;
  for (int i = 0; i < 9; ++i) {
    w.push_back({drv.alloc(512), 512});
  }
  w.push_back({st, 1});
  FakeBuf r[] = {{hdr, 16}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(static_cast<int>(q.reject) == static_cast<int>(BlkReject::kTooManySegs));
}

BOOST_AUTO_TEST_CASE(segment_larger_than_size_max_is_an_io_error) {
  auto lim = default_limits();
  lim.size_max = 4096;
  auto hdr = put_header(kTypeIn, 0);
  auto data = drv.alloc(8192);
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}};
  FakeBuf w[] = {{data, 8192}, {st, 1}};
  drv.add_chain(r, w);
  auto& q = parse(lim);
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(static_cast<int>(q.reject) == static_cast<int>(BlkReject::kBadLength));
}

BOOST_AUTO_TEST_CASE(read_only_device_refuses_writes_discards_and_write_zeroes) {
  auto lim = default_limits();
  lim.read_only = true;
  for (std::uint32_t type : {kTypeOut, kTypeDiscard, kTypeWriteZeroes}) {
    auto hdr = put_header(type, 0);
    Segment seg{0, 8, 0};
    auto payload = type == kTypeOut ? drv.alloc(512) : put(&seg, sizeof(seg));
    auto st = status_buf();
    FakeBuf r[] = {{hdr, 16}, {payload, type == kTypeOut ? 512u : 16u}};
    FakeBuf w[] = {{st, 1}};
    drv.add_chain(r, w);
    auto& q = parse(lim);
    BOOST_TEST(!q.needs_io, "type " << type);
    BOOST_TEST(static_cast<int>(q.reject) == static_cast<int>(BlkReject::kReadOnly));
    BOOST_TEST(q.immediate_status == kStatusIoErr);
  }
  // Reads still work.
  auto hdr = put_header(kTypeIn, 0);
  auto data = drv.alloc(512);
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}};
  FakeBuf w[] = {{data, 512}, {st, 1}};
  drv.add_chain(r, w);
  BOOST_TEST(parse(lim).needs_io);
}

BOOST_AUTO_TEST_CASE(discard_and_write_zeroes_take_one_checked_range) {
  struct Case {
    std::uint32_t type;
    Segment seg;
    bool needs_io;
    std::uint8_t status;
  } cases[] = {
      {kTypeDiscard, {16, 8, 0}, true, kStatusOk},
      {kTypeDiscard, {16, 8, 1}, false, kStatusUnsupp},      // unmap flag only for write-zeroes
      {kTypeDiscard, {2040, 16, 0}, false, kStatusIoErr},    // past capacity
      {kTypeDiscard, {0, 2000, 0}, false, kStatusIoErr},     // over max_discard_sectors
      {kTypeWriteZeroes, {0, 8, 1}, true, kStatusOk},
      {kTypeWriteZeroes, {0, 8, 4}, false, kStatusUnsupp},   // unknown flag
      {kTypeWriteZeroes, {UINT64_MAX, 8, 0}, false, kStatusIoErr},
  };
  for (const auto& c : cases) {
    auto hdr = put_header(c.type, 0);
    auto seg = put(&c.seg, sizeof(c.seg));
    auto st = status_buf();
    FakeBuf r[] = {{hdr, 16}, {seg, 16}};
    FakeBuf w[] = {{st, 1}};
    drv.add_chain(r, w);
    auto& q = parse();
    BOOST_TEST_CONTEXT("type " << c.type << " sector " << c.seg.sector << " flags " << c.seg.flags) {
      BOOST_TEST(q.needs_io == c.needs_io);
      if (c.needs_io) {
        BOOST_TEST(q.io.offset == c.seg.sector * 512);
        BOOST_TEST(q.io.length == std::uint64_t{c.seg.num} * 512);
        BOOST_TEST(q.io.unmap == ((c.seg.flags & 1) != 0));
      } else {
        BOOST_TEST(q.immediate_status == c.status);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(two_discard_ranges_exceed_max_discard_seg) {
  auto hdr = put_header(kTypeDiscard, 0);
  Segment segs[2] = {{0, 8, 0}, {16, 8, 0}};
  auto s = put(segs, sizeof(segs));
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}, {s, 32}};
  FakeBuf w[] = {{st, 1}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(q.immediate_status == kStatusIoErr);
}

BOOST_AUTO_TEST_CASE(discard_without_backend_support_is_unsupported) {
  auto lim = default_limits();
  lim.discard = false;
  auto hdr = put_header(kTypeDiscard, 0);
  Segment seg{0, 8, 0};
  auto s = put(&seg, sizeof(seg));
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}, {s, 16}};
  FakeBuf w[] = {{st, 1}};
  drv.add_chain(r, w);
  BOOST_TEST(parse(lim).immediate_status == kStatusUnsupp);
}

BOOST_AUTO_TEST_CASE(get_id_writes_the_serial_padded_with_zeroes) {
  auto hdr = put_header(kTypeGetId, 0);
  auto id = drv.alloc(20);
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}};
  FakeBuf w[] = {{id, 20}, {st, 1}};
  drv.add_chain(r, w);
  auto& q = parse(default_limits(), "disk-7");
  BOOST_TEST(!q.needs_io);
  BOOST_TEST(complete_request(q, kStatusOk) == 21u);
  auto got = drv.read(id, 20);
  BOOST_TEST(std::memcmp(got.data(), "disk-7\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20) == 0);
}

BOOST_AUTO_TEST_CASE(flush_and_empty_reads_need_no_data) {
  auto hdr = put_header(kTypeFlush, 0);
  auto st = status_buf();
  FakeBuf r[] = {{hdr, 16}};
  FakeBuf w[] = {{st, 1}};
  drv.add_chain(r, w);
  auto& q = parse();
  BOOST_TEST(q.needs_io);
  BOOST_TEST(q.io.op == BlkOp::kFlush);

  auto hdr2 = put_header(kTypeIn, 0);
  auto st2 = status_buf();
  FakeBuf r2[] = {{hdr2, 16}};
  FakeBuf w2[] = {{st2, 1}};
  drv.add_chain(r2, w2);
  auto& q2 = parse();
  BOOST_TEST(!q2.needs_io);
  BOOST_TEST(q2.immediate_status == kStatusOk);
}

BOOST_AUTO_TEST_CASE(a_bad_request_between_good_ones_affects_only_itself) {
  std::vector<std::uint16_t> heads;
  for (int i = 0; i < 3; ++i) {
    auto hdr = put_header(kTypeIn, i == 1 ? 999999 : 0);
    auto data = drv.alloc(512);
    auto st = status_buf();
    FakeBuf r[] = {{hdr, 16}};
    FakeBuf w[] = {{data, 512}, {st, 1}};
    heads.push_back(drv.add_chain(r, w));
  }
  for (int i = 0; i < 3; ++i) {
    auto& q = parse();
    BOOST_TEST(q.head == heads[static_cast<std::size_t>(i)]);
    BOOST_TEST(q.needs_io == (i != 1));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(blk_device_model)

BOOST_AUTO_TEST_CASE(config_space_reports_capacity_limits_and_queues) {
  BlkDeviceOptions o;
  o.queues = 4;
  o.backend.capacity_bytes = 1ull << 30;
  o.backend.block_size = 4096;
  o.backend.supports_discard = true;
  o.backend.supports_write_zeroes = true;
  const auto c = config_space(o);
  std::uint64_t cap;
  std::memcpy(&cap, c.data(), 8);
  BOOST_TEST(cap == (1ull << 30) / 512);
  std::uint32_t blk_size, seg_max, max_discard_seg;
  std::uint16_t nq;
  std::memcpy(&seg_max, c.data() + 12, 4);
  std::memcpy(&blk_size, c.data() + 20, 4);
  std::memcpy(&nq, c.data() + 34, 2);
  std::memcpy(&max_discard_seg, c.data() + 40, 4);
  BOOST_TEST(blk_size == 4096u);
  BOOST_TEST(seg_max == kMaxDataSegments);
  BOOST_TEST(nq == 4);
  BOOST_TEST(max_discard_seg == 1u);
  const auto f = offered_features(o);
  BOOST_TEST((f >> kFeatMq & 1u) == 1u);
  BOOST_TEST((f >> kFeatDiscard & 1u) == 1u);
  BOOST_TEST((f >> kFeatRo & 1u) == 0u);
}

BOOST_AUTO_TEST_CASE(read_only_devices_offer_ro_and_no_discard) {
  BlkDeviceOptions o;
  o.read_only = true;
  o.backend.capacity_bytes = 1 << 20;
  o.backend.supports_discard = true;
  o.backend.supports_write_zeroes = true;
  const auto f = offered_features(o);
  BOOST_TEST((f >> kFeatRo & 1u) == 1u);
  BOOST_TEST((f >> kFeatDiscard & 1u) == 0u);
  BOOST_TEST((f >> kFeatWriteZeroes & 1u) == 0u);
  BOOST_TEST((f >> kFeatMq & 1u) == 0u);
  BOOST_TEST(limits(o).read_only);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(blk_latency_histogram)

BOOST_AUTO_TEST_CASE(percentiles_are_within_a_quarter_of_the_truth) {
  LatencyHistogram h;
  BOOST_TEST(h.percentile(50) == 0u);
  // 1000 samples: 1 µs .. 1000 µs.
  for (std::uint64_t us = 1; us <= 1000; ++us) {
    h.record(us * 1000);
  }
  BOOST_TEST(h.count() == 1000u);
  const auto p50 = static_cast<double>(h.percentile(50));
  const auto p99 = static_cast<double>(h.percentile(99));
  BOOST_TEST(p50 >= 500e3);
  BOOST_TEST(p50 <= 500e3 * 1.25);
  BOOST_TEST(p99 >= 990e3);
  BOOST_TEST(p99 <= 990e3 * 1.25);
  BOOST_TEST(h.percentile(100) >= 1000000u);
}

BOOST_AUTO_TEST_CASE(bucket_bounds_are_monotonic_and_cover_every_value) {
  std::uint64_t prev = 0;
  for (unsigned i = 1; i < 64 * LatencyHistogram::kSub - 4; ++i) {
    const std::uint64_t ub = LatencyHistogram::upper_bound(i);
    BOOST_REQUIRE(ub > prev);
    // Every value up to the bound maps to this bucket or an earlier one.
    BOOST_REQUIRE(LatencyHistogram::index(ub) == i);
    BOOST_REQUIRE(LatencyHistogram::index(prev + 1) == i);
    prev = ub;
  }
  BOOST_TEST(LatencyHistogram::index(0) == 0u);
  BOOST_TEST(LatencyHistogram::index(UINT64_MAX) < 64 * LatencyHistogram::kSub);
}

BOOST_AUTO_TEST_SUITE_END()
