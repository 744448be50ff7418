#include <algorithm>
#include <cmath>
#include <limits>

#include "galaxies/counters.hpp"

namespace galaxies {
namespace {

using std::chrono::nanoseconds;
constexpr std::size_t finite_buckets = latency_histogram::bucket_count - 1;

// Prometheus' client defaults (5 ms to 10 s) extended down to 50 µs: a round trip between two
// workers on one host takes tens of microseconds, and the defaults would put all of them in one
// bucket.
constexpr std::array<nanoseconds, finite_buckets> finite_bounds = {
    nanoseconds{50'000},        nanoseconds{100'000},       nanoseconds{250'000},
    nanoseconds{500'000},       nanoseconds{1'000'000},     nanoseconds{2'500'000},
    nanoseconds{5'000'000},     nanoseconds{10'000'000},    nanoseconds{25'000'000},
    nanoseconds{50'000'000},    nanoseconds{100'000'000},   nanoseconds{250'000'000},
    nanoseconds{500'000'000},   nanoseconds{1'000'000'000}, nanoseconds{2'500'000'000},
    nanoseconds{5'000'000'000}, nanoseconds{10'000'000'000}};

constexpr std::array<double, latency_histogram::bucket_count> bounds_in_seconds() {
  std::array<double, latency_histogram::bucket_count> out{};
  for (std::size_t i = 0; i < finite_buckets; ++i)
    out[i] = static_cast<double>(finite_bounds[i].count()) / 1e9;
  out.back() = std::numeric_limits<double>::infinity();
  return out;
}

constexpr auto seconds_bounds = bounds_in_seconds();

}  // namespace

const std::array<double, latency_histogram::bucket_count>& latency_histogram::bounds() noexcept {
  return seconds_bounds;
}

std::array<std::uint64_t, latency_histogram::bucket_count> latency_histogram::counts()
    const noexcept {
  std::array<std::uint64_t, bucket_count> out{};
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) out[i] = running += in_bucket[i];
  return out;
}

void latency_histogram::observe(nanoseconds rtt) noexcept {
  rtt = std::max(rtt, nanoseconds{0});
  // The first bound at or above rtt: a bound is inclusive (Prometheus' `le`).
  const auto at = std::lower_bound(finite_bounds.begin(), finite_bounds.end(), rtt);
  ++in_bucket[static_cast<std::size_t>(at - finite_bounds.begin())];
  ++count;
  sum += rtt;
}

double latency_histogram::quantile(double q) const noexcept {
  if (std::isnan(q) || count == 0) return std::numeric_limits<double>::quiet_NaN();
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  const auto cumulative = counts();
  const double rank = q * static_cast<double>(cumulative.back());
  // The first bucket that reaches the rank; for rank 0, the first that holds anything.
  std::size_t b = 0;
  while (b + 1 < bucket_count && (static_cast<double>(cumulative[b]) < rank || cumulative[b] == 0))
    ++b;
  if (b == finite_buckets) return seconds_bounds[finite_buckets - 1];
  const double start = b == 0 ? 0.0 : seconds_bounds[b - 1];
  const double below = b == 0 ? 0.0 : static_cast<double>(cumulative[b - 1]);
  const double inside = static_cast<double>(in_bucket[b]);
  return start + (seconds_bounds[b] - start) * ((rank - below) / inside);
}

}  // namespace galaxies
