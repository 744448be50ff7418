#include "monitor/metrics_text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace galaxies::monitor {
namespace {

bool name_char(char c, bool first, bool colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return alpha || (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

// Label values: backslash, double quote and line feed escaped (the format's only rule); the rest
// passes as the bytes it is, which the format reads as UTF-8.
void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

// HELP text: backslash and line feed only.
void append_help(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    // The shortest text that reads back as the same double: 0.1, not 0.10000000000000001.
    char buffer[32];
    const auto written = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, written.ptr);
  }
}

}  // namespace

bool is_metric_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, true)) return false;
  return true;
}

bool is_label_name(std::string_view name) noexcept {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, false)) return false;
  return true;
}

void metrics_text::family(std::string_view name, std::string_view type, std::string_view help) {
  static constexpr std::string_view types[] = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  if (!is_metric_name(name)) throw std::logic_error("bad metric name: " + std::string(name));
  if (std::find(std::begin(types), std::end(types), type) == std::end(types))
    throw std::logic_error("bad metric type: " + std::string(type));
  if (std::find(names_.begin(), names_.end(), name) != names_.end())
    throw std::logic_error("metric family repeated: " + std::string(name));
  names_.emplace_back(name);
  current_ = name;
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  append_help(text_, help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void metrics_text::begin_sample(std::string_view suffix) {
  if (current_.empty()) throw std::logic_error("metric sample before any family");
  text_ += current_;
  text_ += suffix;
}

void metrics_text::write_labels(const label* first, const label* last) {
  if (first == last) return;
  text_ += '{';
  for (const label* l = first; l != last; ++l) {
    if (!is_label_name(l->first))
      throw std::logic_error("bad label name: " + std::string(l->first));
    if (l != first) text_ += ',';
    text_ += l->first;
    text_ += "=\"";
    append_label_value(text_, l->second);
    text_ += '"';
  }
  text_ += '}';
}

void metrics_text::sample(double value, std::initializer_list<label> labels,
                          std::string_view suffix) {
  begin_sample(suffix);
  write_labels(labels.begin(), labels.end());
  text_ += ' ';
  append_value(text_, value);
  text_ += '\n';
}

void metrics_text::sample(std::uint64_t value, std::initializer_list<label> labels,
                          std::string_view suffix) {
  begin_sample(suffix);
  write_labels(labels.begin(), labels.end());
  text_ += ' ';
  text_ += std::to_string(value);
  text_ += '\n';
}

void metrics_text::sample(const std::vector<label>& labels, double value, std::string_view suffix) {
  begin_sample(suffix);
  write_labels(labels.data(), labels.data() + labels.size());
  text_ += ' ';
  append_value(text_, value);
  text_ += '\n';
}

}  // namespace galaxies::monitor
