// slow_consumer: the sink (host b) stops reading while a worker on host a floods it; meanwhile, in
// the middle of the flood, two other pairs on the same host link exchange messages and requests.
// What it shows: how much of their throughput and latency the neighbours keep, how far the masters'
// memory grows, and whether every message send() accepted reaches the sink once it reads again.
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <stdexcept>

#include "galaxies_system.hpp"
#include "gather.hpp"
#include "machine_context.hpp"

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t neighbour_payload = 64;
constexpr auto rss_interval = 50ms;
constexpr auto drain_poll = 5ms;
// Once the sink reads again, what it missed must arrive within this (or it never will).
constexpr auto drain_timeout = 20s;

double ratio(double x, double y) {
  return y > 0 ? x / y : 0;
}

struct phase {
  throughput_result send;
  latency_result request;
};

// A neighbour's rate from the start of its sending, not from its first arrival: messages held up
// by the flood and then delivered in one burst must not look fast.
phase read_phase(const std::vector<nlohmann::json>& results) {
  phase p{results.at(0).get<throughput_result>(), results.at(1).get<latency_result>()};
  const double seconds = static_cast<double>(p.send.last_arrival_ns - p.send.started_ns) / 1e9;
  p.send.msgs_per_s = seconds > 0 ? static_cast<double>(p.send.arrived) / seconds : 0;
  return p;
}

// Outside the coroutines (g++ 12 and braced lists inside them, see galaxies_system.cpp).
nlohmann::json report(const phase& quiet, const phase& loud, const throughput_result& flood,
                      double flood_ms, std::uint64_t arrived, double drain_ms,
                      const std::string& sink_gone, const nlohmann::json& before,
                      const nlohmann::json& during, const nlohmann::json& after) {
  const auto lost = [](const throughput_result& r) {
    return static_cast<double>(r.sent) - static_cast<double>(r.arrived);
  };
  nlohmann::json out{{"msgs_per_s_quiet", quiet.send.msgs_per_s},
                     {"msgs_per_s_flood", loud.send.msgs_per_s},
                     {"throughput_ratio", ratio(loud.send.msgs_per_s, quiet.send.msgs_per_s)},
                     {"p50_us_quiet", quiet.request.p50_us},
                     {"p50_us_flood", loud.request.p50_us},
                     {"p50_ratio", ratio(loud.request.p50_us, quiet.request.p50_us)},
                     {"p99_us_quiet", quiet.request.p99_us},
                     {"p99_us_flood", loud.request.p99_us},
                     {"p99_ratio", ratio(loud.request.p99_us, quiet.request.p99_us)},
                     {"neighbour_lost", lost(quiet.send) + lost(loud.send)},
                     {"neighbour_request_errors", quiet.request.errors + loud.request.errors},
                     {"flood_ms", flood_ms},
                     {"sent", flood.sent},
                     {"refused", flood.overloaded},
                     {"arrived", arrived},
                     {"lost", static_cast<double>(flood.sent) - static_cast<double>(arrived)},
                     {"delivered_all", arrived == flood.sent && sink_gone.empty()},
                     {"drain_ms", drain_ms},
                     {"sink_disconnected", sink_gone}};
  for (const char* host : {"a", "b"}) {
    const std::string key = std::string("rss_kib_") + host;
    out[key + "_before"] = before.at(host);
    out[key + "_during"] = during.at(host);
    out[key + "_after"] = after.at(host);
  }
  return out;
}

}  // namespace

nlohmann::json galaxies_system::rss_now() const {
  return {{"a", rss_kib(hosts_.at(0)->pid())}, {"b", rss_kib(hosts_.at(1)->pid())}};
}

asio::awaitable<nlohmann::json> galaxies_system::sample_peak_rss(
    std::chrono::milliseconds duration) {
  nlohmann::json peak = rss_now();
  const auto end = clock::now() + duration;
  while (clock::now() < end) {
    co_await pause(rss_interval);
    const auto now = rss_now();
    for (const char* host : {"a", "b"})
      peak[host] = std::max(peak[host].get<long>(), now[host].get<long>());
  }
  co_return peak;
}

