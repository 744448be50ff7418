#include "support/metrics_samples.hpp"

#include <cmath>
#include <cstdlib>

namespace galaxies::test {
namespace {

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

// Takes a metric or label name off the front of `s`; "" when there is none.
std::string take_name(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && name_char(s[n], n == 0)) ++n;
  std::string name(s.substr(0, n));
  s.remove_prefix(n);
  return name;
}

// Takes `"value"` off the front of `s`, unescaping \\ \" \n; nullopt when malformed.
std::optional<std::string> take_quoted(std::string_view& s) {
  if (s.empty() || s.front() != '"') return std::nullopt;
  std::string out;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      s.remove_prefix(i + 1);
      return out;
    }
    if (c == '\n') return std::nullopt;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == s.size()) return std::nullopt;
    if (s[i] == 'n')
      out += '\n';
    else if (s[i] == '\\' || s[i] == '"')
      out += s[i];
    else
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<double> parse_value(const std::string& text) {
  if (text == "NaN") return std::nan("");
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

std::string unescape_help(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '\\' || s[i + 1] == 'n')) {
      out += s[++i] == 'n' ? '\n' : '\\';
    } else {
      out += s[i];
    }
  }
  return out;
}

// "# HELP name text" / "# TYPE name type"; other comments are allowed and ignored.
std::optional<std::string> parse_comment(std::string_view line, metrics_page& page) {
  line.remove_prefix(1);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  const bool is_help = line.starts_with("HELP ");
  if (!is_help && !line.starts_with("TYPE ")) return std::nullopt;
  line.remove_prefix(5);
  const std::string name = take_name(line);
  if (name.empty()) return "no metric name";
  if (!line.empty() && line.front() != ' ') return "bad metric name";
  if (!line.empty()) line.remove_prefix(1);
  auto& table = is_help ? page.help : page.types;
  if (table.contains(name)) return std::string(is_help ? "HELP" : "TYPE") + " repeated";
  table[name] = is_help ? unescape_help(line) : std::string(line);
  return std::nullopt;
}

std::optional<std::string> parse_sample(std::string_view line, metrics_page& page) {
  metric_sample sample;
  sample.name = take_name(line);
  if (sample.name.empty()) return "no metric name";
  if (!line.empty() && line.front() == '{') {
    line.remove_prefix(1);
    while (!line.empty() && line.front() != '}') {
      const std::string label = take_name(line);
      if (label.empty() || label.find(':') != std::string::npos) return "bad label name";
      if (line.empty() || line.front() != '=') return "no '=' after label " + label;
      line.remove_prefix(1);
      const auto value = take_quoted(line);
      if (!value) return "bad value of label " + label;
      if (!sample.labels.emplace(label, *value).second) return "label " + label + " repeated";
      if (!line.empty() && line.front() == ',') line.remove_prefix(1);
    }
    if (line.empty()) return "no closing '}'";
    line.remove_prefix(1);
  }
  if (line.empty() || line.front() != ' ') return "no value";
  line.remove_prefix(1);
  const auto space = line.find(' ');  // a timestamp may follow
  sample.value_text = std::string(line.substr(0, space));
  const auto value = parse_value(sample.value_text);
  if (!value) return "bad value '" + sample.value_text + "'";
  sample.value = *value;
  page.samples.push_back(std::move(sample));
  return std::nullopt;
}

}  // namespace

metrics_page parse_metrics(std::string_view text) {
  metrics_page page;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const auto end = text.find('\n');
    if (end == std::string_view::npos) {
      page.problems.push_back("line " + std::to_string(number) + ": no final line feed");
      break;
    }
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    if (line.empty()) continue;
    const auto problem = line.front() == '#' ? parse_comment(line, page) : parse_sample(line, page);
    if (problem) page.problems.push_back("line " + std::to_string(number) + ": " + *problem);
  }
  return page;
}

std::vector<const metric_sample*> metrics_page::find(
    std::string_view name, const std::map<std::string, std::string>& match) const {
  std::vector<const metric_sample*> found;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [key, value] : match) {
      const auto it = s.labels.find(key);
      all = all && it != s.labels.end() && it->second == value;
    }
    if (all) found.push_back(&s);
  }
  return found;
}

std::optional<double> metrics_page::value(std::string_view name,
                                          const std::map<std::string, std::string>& match) const {
  const auto found = find(name, match);
  if (found.size() != 1) return std::nullopt;
  return found.front()->value;
}

}  // namespace galaxies::test
