#include "limit_option.hpp"

#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include "base/limits.hpp"

namespace galaxies::cli {
namespace {

struct limit_field {
  const char* name;
  std::function<void(limits_options&, std::uint64_t)> set;
  std::function<std::uint64_t(const limits_options&)> get;
  std::uint64_t min = 1;
  std::uint64_t max = std::numeric_limits<std::uint32_t>::max();
};

template <class T>
limit_field field(const char* name, T limits_options::*member, std::uint64_t min = 1,
                  std::uint64_t max = std::numeric_limits<std::uint32_t>::max()) {
  return {name, [member](limits_options& l, std::uint64_t v) { l.*member = static_cast<T>(v); },
          [member](const limits_options& l) { return static_cast<std::uint64_t>(l.*member); }, min,
          max};
}

limit_field milliseconds(const char* name, std::chrono::milliseconds limits_options::*member,
                         std::uint64_t min) {
  return {
      name,
      [member](limits_options& l, std::uint64_t v) { l.*member = std::chrono::milliseconds(v); },
      [member](const limits_options& l) { return static_cast<std::uint64_t>((l.*member).count()); },
      min, 3600000};
}

const std::vector<limit_field>& fields() {
  static const std::vector<limit_field> all = {
      field("max_frame_size", &limits_options::max_frame_size, 4096),
      field("max_pending_requests", &limits_options::max_pending_requests),
      field("max_queue_bytes", &limits_options::max_queue_bytes, 4096, 1ull << 40),
      field("max_total_queue_bytes", &limits_options::max_total_queue_bytes, 4096, 1ull << 42),
      field("max_nodes_per_host", &limits_options::max_nodes_per_host),
      field("max_groups_per_node", &limits_options::max_groups_per_node, 1, 1u << 16),
      field("max_group_members", &limits_options::max_group_members, 1, 1u << 20),
      field("max_connections", &limits_options::max_connections),
      field("max_handshakes", &limits_options::max_handshakes),
      field("max_dials", &limits_options::max_dials),
      field("max_routed_requests", &limits_options::max_routed_requests),
      milliseconds("write_stall_ms", &limits_options::write_stall, 100),
      milliseconds("max_hold_ms", &limits_options::max_hold, 10),
      field("flow_window", &limits_options::flow_window, limits::min_flow_window, 1u << 30),
      field("channel_ring_bytes", &limits_options::channel_ring_bytes, 0, 1u << 30),
  };
  return all;
}

}  // namespace

void apply_limit(limits_options& limits, std::string_view assignment) {
  const auto eq = assignment.find('=');
  const std::string_view name = assignment.substr(0, eq);
  for (const auto& f : fields()) {
    if (name != f.name) continue;
    const std::string_view text = eq == std::string_view::npos ? "" : assignment.substr(eq + 1);
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < f.min || value > f.max)
      throw std::invalid_argument("--limit " + std::string(name) + ": expected an integer in " +
                                  std::to_string(f.min) + ".." + std::to_string(f.max));
    f.set(limits, value);
    return;
  }
  throw std::invalid_argument("--limit: unknown limit '" + std::string(name) +
                              "'; known: " + describe_limits());
}

std::string describe_limits() {
  const limits_options defaults;
  std::string out;
  for (const auto& f : fields()) {
    if (!out.empty()) out += ", ";
    out += std::string(f.name) + " (" + std::to_string(f.get(defaults)) + ")";
  }
  return out;
}

}  // namespace galaxies::cli
