// galaxies_path_count: the whole message path in one process and one thread, for counts that do
// not depend on the machine's mood (bench/RESULTS.md). Two routers (two "hosts") linked by a
// socketpair as their host link, one node on each as its worker, one io_context: node a sends to
// node b (or asks it), through router A, the link, router B. Each node's channel to its router is
// a worker's: two shared-memory rings beside a socketpair, as galaxies::run sets up by default
// (`--channel rings`), or the socketpair alone (`--channel socket`, channel_ring_bytes 0). Run it
// under `valgrind --tool=callgrind --collect-atstart=no` (the measured phase toggles collection on
// and off), `strace -c`, or alone: it prints allocations per message, counted by its own operator
// new, and the copies the masters made of the frames they forwarded (their links' counts).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "galaxies/node.hpp"
#include "galaxies/options.hpp"
#include "router/router.hpp"
#include "transport/shm_channel.hpp"
#include "worker/node_core.hpp"

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

transport::socket unix_socket(asio::io_context& io, int fd) {
  return transport::socket(io, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fd);
}

std::pair<int, int> unix_pair() {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::system_error(errno, std::system_category(), "socketpair");
  return {fds[0], fds[1]};
}

struct options {
  // A worker channel's ring size, as galaxies::run gives it (0: the socket alone).
  std::size_t ring_bytes = galaxies::options{}.limits.channel_ring_bytes;
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
    } else if (arg == "--channel" && i + 1 < argc && argv[i + 1] == std::string_view("rings")) {
      ++i;
    } else if (arg == "--channel" && i + 1 < argc && argv[i + 1] == std::string_view("socket")) {
      ++i;
      o.ring_bytes = 0;
    } else {
      throw std::invalid_argument(
          "usage: galaxies_path_count [--channel rings|socket] [--messages N] [--size BYTES] "
          "[--requests [--in-flight N]]");
    }
  }
  if (o.in_flight == 0 || o.in_flight > o.messages)
    throw std::invalid_argument("--in-flight must be between 1 and --messages");
  return o;
}

// Requests from one node, each reply starting the next until `limit` were sent. Small captures,
// so that the completion wrapped beside its executor stays within the request's inline buffer.
struct asker {
  galaxies::node& node;
  node_id to;
  byte_view payload;
  std::size_t limit;
  std::size_t& sent;
  std::size_t& replies;

  void ask(bytes& reply) {
    ++sent;
    node.request(to, "m", payload, 10s, reply, [this, &reply](std::error_code ec, std::size_t) {
      if (ec) throw std::system_error(ec, "request");
      ++replies;
      if (sent < limit) ask(reply);
    });
  }
};

// Bytes of the frames a router queued on its links, and of those the bytes copied into a queue
// (the rest were written from the reader's buffer), summed over its nodes' and peers' links.
struct queue_copies {
  double queued = 0;
  double copied = 0;
};

queue_copies copies_of(const router::router& r) {
  queue_copies c;
  const auto status = r.own_status();
  for (const char* kind : {"nodes", "peers"})
    for (const auto& link : status[kind]) {
      c.queued += link.value("bytes_queued", 0.0);
      c.copied += link.value("bytes_copied", 0.0);
    }
  return c;
}

queue_copies copies_of(const router::router& a, const router::router& b) {
  const auto ca = copies_of(a), cb = copies_of(b);
  return {ca.queued + cb.queued, ca.copied + cb.copied};
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
    const auto [mine, theirs] = unix_pair();
    b.accept_tcp(unix_socket(io, theirs), {"127.0.0.1:2", true});
    done({}, unix_socket(io, mine));
  };
  router::router a(io.get_executor(), host_settings(ha), std::move(dial));
  a.set_peers({{hb, "127.0.0.1:1"}});

  // Each side of a worker's channel as a spawned worker and its master build it
  // (process/spawn.cpp, host/run.cpp): the master creates the rings and both doorbells, the
  // worker opens what it was handed. This process's own pid stands for the worker's, so that the
  // master's last resort against a silent worker (SIGKILL) could only ever hit this program.
  auto attach = [&](router::router& r) {
    detail::node_core::settings s;
    s.role = wire::role::worker;
    s.cluster = "count";
    auto node = std::make_shared<detail::node_core>(io.get_executor(), s);
    const auto [mine, theirs] = unix_pair();
    std::unique_ptr<transport::shm_channel> master_rings, worker_rings;
    if (o.ring_bytes > 0) {
      transport::shm_channel_fds theirs;
      master_rings = transport::shm_channel::create(o.ring_bytes, theirs);
      worker_rings = transport::shm_channel::open(std::move(theirs));
    }
    r.adopt_worker(theirs, ::getpid(), 0, std::move(master_rings));  // slot 0: one worker a router
    node->connect(worker_rings ? transport::stream(unix_socket(io, mine), std::move(worker_rings))
                               : transport::stream(unix_socket(io, mine)));
    return node;
  };
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
  galaxies::node requester(na);  // stops na when it goes, after na->stop() below
  std::vector<bytes> buffers(o.requests ? o.in_flight : 0);
  const queue_copies copies_before = copies_of(a, b);
  const std::size_t allocations_before = allocations.load();
  const std::uint64_t forwarded_before = a.counters().forwarded + b.counters().forwarded;
  CALLGRIND_ZERO_STATS;
  CALLGRIND_START_INSTRUMENTATION;
  if (o.requests) {
    // `in_flight` outstanding: each reply starts the next request until all were sent. Each
    // reads its reply into a buffer of its own, reused (node::request's allocation-free form).
    asker requests{requester, nb->id(), galaxies::as_bytes(payload), o.messages, sent, replies};
    for (auto& reply : buffers) requests.ask(reply);
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
  const queue_copies copies_after = copies_of(a, b);
  const double queued = copies_after.queued - copies_before.queued;
  std::printf(
      "%s channels; %s of %zu bytes: %zu; allocations: %zu (%.3f per %s); frames per %s: %.3f\n",
      o.ring_bytes > 0 ? "rings" : "socket", o.requests ? "requests" : "messages", o.size,
      o.messages, allocated, static_cast<double>(allocated) / static_cast<double>(o.messages),
      o.requests ? "request" : "message", o.requests ? "request" : "message",
      frames / static_cast<double>(o.messages));
  // Each forwarded byte is copied at most once in a master: the share copied is the copies per
  // frame (cut-through writes the rest from the reader's buffer).
  std::printf("copies per forwarded frame in the masters: %.3f (%.0f of %.0f bytes copied)\n",
              queued > 0 ? (copies_after.copied - copies_before.copied) / queued : 0.0,
              copies_after.copied - copies_before.copied, queued);
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
