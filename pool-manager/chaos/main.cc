// viopool-chaos: a UDP forwarder between fabric hosts and their target that
// drops, reorders, duplicates, delays and corrupts datagrams at given rates
// (our kernel has no netem). Hosts send to --listen; each host address gets
// its own socket towards --target (as a NAT would), so the target tells the
// hosts (and each host's queues) apart and answers reach the host they
// belong to. Faults are drawn per flow and direction from --seed.
#include <poll.h>
#include <signal.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "pool-manager/transport/loopback_transport.h"
#include "pool-manager/transport/udp_transport.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

using namespace viopool::pool;

constexpr std::size_t kBurst = 32;
constexpr std::size_t kMaxFlows = 1024;

struct PeerLess {
  bool operator()(const PeerAddress& a, const PeerAddress& b) const noexcept {
    if (a.len != b.len) {
      return a.len < b.len;
    }
    return std::memcmp(a.bytes.data(), b.bytes.data(), a.len) < 0;
  }
};

// One host address: its socket towards the target and a faulty link each way.
struct Flow {
  PeerAddress host;
  std::unique_ptr<UdpTransport> back;
  std::unique_ptr<FaultyLink> to_target;
  std::unique_ptr<FaultyLink> to_host;
};

struct Buffers {
  std::vector<std::vector<std::byte>> bufs;
  std::vector<InFrame> in;
  explicit Buffers(unsigned mtu) : bufs(kBurst, std::vector<std::byte>(mtu)), in(kBurst) {}
  void reset() {
    for (std::size_t i = 0; i < kBurst; ++i) {
      in[i].buf = bufs[i];
    }
  }
};

// Sends what `link` has ready out of `via` to `to`.
void give(FaultyLink& link, Buffers& scratch, UdpTransport& via, const PeerAddress& to) {
  TransportStats unused;
  for (;;) {
    scratch.reset();
    const auto n = link.pop(scratch.in, unused);
    std::vector<OutFrame> out;
    for (std::uint32_t i = 0; i < n; ++i) {
      out.push_back(
          OutFrame{std::span<const std::byte>(scratch.in[i].buf.data(), scratch.in[i].len), to});
    }
    std::size_t sent = 0;
    for (int tries = 0; sent < out.size() && tries < 100; ++tries) {
      sent += via.send_burst(std::span(out).subspan(sent));
    }
    if (n < kBurst) {
      return;
    }
  }
}

