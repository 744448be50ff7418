#include "nats_system.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "nats_client.hpp"
#include "stream_io.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr auto startup_timeout = 10s;
// Beyond the window: what the servers may still have queued when the publisher stops.
constexpr auto drain_timeout = 10s;
constexpr int flush_timeout_ms = 10000;

// A port that was free a moment ago (nats-server takes numbers, not an inherited socket); a
// server that then fails to bind exits, which start_nats reports.
int free_port() {
  int port = 0;
  listen_loopback(port);
  return port;
}

// What one subscriber saw; written by its subscription's thread.
struct receiver_state {
  std::mutex mutex;
  std::condition_variable ended;
  bool end_seen = false;
  throughput_result result;
};

void count_message(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  const nats::message owned(m);
  auto& state = *static_cast<receiver_state*>(closure);
  std::lock_guard lock(state.mutex);
  if (natsMsg_GetDataLength(m) == 0) {  // the end marker, after the last message
    state.end_seen = true;
    state.ended.notify_all();
    return;
  }
  state.result.last_arrival_ns = to_ns(clock::now());
  if (state.result.arrived++ == 0) state.result.first_arrival_ns = state.result.last_arrival_ns;
}

// Requests with `inflight` slots; each reply comes back on the slot's own subject and starts the
// slot's next request until the deadline.
struct requester_state {
  std::mutex mutex;
  std::condition_variable done;
  natsConnection* nc = nullptr;
  std::string subject;
  std::string reply_prefix;
  std::vector<char> payload;
  clock::time_point deadline;
  std::vector<clock::time_point> sent_at;
  std::vector<std::int64_t> samples;
  int active = 0;
  std::uint64_t errors = 0;

  // `now`: the caller's clock reading (one per request, as every client here takes).
  void send(std::size_t slot, clock::time_point now) {
    sent_at[slot] = now;
    const std::string reply = reply_prefix + std::to_string(slot);
    if (natsConnection_PublishRequest(nc, subject.c_str(), reply.c_str(), payload.data(),
                                      static_cast<int>(payload.size())) != NATS_OK) {
      ++errors;
      --active;
    }
  }
};

void on_reply(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  const nats::message owned(m);
  auto& state = *static_cast<requester_state*>(closure);
  const std::string_view subject = natsMsg_GetSubject(m);
  std::size_t slot = 0;
  for (char c : subject.substr(state.reply_prefix.size())) slot = slot * 10 + (c - '0');
  std::lock_guard lock(state.mutex);
  if (slot >= state.sent_at.size()) return;
  const auto now = clock::now();
  state.samples.push_back(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - state.sent_at[slot]).count());
  if (now < state.deadline)
    state.send(slot, now);
  else
    --state.active;
  if (state.active == 0) state.done.notify_all();
}

class nats_cluster : public nats_system {
 public:
  explicit nats_cluster(const std::string& dir) {
    const std::string server = find_in_path("nats-server");
    if (server.empty()) throw std::runtime_error("--peer nats: nats-server is not in $PATH");
    const int cluster_ports[2] = {free_port(), free_port()};
    for (int i = 0; i < 2; ++i) {
      client_ports_[i] = free_port();
      const std::string me = "nats://127.0.0.1:" + std::to_string(cluster_ports[i]);
      const std::string other = "nats://127.0.0.1:" + std::to_string(cluster_ports[1 - i]);
      servers_[i] = std::make_unique<child_process>(
          server,
          std::vector<std::string>{"-a", "127.0.0.1", "-p", std::to_string(client_ports_[i]),
                                   "--cluster", me, "--cluster_name", "galaxies-bench", "--routes",
                                   other, "-l", dir + "/nats-" + std::to_string(i) + ".log"});
    }
    // Both ends of the route, each way: a request from either server is answered on the other.
    for (int i = 0; i < 2; ++i) {
      auto asker = connect(i);
      auto answerer = connect(1 - i);
      const std::string subject = "bench.ready." + std::to_string(i);
      auto responder = nats::echo(answerer.get(), subject);
      nats::wait_for_interest(asker.get(), subject, startup_timeout);
    }
  }

  ~nats_cluster() override {
    stop(1000ms);
    nats_Close();
  }

