// galaxies_path_count: the whole message path in one process and one thread, for counts that do
// not depend on the machine's mood (bench/RESULTS.md). Two routers (two "hosts") linked by a
// socketpair as their host link, one node attached to each by a socketpair, one io_context: node
// a sends to node b (or asks it), through router A, the link, router B. Run it under
// `valgrind --tool=callgrind --collect-atstart=no` (the measured phase toggles collection on and
// off), `strace -c`, or alone: it prints allocations per message, counted by its own operator new.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "in_process.hpp"

namespace {
std::atomic<std::size_t> allocations{0};
}

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;

struct options {
  std::size_t messages = 100000;
  std::size_t size = 64;
  bool requests = false;      // requests instead of a stream of sends
  std::size_t in_flight = 1;  // requests outstanding at once; each reply starts the next
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto number = [&](std::size_t& out) {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a number");
      const std::string_view v = argv[++i];
      if (std::from_chars(v.data(), v.data() + v.size(), out).ec != std::errc{})
        throw std::invalid_argument(std::string(arg) + ": not a number: " + std::string(v));
    };
    if (arg == "--messages") {
      number(o.messages);
    } else if (arg == "--size") {
      number(o.size);
    } else if (arg == "--requests") {
      o.requests = true;
    } else if (arg == "--in-flight") {
      number(o.in_flight);
    } else {
      throw std::invalid_argument(
          "usage: galaxies_path_count [--messages N] [--size BYTES] "
          "[--requests [--in-flight N]]");
    }
  }
  if (o.in_flight == 0 || o.in_flight > o.messages)
    throw std::invalid_argument("--in-flight must be between 1 and --messages");
  return o;
}

router::router::settings host_settings(const host_id& self) {
  router::router::settings s;
  s.self = self;
  s.cluster = "count";
  s.address = "127.0.0.1:1";
  s.hostname = "count";
  return s;
}

int run(const options& o) {
  spdlog::set_level(spdlog::level::warn);
  asio::io_context io;
  const host_id ha = host_id::random();
  const host_id hb = host_id::random();
  router::router b(io.get_executor(), host_settings(hb), {});
  router::router::callbacks dial;
  // A's dial to B is a socketpair, B accepting the other end as a TCP connection from loopback.
  dial.connect = [&](const std::string&, transport::connect_handler done) {
    auto [mine, theirs] = socket_pair(io);
    b.accept_tcp(std::move(theirs), {"127.0.0.1:2", true});
    done({}, std::move(mine));
  };
  router::router a(io.get_executor(), host_settings(ha), std::move(dial));
  a.set_peers({{hb, "127.0.0.1:1"}});

  auto attach = [&](router::router& r) { return attach_node(io, r, "count"); };
  auto na = attach(a);
  auto nb = attach(b);
  std::size_t received = 0;
  nb->set_handler("m", [&](const message& m, responder r) {
    ++received;
    if (m.is_request) r.reply(m.payload);
  });
  const auto knows_b = [&] {
    for (const auto& n : na->nodes())
      if (n.id == nb->id()) return true;
    return false;
  };
  for (const auto until = std::chrono::steady_clock::now() + 10s; !knows_b();) {
    if (std::chrono::steady_clock::now() > until)
      throw std::runtime_error("the hosts never linked");
    io.run_for(1ms);
  }

  const std::string payload(o.size, 'p');
  std::size_t sent = 0, replies = 0;
  const std::size_t allocations_before = allocations.load();
  const std::uint64_t forwarded_before = a.counters().forwarded + b.counters().forwarded;
  CALLGRIND_ZERO_STATS;
  CALLGRIND_START_INSTRUMENTATION;
  if (o.requests) {
    // `in_flight` outstanding: each reply starts the next request until all were sent.
    std::function<void()> ask = [&] {
      ++sent;
      na->start_request(nb->id(), "m", galaxies::as_bytes(payload), 10s,
                        [&](std::error_code ec, bytes) {
                          if (ec) throw std::system_error(ec, "request");
                          ++replies;
                          if (sent < o.messages) ask();
                        });
    };
    for (std::size_t i = 0; i < o.in_flight; ++i) ask();
    while (replies < o.messages) io.run_one();
  } else {
    while (received < o.messages) {
      while (sent < o.messages && !na->send(nb->id(), "m", galaxies::as_bytes(payload))) ++sent;
      io.run_one();
    }
  }
  CALLGRIND_STOP_INSTRUMENTATION;
  const std::size_t allocated = allocations.load() - allocations_before;
  // Both masters forward each frame once: their sum over two is the frames that carried them.
  const double frames =
      static_cast<double>(a.counters().forwarded + b.counters().forwarded - forwarded_before) / 2;
  std::printf("%s of %zu bytes: %zu; allocations: %zu (%.3f per %s); frames per %s: %.3f\n",
              o.requests ? "requests" : "messages", o.size, o.messages, allocated,
              static_cast<double>(allocated) / static_cast<double>(o.messages),
              o.requests ? "request" : "message", o.requests ? "request" : "message",
              frames / static_cast<double>(o.messages));
  na->stop();
  nb->stop();
  io.run_for(50ms);
  return 0;
}

}  // namespace
}  // namespace galaxies::bench

int main(int argc, char** argv) {
  try {
    return galaxies::bench::run(galaxies::bench::parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "galaxies_path_count: %s\n", e.what());
    return 1;
  }
}
