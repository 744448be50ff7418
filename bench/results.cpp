#include "results.hpp"

#include <algorithm>
#include <cmath>

namespace galaxies::bench {

void compute_rate(throughput_result& r) {
  r.seconds = r.arrived > 1 ? static_cast<double>(r.last_arrival_ns - r.first_arrival_ns) / 1e9 : 0;
  r.msgs_per_s = r.seconds > 0 ? static_cast<double>(r.arrived) / r.seconds : 0;
}

throughput_result combine(const std::vector<throughput_result>& pairs) {
  throughput_result out;
  for (const auto& p : pairs) {
    out.sent += p.sent;
    out.overloaded += p.overloaded;
    out.arrived += p.arrived;
    if (p.arrived == 0) continue;
    if (out.first_arrival_ns == 0 || p.first_arrival_ns < out.first_arrival_ns)
      out.first_arrival_ns = p.first_arrival_ns;
    out.last_arrival_ns = std::max(out.last_arrival_ns, p.last_arrival_ns);
  }
  compute_rate(out);
  return out;
}

nlohmann::json figures(const throughput_result& r) {
  // More can arrive than was counted as accepted only through a bug; say so rather than wrap.
  const double lost = static_cast<double>(r.sent) - static_cast<double>(r.arrived);
  return {{"msgs_per_s", r.msgs_per_s},
          {"sent", r.sent},
          {"arrived", r.arrived},
          {"lost", lost},
          {"refused", r.overloaded}};
}

nlohmann::json figures(const latency_result& r) {
  return {{"p50_us", r.p50_us},       {"p99_us", r.p99_us},
          {"p999_us", r.p999_us},     {"requests_per_s", r.requests_per_s},
          {"completed", r.completed}, {"errors", r.errors}};
}

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

nlohmann::json spread(std::vector<double> values) {
  if (values.empty()) return nullptr;
  std::sort(values.begin(), values.end());
  return {{"min", values.front()}, {"median", values[values.size() / 2]}, {"max", values.back()}};
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
