// EAL argument defaults: operators' passthrough always wins.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "vhost-backend/runtime/eal.h"

using namespace viopool::runtime;

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
}  // namespace

BOOST_AUTO_TEST_SUITE(eal_args)

BOOST_AUTO_TEST_CASE(hugepages_mean_in_memory_with_a_cap) {
  EalOptions o;
  o.memory_mb = 256;
  auto a = build_eal_args(o, /*use_hugepages=*/true, {0, 1});
  BOOST_TEST(a.front() == "viopool");
  BOOST_TEST(has(a, "--in-memory"));
  BOOST_TEST(has(a, "--socket-limit=256"));
  BOOST_TEST(!has(a, "--no-huge"));
  BOOST_TEST(has(a, "--no-pci"));
  BOOST_TEST(has(a, "--lcores=0@(0-1),1@(0-1)"));
}

BOOST_AUTO_TEST_CASE(no_hugepages_mean_no_huge_with_memory_size) {
  EalOptions o;
  o.memory_mb = 512;
  o.worker_lcores = 2;
  auto a = build_eal_args(o, /*use_hugepages=*/false, {0});
  BOOST_TEST(has(a, "--no-huge"));
  BOOST_TEST(has(a, "512"));
  BOOST_TEST(has(a, "--no-shconf"));
  BOOST_TEST(has(a, "--lcores=0@0,1@0,2@0"));
}

BOOST_AUTO_TEST_CASE(lcores_stay_on_the_cpus_the_process_may_use) {
  // Started under `taskset -c 1`: on CPU 1, not on CPU 0.
  EalOptions o;
  BOOST_TEST(has(build_eal_args(o, true, {1}), "--lcores=0@1,1@1"));
  BOOST_TEST(has(build_eal_args(o, true, {5, 1, 3, 4}), "--lcores=0@(1,3-5),1@(1,3-5)"));
  BOOST_TEST(cpu_list({}) == "");
  BOOST_TEST(cpu_list({2, 0, 1, 7, 9, 8, 4}) == "0-2,4,7-9");
}

BOOST_AUTO_TEST_CASE(user_arguments_replace_defaults) {
  EalOptions o;
  o.user_args = {"-l", "0-1", "-a", "0000:01:00.0", "--file-prefix=x"};
  auto a = build_eal_args(o, true, {0, 1, 2, 3});
  BOOST_TEST(std::none_of(a.begin(), a.end(), [](const std::string& s) {
    return s.rfind("--lcores", 0) == 0 || s == "--no-pci" || s == "--in-memory";
  }));
  BOOST_TEST(a.back() == "--file-prefix=x");
}

BOOST_AUTO_TEST_SUITE_END()
