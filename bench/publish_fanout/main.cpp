// galaxies_publish_fanout: a publish to a group of 64 members on 4 hosts against the same message
// sent 64 times (bench/RESULTS.md). Four routers ("hosts") linked by socketpairs as their host
// links, 16 member nodes on each and one publisher on the first, all on one io_context and one
// thread: the process's CPU time is the whole path's (publisher, four masters, 64 receivers), so
// the two ways compare on this noisy machine better than a wall clock alone would say.
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "in_process.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t hosts = 4;
constexpr std::size_t members_per_host = 16;

double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct options {
  std::size_t messages = 20000;
  std::size_t size = 64;
  int runs = 5;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::size_t value = 0;
    const std::string_view v = i + 1 < argc ? argv[i + 1] : "";
    if (std::from_chars(v.data(), v.data() + v.size(), value).ec != std::errc{} || value == 0)
      throw std::invalid_argument(
          "usage: galaxies_publish_fanout [--messages N] [--size BYTES] [--runs N]");
    ++i;
    if (arg == "--messages")
      o.messages = value;
    else if (arg == "--size")
      o.size = value;
    else if (arg == "--runs")
      o.runs = static_cast<int>(value);
    else
      throw std::invalid_argument("unknown option " + std::string(arg));
  }
  return o;
}

struct figures {
  double wall_s = 0;
  double cpu_s = 0;
  double frames = 0;  // frames the masters handed on, per message
};

class cluster {
 public:
  cluster() {
    for (std::size_t i = 0; i < hosts; ++i) ids_.push_back(host_id::random());
    for (std::size_t i = 0; i < hosts; ++i) {
      router::router::settings s;
      s.self = ids_[i];
      s.cluster = "fanout";
      s.address = "127.0.0.1:" + std::to_string(i + 1);
      s.hostname = "fanout";
      router::router::callbacks cb;
      // A dial to host j is a socketpair whose other end host j accepts as a loopback TCP peer.
      cb.connect = [this](const std::string& address, transport::connect_handler done) {
        const std::size_t j = std::stoul(address.substr(address.rfind(':') + 1)) - 1;
        auto [mine, theirs] = socket_pair(io_);
        routers_.at(j)->accept_tcp(std::move(theirs), {"127.0.0.1:9", true});
        done({}, std::move(mine));
      };
      routers_.push_back(std::make_unique<router::router>(io_.get_executor(), s, std::move(cb)));
    }
    // Each host dials those after it: one link per pair.
    for (std::size_t i = 0; i < hosts; ++i) {
      std::vector<router::peer_row> later;
      for (std::size_t j = i + 1; j < hosts; ++j)
        later.push_back({ids_[j], "127.0.0.1:" + std::to_string(j + 1)});
      routers_[i]->set_peers(later);
    }
    publisher_ = attach(0);
    for (std::size_t h = 0; h < hosts; ++h)
      for (std::size_t k = 0; k < members_per_host; ++k) {
        auto member = attach(h);
        if (member->join("room")) throw std::runtime_error("join failed");
        member->set_handler("m", [this](const message&, responder) { ++received_; });
        members_.push_back(member);
      }
    for (const auto until = std::chrono::steady_clock::now() + 20s;
         publisher_->members("room").size() < members_.size() ||
         publisher_->nodes().size() < members_.size();) {
      if (std::chrono::steady_clock::now() > until)
        throw std::runtime_error("the group never formed");
      io_.run_for(1ms);
    }
  }

  ~cluster() {
    for (auto& m : members_) m->stop();
    publisher_->stop();
    io_.run_for(50ms);
  }

  // `count` messages to every member: publish once each, or send once per member.
  figures run(std::size_t count, const std::string& payload, bool publish) {
    const auto bytes = galaxies::as_bytes(payload);
    const std::size_t want = received_ + count * members_.size();
    const std::uint64_t forwarded_before = forwarded();
    std::size_t message = 0, member = 0;
    const double cpu_before = cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    while (received_ < want) {
      if (publish) {
        while (message < count && !publisher_->publish("room", "m", bytes)) ++message;
      } else {
        while (message < count && !publisher_->send(members_[member]->id(), "m", bytes))
          if (++member == members_.size()) {
            member = 0;
            ++message;
          }
      }
      io_.run_one();
    }
    figures f;
    f.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    f.cpu_s = cpu_seconds() - cpu_before;
    f.frames = static_cast<double>(forwarded() - forwarded_before) / static_cast<double>(count);
    return f;
  }

 private:
  std::shared_ptr<detail::node_core> attach(std::size_t host) {
    return attach_node(io_, *routers_[host], "fanout");
  }

  std::uint64_t forwarded() const {
    std::uint64_t sum = 0;
    for (const auto& r : routers_) sum += r->counters().forwarded;
    return sum;
  }

  asio::io_context io_;
  std::vector<host_id> ids_;
  std::vector<std::unique_ptr<router::router>> routers_;
  std::shared_ptr<detail::node_core> publisher_;
  std::vector<std::shared_ptr<detail::node_core>> members_;
  std::size_t received_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run(const options& o) {
  spdlog::set_level(spdlog::level::warn);
  cluster c;
  const std::string payload(o.size, 'p');
  c.run(std::min<std::size_t>(o.messages, 1000), payload, true);  // warm-up: pools, page faults
  c.run(std::min<std::size_t>(o.messages, 1000), payload, false);
  std::vector<double> publish_cpu, sends_cpu, ratio;
  std::printf("%zu messages of %zu bytes to a group of %zu members on %zu hosts, %d runs\n",
              o.messages, o.size, hosts * members_per_host, hosts, o.runs);
  std::printf("%-4s %-8s %10s %10s %14s %16s\n", "run", "way", "wall ms", "cpu ms", "cpu us / msg",
              "frames / msg");
  for (int r = 1; r <= o.runs; ++r) {
    figures f[2];
    // Each way goes first in every other run.
    for (int k = 0; k < 2; ++k) {
      const bool publish = (k + r) % 2 == 0;
      f[publish ? 0 : 1] = c.run(o.messages, payload, publish);
    }
    for (int k = 0; k < 2; ++k)
      std::printf("%-4d %-8s %10.1f %10.1f %14.2f %16.2f\n", r, k == 0 ? "publish" : "64 sends",
                  f[k].wall_s * 1e3, f[k].cpu_s * 1e3,
                  f[k].cpu_s * 1e6 / static_cast<double>(o.messages), f[k].frames);
    publish_cpu.push_back(f[0].cpu_s);
    sends_cpu.push_back(f[1].cpu_s);
    ratio.push_back(f[1].cpu_s / f[0].cpu_s);
  }
  std::printf(
      "median cpu us per message: publish %.2f, 64 sends %.2f; same-run ratio "
      "(sends / publish) median %.2f, min %.2f, max %.2f\n",
      median(publish_cpu) * 1e6 / static_cast<double>(o.messages),
      median(sends_cpu) * 1e6 / static_cast<double>(o.messages), median(ratio),
      *std::min_element(ratio.begin(), ratio.end()), *std::max_element(ratio.begin(), ratio.end()));
  return 0;
}

}  // namespace
}  // namespace galaxies::bench

int main(int argc, char** argv) {
  try {
    return galaxies::bench::run(galaxies::bench::parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "galaxies_publish_fanout: %s\n", e.what());
    return 1;
  }
}