// A sink its master let go (as a slow consumer, in an earlier run) is replaced by a new one.
asio::awaitable<void> galaxies_system::replace_lost_sink() {
  if (sink_->disconnected().empty()) co_return;
  sink_ = std::make_unique<sink_node>(unix_path("b"), cluster_);
  const auto give_up = clock::now() + 10s;
  const auto seen = [&] {
    if (!sink_->ready()) return false;
    const auto nodes = control_->nodes();
    return std::any_of(nodes.begin(), nodes.end(),
                       [&](const node_info& n) { return n.id == sink_->id(); });
  };
  while (!seen()) {
    if (!sink_->disconnected().empty() || clock::now() > give_up)
      throw std::runtime_error("cannot attach a new sink node: " + sink_->disconnected());
    co_await pause(drain_poll);
  }
  co_await pause(100ms);  // the flooder hears of it about when the control node does
}

// The sink reads again as soon as the flood ends, whether or not the neighbours are done.
asio::awaitable<nlohmann::json> galaxies_system::flood_then_resume(node_id flooder,
                                                                   test_spec flood) {
  const auto start = clock::now();
  auto result = co_await run_remote(flooder, sink_->id(), std::move(flood));
  sink_->resume();
  result["flood_ms"] = std::chrono::duration<double, std::milli>(clock::now() - start).count();
  co_return result;
}

asio::awaitable<nlohmann::json> galaxies_system::slow_consumer(const test_spec& spec) {
  co_await replace_lost_sink();
  const auto window = std::chrono::milliseconds(spec.window_ms);
  // The flood starts this long before the neighbours measure (time enough to fill the queues on
  // the way) and is meant to go on as long after them; a master that drops the sink ends it early
  // (flood_ms says when).
  const auto settle = std::max<std::chrono::milliseconds>(window / 5, 200ms);
  test_spec send{spec.name + ".send", test_kind::throughput, neighbour_payload, 1, 1,
                 spec.window_ms};
  test_spec ask{spec.name + ".request", test_kind::latency, neighbour_payload, 1, 1,
                spec.window_ms};
  test_spec flood{spec.name + ".flood",
                  test_kind::flood,
                  spec.payload,
                  1,
                  1,
                  static_cast<int>((window + 2 * settle).count())};
  const pair neighbour_send = pairs_.at(0);
  const pair neighbour_ask = pairs_.at(1);
  const node_id flooder = pairs_.at(2).sender;

  std::vector<asio::awaitable<nlohmann::json>> quiet_tasks;
  quiet_tasks.push_back(run_remote(neighbour_send.sender, neighbour_send.receiver, send));
  quiet_tasks.push_back(run_remote(neighbour_ask.sender, neighbour_ask.receiver, ask));
  const phase quiet = read_phase(co_await gather(std::move(quiet_tasks)));

  const nlohmann::json before = rss_now();
  sink_->reset_count();
  sink_->freeze();
  std::vector<nlohmann::json> loud_results;
  std::exception_ptr failure;
  try {
    std::vector<asio::awaitable<nlohmann::json>> loud_tasks;
    loud_tasks.push_back(sample_peak_rss(std::chrono::milliseconds(flood.window_ms)));
    loud_tasks.push_back(flood_then_resume(flooder, flood));
    loud_tasks.push_back(run_delayed(settle, neighbour_send.sender, neighbour_send.receiver, send));
    loud_tasks.push_back(run_delayed(settle, neighbour_ask.sender, neighbour_ask.receiver, ask));
    loud_results = co_await gather(std::move(loud_tasks));
  } catch (...) {
    failure = std::current_exception();
  }
  sink_->resume();
  if (failure) std::rethrow_exception(failure);

  const nlohmann::json during = loud_results[0];
  const auto flooded = loud_results[1].get<throughput_result>();
  const phase loud = read_phase({loud_results[2], loud_results[3]});
  const auto resumed = clock::now();
  while (sink_->arrived() < flooded.sent && sink_->disconnected().empty() &&
         clock::now() - resumed < drain_timeout)
    co_await pause(drain_poll);
  const double drain_ms = std::chrono::duration<double, std::milli>(clock::now() - resumed).count();
  co_return report(quiet, loud, flooded, loud_results[1].at("flood_ms").get<double>(),
                   sink_->arrived(), drain_ms, sink_->disconnected(), before, during, rss_now());
}

}  // namespace galaxies::bench
