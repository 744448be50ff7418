#include "process/cpu_wait.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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

std::optional<schedstat> parse_schedstat_fields(std::string_view text) noexcept {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::size_t at = 0;
  const auto on_cpu = next_number(text, at);
  const auto waited = next_number(text, at);
  const auto slices = next_number(text, at);
  if (!on_cpu || !waited || !slices || at != text.size()) return std::nullopt;
  // Past 292 years does not fit a duration: not a schedstat.
  constexpr auto most = static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count());
  if (*waited > most || *on_cpu > most) return std::nullopt;
  return schedstat{std::chrono::nanoseconds(static_cast<std::int64_t>(*on_cpu)),
                   std::chrono::nanoseconds(static_cast<std::int64_t>(*waited))};
}

std::optional<std::chrono::nanoseconds> parse_schedstat(std::string_view text) noexcept {
  const auto fields = parse_schedstat_fields(text);
  if (!fields) return std::nullopt;
  return fields->waited;
}

namespace {

// At most `size` - 1 bytes of a small /proc file; nullopt when it cannot be read or is longer.
template <std::size_t size>
std::optional<std::string_view> read_small(const char* path,
                                           std::array<char, size>& text) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const auto n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n <= 0 || static_cast<std::size_t>(n) == text.size()) return std::nullopt;
  return std::string_view(text.data(), static_cast<std::size_t>(n));
}

std::optional<schedstat> read_schedstat_fields(const char* path) noexcept {
  // Three 64-bit numbers fit in 64 bytes; more than that is not a schedstat.
  std::array<char, 96> text{};
  const auto read = read_small(path, text);
  if (!read) return std::nullopt;
  return parse_schedstat_fields(*read);
}

std::optional<std::chrono::nanoseconds> read_schedstat(const char* path) noexcept {
  const auto fields = read_schedstat_fields(path);
  if (!fields) return std::nullopt;
  return fields->waited;
}

// The state letter of /proc/PID/stat ('R' runnable or running, 'S', 'D', ...), the field after
// the name in parentheses, which ends at the line's last ')': the name may hold anything, the
// numbers after it hold no ')'.
std::optional<char> main_thread_state(pid_t pid) noexcept {
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/stat", static_cast<int>(pid));
  std::array<char, 1024> text{};
  const auto read = read_small(path.data(), text);
  if (!read) return std::nullopt;
  const auto close = read->rfind(')');
  if (close == std::string_view::npos || close + 2 >= read->size()) return std::nullopt;
  return (*read)[close + 2];
}

}  // namespace

std::optional<std::chrono::nanoseconds> cpu_wait(pid_t pid) noexcept {
  if (pid <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/schedstat", static_cast<int>(pid));
  return read_schedstat(path.data());
}

std::optional<std::chrono::nanoseconds> cpu_wait_meter::waited(clock::time_point now) noexcept {
  if (pid_ <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/schedstat", static_cast<int>(pid_));
  const auto figures = read_schedstat_fields(path.data());
  if (!figures) return std::nullopt;
  const bool unmoved =
      last_ && last_->on_cpu == figures->on_cpu && last_->waited == figures->waited;
  if (!unmoved) {
    last_ = figures;
    unmoved_since_ = now;
  }
  // Neither run nor a wait ended since we first saw these figures, and runnable: it has been on
  // a run queue all along, a wait the kernel will add to run_delay only when it ends.
  auto total = figures->waited;
  if (unmoved && main_thread_state(pid_) == 'R') total += now - unmoved_since_;
  reported_ = std::max(reported_, total);
  return reported_;
}

std::function<std::optional<std::chrono::nanoseconds>()> cpu_wait_probe(pid_t pid) {
  return [meter = cpu_wait_meter(pid)]() mutable {
    return meter.waited(cpu_wait_meter::clock::now());
  };
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
