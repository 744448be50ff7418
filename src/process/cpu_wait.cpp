#include "process/cpu_wait.hpp"

#include <dirent.h>
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

namespace {

std::optional<std::chrono::nanoseconds> read_schedstat(const char* path) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // Three 64-bit numbers fit in 64 bytes; more than that is not a schedstat.
  std::array<char, 96> text{};
  const auto n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n <= 0 || static_cast<std::size_t>(n) == text.size()) return std::nullopt;
  return parse_schedstat(std::string_view(text.data(), static_cast<std::size_t>(n)));
}

}  // namespace

std::optional<std::chrono::nanoseconds> cpu_wait(pid_t pid) noexcept {
  if (pid <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/schedstat", static_cast<int>(pid));
  return read_schedstat(path.data());
}

std::optional<std::chrono::nanoseconds> threads_cpu_wait(pid_t pid) noexcept {
  if (pid <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/task", static_cast<int>(pid));
  DIR* tasks = ::opendir(path.data());
  if (tasks == nullptr) return std::nullopt;
  std::optional<std::chrono::nanoseconds> total;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::array<char, 64> file{};
    std::snprintf(file.data(), file.size(), "/proc/%d/task/%.20s/schedstat", static_cast<int>(pid),
                  entry->d_name);
    // A thread that ended since the listing is no longer waiting for anything.
    if (const auto waited = read_schedstat(file.data()))
      total = total.value_or(std::chrono::nanoseconds::zero()) + *waited;
  }
  ::closedir(tasks);
  return total;
}

}  // namespace galaxies::process
