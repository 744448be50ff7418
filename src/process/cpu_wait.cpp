#include "process/cpu_wait.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>

namespace galaxies::process {
namespace {

// The next field of a space-separated line of decimal numbers, advancing `at`.
std::optional<std::uint64_t> next_number(std::string_view text, std::size_t& at) noexcept {
  while (at < text.size() && text[at] == ' ') ++at;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data() + at, text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data() + at) return std::nullopt;
  at = static_cast<std::size_t>(end - text.data());
  return value;
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_schedstat(std::string_view text) noexcept {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::size_t at = 0;
  const auto on_cpu = next_number(text, at);
  const auto waited = next_number(text, at);
  const auto slices = next_number(text, at);
  if (!on_cpu || !waited || !slices || at != text.size()) return std::nullopt;
  // A run queue wait past 292 years does not fit a duration: not a schedstat.
  if (*waited > static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count()))
    return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(*waited));
}

std::optional<std::chrono::nanoseconds> cpu_wait(pid_t pid) noexcept {
  if (pid <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/schedstat", static_cast<int>(pid));
  const int fd = ::open(path.data(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // Three 64-bit numbers fit in 64 bytes; more than that is not a schedstat.
  std::array<char, 96> text{};
  const auto n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n <= 0 || static_cast<std::size_t>(n) == text.size()) return std::nullopt;
  return parse_schedstat(std::string_view(text.data(), static_cast<std::size_t>(n)));
}

}  // namespace galaxies::process