  throughput_result throughput(const test_spec& spec) override {
    const std::string run = std::to_string(++tests_);
    struct pair {
      // Declared first: destroyed after the connections, whose threads run its callbacks.
      std::unique_ptr<receiver_state> state = std::make_unique<receiver_state>();
      nats::connection publisher;
      nats::connection subscriber;
      nats::subscription data;
      nats::subscription probe;
      std::string subject;
      std::uint64_t sent = 0;
    };
    std::vector<pair> pairs(static_cast<std::size_t>(spec.pairs));
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      auto& p = pairs[i];
      p.subject = "bench.tp." + run + "." + std::to_string(i);
      p.publisher = connect(0);
      p.subscriber = connect(1);
      p.data = nats::subscribe(p.subscriber.get(), p.subject, count_message, p.state.get());
      p.probe = nats::echo(p.subscriber.get(), p.subject + ".probe");
      nats::wait_for_interest(p.publisher.get(), p.subject + ".probe", startup_timeout);
    }

    const auto window_end = clock::now() + std::chrono::milliseconds(spec.window_ms);
    std::vector<std::thread> publishers;
    std::atomic<bool> failed{false};
    const std::vector<char> payload(spec.payload, 'x');
    for (auto& p : pairs) {
      publishers.emplace_back([&p, &payload, window_end, &failed] {
        natsConnection* nc = p.publisher.get();
        const int size = static_cast<int>(payload.size());
        while (clock::now() < window_end) {
          for (int i = 0; i < 64; ++i) {  // not a clock read per message
            if (natsConnection_Publish(nc, p.subject.c_str(), payload.data(), size) != NATS_OK) {
              failed = true;
              return;
            }
            ++p.sent;
          }
        }
        if (natsConnection_Publish(nc, p.subject.c_str(), nullptr, 0) != NATS_OK ||
            natsConnection_FlushTimeout(nc, flush_timeout_ms) != NATS_OK)
          failed = true;
      });
    }
    for (auto& t : publishers) t.join();
    if (failed) throw std::runtime_error("nats: a publish failed");

    std::vector<throughput_result> results;
    for (auto& p : pairs) {
      std::unique_lock lock(p.state->mutex);
      // A subscriber that never sees the end marker missed messages: what arrived counts.
      p.state->ended.wait_for(lock, drain_timeout, [&] { return p.state->end_seen; });
      p.state->result.sent = p.sent;
      results.push_back(p.state->result);
    }
    for (auto& p : pairs) p.data.reset();  // no callback runs past here
    return combine(results);
  }

  latency_result latency(const test_spec& spec) override {
    const std::string run = std::to_string(++tests_);
    // Declared first: destroyed after the connections, whose threads run its callbacks.
    requester_state state;
    auto requester = connect(0, true);
    auto responder = connect(1, true);
    state.nc = requester.get();
    state.subject = "bench.echo." + run;
    state.reply_prefix = "bench.reply." + run + ".";
    state.payload.assign(spec.payload, 'x');
    state.sent_at.resize(static_cast<std::size_t>(spec.inflight));
    state.samples.reserve(1 << 16);
    auto echo = nats::echo(responder.get(), state.subject);
    nats::wait_for_interest(requester.get(), state.subject, startup_timeout);
    // Subscribed before the first request on the same connection: the route carries this
    // interest ahead of the requests.
    auto replies = nats::subscribe(requester.get(), state.reply_prefix + "*", on_reply, &state);

    const auto start = clock::now();
    {
      std::unique_lock lock(state.mutex);
      state.deadline = start + std::chrono::milliseconds(spec.window_ms);
      state.active = spec.inflight;
      for (std::size_t slot = 0; slot < state.sent_at.size(); ++slot)
        state.send(slot, clock::now());
      state.done.wait_for(lock, std::chrono::milliseconds(spec.window_ms) + drain_timeout,
                          [&] { return state.active == 0; });
    }
    const auto elapsed = clock::now() - start;
    replies.reset();  // no callback runs past here
    std::lock_guard lock(state.mutex);
    return summarize(state.samples, state.errors + static_cast<std::uint64_t>(state.active),
                     elapsed);
  }

  void check_running() override {
    for (auto& s : servers_)
      if (!s->running()) throw std::runtime_error("a nats-server exited early");
  }

  bool stop(std::chrono::milliseconds grace) override {
    bool clean = true;
    for (auto& s : servers_)
      if (s) clean = s->stop(grace) && clean;
    return clean;
  }

 private:
  nats::connection connect(int server, bool send_asap = false) {
    try {
      return nats::connect(client_ports_[server], startup_timeout, send_asap);
    } catch (const std::exception&) {
      check_running();
      throw;
    }
  }

  int client_ports_[2] = {0, 0};
  std::unique_ptr<child_process> servers_[2];
  int tests_ = 0;
};

}  // namespace

bool nats_built_in() {
  return true;
}

std::unique_ptr<nats_system> start_nats(const std::string& dir) {
  return std::make_unique<nats_cluster>(dir);
}

}  // namespace galaxies::bench