void add(FaultStats& a, const FaultStats& b) {
  a.dropped += b.dropped;
  a.reordered += b.reordered;
  a.duplicated += b.duplicated;
  a.corrupted += b.corrupted;
  a.delayed += b.delayed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "viopool-chaos: forwards UDP datagrams between fabric hosts and their target, dropping,\n"
      "reordering, duplicating, delaying and corrupting them at the given rates (per host\n"
      "address and direction, reproducible from --seed; each host address gets its own socket\n"
      "towards the target). Stops on SIGINT/SIGTERM and prints what it did as JSON.",
      "viopool-chaos"};
  std::string listen = "127.0.0.1:7001";
  std::string target = "127.0.0.1:7000";
  FaultRates r;
  unsigned delay_us = 1000;
  unsigned mtu = 9000;
  app.add_option("--listen", listen, "Address the host sends to (ip:port)");
  app.add_option("--target", target, "Address of the target (ip:port)")->required();
  app.add_option("--drop", r.drop, "Probability a datagram is lost")->check(CLI::Range(0.0, 1.0));
  app.add_option("--reorder", r.reorder, "... is held back behind the next one")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--duplicate", r.duplicate, "... is delivered twice")->check(CLI::Range(0.0, 1.0));
  app.add_option("--corrupt", r.corrupt, "... has one bit flipped")->check(CLI::Range(0.0, 1.0));
  app.add_option("--delay", r.delay, "... arrives --delay-us late")->check(CLI::Range(0.0, 1.0));
  app.add_option("--delay-us", delay_us, "Delay of a delayed datagram (µs)");
  app.add_option("--seed", r.seed,
                 "Random seed (flow k: seed+2k towards the target, seed+2k+1 back)");
  app.add_option("--mtu", mtu, "Largest datagram forwarded")->check(CLI::Range(64u, 65507u));
  CLI11_PARSE(app, argc, argv);
  r.delay_by = std::chrono::microseconds(delay_us);

  auto target_addr = parse_udp_address(target);
  if (!target_addr) {
    std::fprintf(stderr, "viopool-chaos: --target: %s\n", target_addr.error().what);
    return 2;
  }
  auto f = UdpTransport::open({listen, mtu});
  if (!f) {
    std::fprintf(stderr, "viopool-chaos: cannot open %s: %s\n", listen.c_str(), f.error().what);
    return 2;
  }
  std::unique_ptr<UdpTransport> front = std::move(*f);
  const std::string back_bind = is_ipv6(*target_addr) ? "[::]:0" : "0.0.0.0:0";
  std::map<PeerAddress, Flow, PeerLess> flows;
  Buffers rx(mtu);
  Buffers scratch(mtu);
  std::uint64_t received_to_target = 0;
  std::uint64_t received_to_host = 0;
  std::uint64_t refused_flows = 0;

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  std::fprintf(stderr,
               "viopool-chaos: %s -> %s drop=%g reorder=%g duplicate=%g corrupt=%g delay=%g\n",
               to_string(front->local()).c_str(), target.c_str(), r.drop, r.reorder, r.duplicate,
               r.corrupt, r.delay);
  std::vector<pollfd> pfd;
  while (!g_stop.load()) {
    pfd.assign(1, pollfd{front->wait_fd(), POLLIN, 0});
    std::size_t queued = 0;
    for (auto& [host, fl] : flows) {
      pfd.push_back(pollfd{fl.back->wait_fd(), POLLIN, 0});
      queued += fl.to_target->queued() + fl.to_host->queued();
    }
    // Short timeout: delayed datagrams become ready without any event.
    ::poll(pfd.data(), pfd.size(), queued > 0 ? 1 : 100);
    for (;;) {  // hosts -> their flows
      rx.reset();
      const auto n = front->recv_burst(rx.in);
      for (std::uint32_t i = 0; i < n; ++i) {
        auto it = flows.find(rx.in[i].peer);
        if (it == flows.end()) {
          // One socket per flow, up to kMaxFlows: without coalescing, each
          // keeps 64 slots of one MTU instead of 1 MiB.
          auto b = flows.size() < kMaxFlows ? UdpTransport::open({back_bind, mtu, 4 << 20, false})
                                            : decltype(UdpTransport::open({})){};
          if (flows.size() >= kMaxFlows || !b) {
            ++refused_flows;
            continue;
          }
          const std::uint64_t k = flows.size();
          FaultRates up = r;
          up.seed = r.seed + 2 * k;
          FaultRates down = r;
          down.seed = r.seed + 2 * k + 1;
          Flow fl{rx.in[i].peer, std::move(*b), std::make_unique<FaultyLink>(up),
                  std::make_unique<FaultyLink>(down)};
          it = flows.emplace(rx.in[i].peer, std::move(fl)).first;
        }
        ++received_to_target;
        it->second.to_target->push(std::span(rx.in[i].buf.data(), rx.in[i].len), rx.in[i].peer);
      }
      if (n < kBurst) {
        break;
      }
    }
    for (auto& [host, fl] : flows) {
      for (;;) {  // the target -> this flow's host
        rx.reset();
        const auto n = fl.back->recv_burst(rx.in);
        for (std::uint32_t i = 0; i < n; ++i) {
          ++received_to_host;
          fl.to_host->push(std::span(rx.in[i].buf.data(), rx.in[i].len), rx.in[i].peer);
        }
        if (n < kBurst) {
          break;
        }
      }
      give(*fl.to_target, scratch, *fl.back, *target_addr);
      give(*fl.to_host, scratch, *front, fl.host);
    }
  }
  FaultStats a;
  FaultStats z;
  for (auto& [host, fl] : flows) {
    add(a, fl.to_target->fault_stats());
    add(z, fl.to_host->fault_stats());
  }
  std::printf(
      "{\"flows\": %zu, \"refused_flows\": %llu, "
      "\"to_target\": {\"received\": %llu, \"dropped\": %llu, \"reordered\": %llu, "
      "\"duplicated\": %llu, \"corrupted\": %llu, \"delayed\": %llu}, "
      "\"to_host\": {\"received\": %llu, \"dropped\": %llu, \"reordered\": %llu, "
      "\"duplicated\": %llu, \"corrupted\": %llu, \"delayed\": %llu}}\n",
      flows.size(), static_cast<unsigned long long>(refused_flows),
      static_cast<unsigned long long>(received_to_target),
      static_cast<unsigned long long>(a.dropped), static_cast<unsigned long long>(a.reordered),
      static_cast<unsigned long long>(a.duplicated), static_cast<unsigned long long>(a.corrupted),
      static_cast<unsigned long long>(a.delayed), static_cast<unsigned long long>(received_to_host),
      static_cast<unsigned long long>(z.dropped), static_cast<unsigned long long>(z.reordered),
      static_cast<unsigned long long>(z.duplicated), static_cast<unsigned long long>(z.corrupted),
      static_cast<unsigned long long>(z.delayed));
  return 0;
}
