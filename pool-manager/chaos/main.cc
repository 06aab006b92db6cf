// viopool-chaos: a UDP forwarder between a fabric host and its target that
// drops, reorders, duplicates, delays and corrupts datagrams at given rates
// (our kernel has no netem). The host sends to --listen; datagrams go on to
// --target; the target's answers go back to the host that last spoke.
#include <poll.h>
#include <signal.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <optional>
#include <vector>

#include "pool-manager/transport/loopback_transport.h"
#include "pool-manager/transport/udp_transport.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

using namespace viopool::pool;

struct Side {
  std::unique_ptr<UdpTransport> sock;
  std::vector<std::vector<std::byte>> bufs;
  std::vector<InFrame> in;
};

// Moves what arrived on `from` into `link`.
void take(Side& from, FaultyLink& link, std::optional<PeerAddress>* remember) {
  for (;;) {
    for (std::size_t i = 0; i < from.in.size(); ++i) {
      from.in[i].buf = from.bufs[i];
    }
    const auto n = from.sock->recv_burst(from.in);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (remember != nullptr) {
        *remember = from.in[i].peer;
      }
      link.push(std::span(from.in[i].buf.data(), from.in[i].len), from.in[i].peer);
    }
    if (n < from.in.size()) {
      return;
    }
  }
}

// Sends what `link` has ready out of `via` to `to`.
void give(FaultyLink& link, Side& scratch, Side& via, const PeerAddress& to) {
  TransportStats unused;
  for (;;) {
    for (std::size_t i = 0; i < scratch.in.size(); ++i) {
      scratch.in[i].buf = scratch.bufs[i];
    }
    const auto n = link.pop(scratch.in, unused);
    std::vector<OutFrame> out;
    for (std::uint32_t i = 0; i < n; ++i) {
      out.push_back(
          OutFrame{std::span<const std::byte>(scratch.in[i].buf.data(), scratch.in[i].len), to});
    }
    std::size_t sent = 0;
    for (int tries = 0; sent < out.size() && tries < 100; ++tries) {
      sent += via.sock->send_burst(std::span(out).subspan(sent));
    }
    if (n < scratch.in.size()) {
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "viopool-chaos: forwards UDP datagrams between a fabric host and its target, dropping,\n"
      "reordering, duplicating, delaying and corrupting them at the given rates (per direction,\n"
      "reproducible from --seed). Stops on SIGINT/SIGTERM and prints what it did.",
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
  app.add_option("--seed", r.seed, "Random seed (the host→target direction; +1 the other way)");
  app.add_option("--mtu", mtu, "Largest datagram forwarded")->check(CLI::Range(64u, 65507u));
  CLI11_PARSE(app, argc, argv);
  r.delay_by = std::chrono::microseconds(delay_us);

  auto target_addr = parse_udp_address(target);
  if (!target_addr) {
    std::fprintf(stderr, "viopool-chaos: --target: %s\n", target_addr.error().what);
    return 2;
  }
  Side front;
  Side back;
  Side scratch;
  auto f = UdpTransport::open({listen, mtu});
  auto b = UdpTransport::open({is_ipv6(*target_addr) ? "[::]:0" : "0.0.0.0:0", mtu});
  if (!f || !b) {
    std::fprintf(stderr, "viopool-chaos: cannot open sockets: %s\n",
                 (!f ? f.error() : b.error()).what);
    return 2;
  }
  front.sock = std::move(*f);
  back.sock = std::move(*b);
  for (Side* s : {&front, &back, &scratch}) {
    s->bufs.assign(32, std::vector<std::byte>(mtu));
    s->in.resize(32);
  }
  FaultRates back_rates = r;
  back_rates.seed = r.seed + 1;
  FaultyLink to_target(r);
  FaultyLink to_host(back_rates);
  std::optional<PeerAddress> host;

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  std::fprintf(stderr,
               "viopool-chaos: %s -> %s drop=%g reorder=%g duplicate=%g corrupt=%g delay=%g\n",
               to_string(front.sock->local()).c_str(), target.c_str(), r.drop, r.reorder,
               r.duplicate, r.corrupt, r.delay);
  while (!g_stop.load()) {
    pollfd pfd[2] = {{front.sock->wait_fd(), POLLIN, 0}, {back.sock->wait_fd(), POLLIN, 0}};
    // Short timeout: delayed datagrams become ready without any event.
    ::poll(pfd, 2, to_target.queued() + to_host.queued() > 0 ? 1 : 100);
    take(front, to_target, &host);
    take(back, to_host, nullptr);
    give(to_target, scratch, back, *target_addr);
    if (host) {
      give(to_host, scratch, front, *host);
    }
  }
  const auto a = to_target.fault_stats();
  const auto z = to_host.fault_stats();
  std::printf(
      "{\"to_target\": {\"received\": %llu, \"dropped\": %llu, \"reordered\": %llu, "
      "\"duplicated\": %llu, \"corrupted\": %llu, \"delayed\": %llu}, "
      "\"to_host\": {\"received\": %llu, \"dropped\": %llu, \"reordered\": %llu, "
      "\"duplicated\": %llu, \"corrupted\": %llu, \"delayed\": %llu}}\n",
      static_cast<unsigned long long>(front.sock->stats().received),
      static_cast<unsigned long long>(a.dropped), static_cast<unsigned long long>(a.reordered),
      static_cast<unsigned long long>(a.duplicated), static_cast<unsigned long long>(a.corrupted),
      static_cast<unsigned long long>(a.delayed),
      static_cast<unsigned long long>(back.sock->stats().received),
      static_cast<unsigned long long>(z.dropped), static_cast<unsigned long long>(z.reordered),
      static_cast<unsigned long long>(z.duplicated), static_cast<unsigned long long>(z.corrupted),
      static_cast<unsigned long long>(z.delayed));
  return 0;
}
