#include "process/proc_stat.hpp"

#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdio>

#include "process/proc_file.hpp"

namespace galaxies::process {
namespace {

template <typename Number>
bool parse_number(std::string_view field, Number& out) noexcept {
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out);
  return ec == std::errc{} && end == field.data() + field.size();
}

}  // namespace

std::optional<proc_stat> parse_proc_stat(std::string_view text) noexcept {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  text.remove_prefix(close + 1);
  proc_stat out;
  int field = 2;  // the name's
  while (field < 22) {
    if (text.empty() || text.front() != ' ') return std::nullopt;
    text.remove_prefix(1);
    const auto end = text.find(' ');
    const auto value = text.substr(0, end);
    text.remove_prefix(value.size());
    bool ok = true;
    switch (++field) {
      case 3:
        ok = value.size() == 1 &&
             ((value[0] >= 'A' && value[0] <= 'Z') || (value[0] >= 'a' && value[0] <= 'z'));
        out.state = value.empty() ? 0 : value[0];
        break;
      case 4:
        ok = parse_number(value, out.parent);
        break;
      case 10:
        ok = parse_number(value, out.minor_faults);
        break;
      case 14:
        ok = parse_number(value, out.user_ticks);
        break;
      case 15:
        ok = parse_number(value, out.system_ticks);
        break;
      case 16:
        ok = parse_number(value, out.reaped_user_ticks);
        break;
      case 17:
        ok = parse_number(value, out.reaped_system_ticks);
        break;
      case 22:
        ok = parse_number(value, out.started_ticks);
        break;
      default:
        ok = !value.empty();
        break;
    }
    if (!ok) return std::nullopt;
  }
  return out;
}

namespace {

std::optional<proc_stat> read_stat_file(const char* path) noexcept {
  // 52 fields of at most 20 digits and a name of at most 64 bytes.
  std::array<char, 1280> text{};
  const auto read = read_proc_file(path, text);
  if (!read) return std::nullopt;
  return parse_proc_stat(*read);
}

}  // namespace

std::optional<proc_stat> read_proc_stat(pid_t pid) noexcept {
  if (pid <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/stat", static_cast<int>(pid));
  return read_stat_file(path.data());
}

std::optional<proc_stat> read_proc_stat(pid_t pid, pid_t tid) noexcept {
  if (pid <= 0 || tid <= 0) return std::nullopt;
  std::array<char, 64> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/task/%d/stat", static_cast<int>(pid),
                static_cast<int>(tid));
  return read_stat_file(path.data());
}

double clock_ticks_per_second() noexcept {
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return ticks > 0 ? static_cast<double>(ticks) : 100.0;
}

}  // namespace galaxies::process
