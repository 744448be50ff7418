// The Prometheus text exposition format (version 0.0.4), written without a client library: a
// family's # HELP and # TYPE lines, then its samples, label values escaped. Pure text; what a
// family means is its caller's business (monitor/render_metrics.hpp).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace galaxies::monitor {

using label = std::pair<std::string_view, std::string_view>;

class metrics_text {
 public:
  // Starts a family. `name` must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) not used
  // before, and `type` counter, gauge, histogram, summary or untyped: a programming error
  // otherwise (std::logic_error).
  void family(std::string_view name, std::string_view type, std::string_view help);
  // A sample of the current family: `suffix` is appended to its name ("_bucket", "_sum", ...).
  void sample(double value, std::initializer_list<label> labels = {}, std::string_view suffix = {});
  void sample(std::uint64_t value, std::initializer_list<label> labels = {},
              std::string_view suffix = {});
  void sample(const std::vector<label>& labels, double value, std::string_view suffix = {});

  const std::string& text() const noexcept { return text_; }

 private:
  void begin_sample(std::string_view suffix);
  void write_labels(const label* first, const label* last);

  std::string text_;
  std::string current_;
  std::vector<std::string> names_;
};

// Whether `name` may name a metric, and a label ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __).
bool is_metric_name(std::string_view name) noexcept;
bool is_label_name(std::string_view name) noexcept;

}  // namespace galaxies::monitor
