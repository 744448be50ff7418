#include "results.hpp"

#include <algorithm>
#include <cmath>

namespace galaxies::bench {

double percentile(std::vector<std::int64_t>& values, double p) {
  if (values.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
  const std::size_t index = std::clamp<std::size_t>(rank, 1, values.size()) - 1;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return static_cast<double>(values[index]);
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

latency_result summarize(std::vector<std::int64_t>& samples_ns, std::uint64_t errors,
                         clock::duration elapsed) {
  latency_result out;
  out.completed = samples_ns.size();
  out.errors = errors;
  out.p50_us = percentile(samples_ns, 0.50) / 1000.0;
  out.p90_us = percentile(samples_ns, 0.90) / 1000.0;
  out.p99_us = percentile(samples_ns, 0.99) / 1000.0;
  out.p999_us = percentile(samples_ns, 0.999) / 1000.0;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  out.requests_per_s = seconds > 0 ? static_cast<double>(out.completed) / seconds : 0;
  return out;
}

}  // namespace galaxies::bench
