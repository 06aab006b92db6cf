// Small synchronous helpers over BlkDriver shared by the frontend's component
// tests (against qemu-storage-daemon and against viopool-host).
#pragma once

#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <vector>

#include "integration/frontend/blk_driver.h"

namespace viopool::testing {

using namespace std::chrono_literals;
using frontend::ArenaBlock;
using frontend::BlkBuffer;
using frontend::BlkCompletion;
using frontend::BlkDriver;

// Runs one request to completion on queue 0 and returns its status.
inline std::uint8_t run(BlkDriver& d, std::uint32_t type, std::uint64_t sector, std::vector<BlkBuffer> out,
                 std::vector<BlkBuffer> in) {
  auto c = d.execute(0, type, sector, out, in, 10s);
  if (!c.has_value()) {
    BOOST_FAIL("request failed: " + to_string(c.error()));
  }
  return c->status;
}

inline ArenaBlock alloc(BlkDriver& d, std::uint64_t len) {
  auto b = d.arena().alloc(len, 4096);
  BOOST_REQUIRE(b.has_value());
  return *b;
}

// Polls queue `q` until `n` completions arrived (busy-poll, bounded).
inline std::vector<BlkCompletion> collect(BlkDriver& d, std::uint16_t q, std::size_t n) {
  std::vector<BlkCompletion> got;
  std::array<BlkCompletion, 32> buf;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.size() < n) {
    auto r = d.poll(q, buf);
    if (!r.has_value()) {
      BOOST_FAIL("poll failed: " + to_string(r.error()));
    }
    got.insert(got.end(), buf.begin(), buf.begin() + *r);
    if (std::chrono::steady_clock::now() >= deadline) {
      BOOST_FAIL("completions timed out");
    }
  }
  return got;
}

}  // namespace viopool::testing
