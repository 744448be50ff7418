// What the benchmark measures and what a measurement returns, shared by the driver, the workers
// (which exchange them as JSON) and the baselines; plus the statistics over samples and runs.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace galaxies::bench {

// steady_clock is CLOCK_MONOTONIC on Linux: one clock for every process of the machine, so a
// time point taken by the sender can be compared with one taken by the receiver.
using clock = std::chrono::steady_clock;

inline std::int64_t to_ns(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline clock::time_point from_ns(std::int64_t ns) {
  return clock::time_point(
      std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(ns)));
}

// flood: one-way messages to a receiver that may not be reading; the sender only counts what
// send() accepted (the receiver's side is counted by whoever owns it).
enum class test_kind { throughput, latency, slow_consumer, flood };
NLOHMANN_JSON_SERIALIZE_ENUM(test_kind, {{test_kind::throughput, "throughput"},
                                         {test_kind::latency, "latency"},
                                         {test_kind::slow_consumer, "slow_consumer"},
                                         {test_kind::flood, "flood"}})

struct test_spec {
  std::string name;
  test_kind kind = test_kind::throughput;
  std::size_t payload = 64;  // bytes of each message, request and reply
  int inflight = 1;          // latency: requests outstanding at any time
  int pairs = 1;             // throughput: sender/receiver pairs sending at the same time
  int window_ms = 1000;      // how long the sender sends
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(test_spec, name, kind, payload, inflight, pairs, window_ms)

// One-way messages. The sender sends for the test's window; the rate is what arrived at the
// receiver divided by the time from the first arrival to the last, so messages still queued when
// the window ends count when they arrive, and lost ones never count.
struct throughput_result {
  std::uint64_t sent = 0;        // accepted by send()
  std::uint64_t overloaded = 0;  // send() refusals (the sender backed off each time)
  std::uint64_t arrived = 0;     // at the receiver
  double seconds = 0;            // first arrival to last arrival
  double msgs_per_s = 0;
  std::int64_t first_arrival_ns = 0;  // steady clock; 0 when nothing arrived
  std::int64_t last_arrival_ns = 0;
  std::int64_t started_ns = 0;  // when the sender began (galaxies only)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(throughput_result, sent, overloaded, arrived, seconds,
                                   msgs_per_s, first_arrival_ns, last_arrival_ns, started_ns)

// Fills seconds and msgs_per_s from the arrival times and count.
void compute_rate(throughput_result& r);

// Pairs that sent at the same time, as one: counts summed, the rate over the span from the first
// arrival at any receiver to the last at any.
throughput_result combine(const std::vector<throughput_result>& pairs);

// Request/reply round trips.
struct latency_result {
  std::uint64_t completed = 0;
  std::uint64_t errors = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;  // with a few thousand samples, close to the maximum
  double requests_per_s = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(latency_result, completed, errors, p50_us, p90_us, p99_us,
                                   p999_us, requests_per_s)

// The figures a system reports for one run of a test, as the JSON document names them.
nlohmann::json figures(const throughput_result& r);
nlohmann::json figures(const latency_result& r);

// Summarises round-trip samples (nanoseconds) taken over `elapsed`; reorders `samples_ns`.
latency_result summarize(std::vector<std::int64_t>& samples_ns, std::uint64_t errors,
                         clock::duration elapsed);

// Nearest-rank percentile, p in (0, 1]; 0 for no samples. Reorders `values`.
double percentile(std::vector<std::int64_t>& values, double p);
// The median of a few values (the mean of the middle two for an even count); 0 for none.
double median(std::vector<double> values);
// {"min", "median" (the upper middle value), "max"} of many values; null for none.
nlohmann::json spread(std::vector<double> values);

}  // namespace galaxies::bench
