#include "process/cpu_wait.hpp"

#include <dirent.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>

#include "process/proc_file.hpp"
#include "process/proc_stat.hpp"

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

// /proc/PID/task/TID/schedstat: the same figures as /proc/PID/schedstat for the main thread.
std::optional<schedstat> read_schedstat(pid_t pid, pid_t tid) noexcept {
  if (pid <= 0 || tid <= 0) return std::nullopt;
  std::array<char, 64> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/task/%d/schedstat", static_cast<int>(pid),
                static_cast<int>(tid));
  // Three 64-bit numbers fit in 64 bytes; more than that is not a schedstat.
  std::array<char, 96> text{};
  const auto read = read_proc_file(path.data(), text);
  if (!read) return std::nullopt;
  return parse_schedstat_fields(*read);
}

}  // namespace

std::optional<std::chrono::nanoseconds> cpu_wait(pid_t pid) noexcept {
  const auto figures = read_schedstat(pid, pid);
  if (!figures) return std::nullopt;
  return figures->waited;
}

std::optional<std::chrono::nanoseconds> cpu_wait_meter::waited(clock::time_point now) noexcept {
  const auto figures = read_schedstat(pid_, tid_);
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
  if (unmoved) {
    const auto stat = read_proc_stat(pid_, tid_);
    if (stat && stat->state == 'R') total += now - unmoved_since_;
  }
  reported_ = std::max(reported_, total);
  return reported_;
}

std::function<std::optional<std::chrono::nanoseconds>()> cpu_wait_probe(pid_t pid) {
  return [meter = cpu_wait_meter(pid)]() mutable {
    return meter.waited(cpu_wait_meter::clock::now());
  };
}

std::optional<std::chrono::nanoseconds> threads_cpu_wait_meter::waited(clock::time_point now) {
  if (pid_ <= 0) return std::nullopt;
  std::array<char, 40> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/task", static_cast<int>(pid_));
  DIR* tasks = ::opendir(path.data());
  if (tasks == nullptr) return std::nullopt;
  bool any = false;
  for (auto& t : threads_) t.listed = false;
  while (const dirent* entry = ::readdir(tasks)) {
    pid_t tid = 0;
    const std::string_view name(entry->d_name);
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (ec != std::errc{} || end != name.data() + name.size() || tid <= 0) continue;
    auto known = std::find_if(threads_.begin(), threads_.end(),
                              [tid](const thread& t) { return t.meter.tid() == tid; });
    if (known == threads_.end())
      known = threads_.insert(threads_.end(), thread{cpu_wait_meter(pid_, tid)});
    known->listed = true;
    if (const auto waited = known->meter.waited(now)) {
      known->waited = *waited;
      any = true;
    }
  }
  ::closedir(tasks);
  if (!any) return std::nullopt;
  // A thread that ended keeps what it was last seen to wait; its meter goes, so that threads
  // coming and going cost nothing here.
  std::chrono::nanoseconds total = ended_;
  for (auto t = threads_.begin(); t != threads_.end();) {
    total += t->waited;
    if (t->listed) {
      ++t;
    } else {
      ended_ += t->waited;
      t = threads_.erase(t);
    }
  }
  // A new thread that took an ended one's id before a listing saw it end: never go back.
  reported_ = std::max(reported_, total);
  return reported_;
}

}  // namespace galaxies::process
