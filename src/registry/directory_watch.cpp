#include "registry/directory_watch.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "base/clock_grid.hpp"
#include "base/limits.hpp"
#include "base/text.hpp"

namespace galaxies::registry {
namespace {

// IN_ONLYDIR: a path that is a file (a registry of an older format) is refused, not watched.
constexpr std::uint32_t watch_mask = IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE |
                                     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

}  // namespace

directory_watch::directory_watch(const asio::any_io_executor& executor, std::string dir,
                                 std::string where)
    : dir_(std::move(dir)), where_(std::move(where)), fd_(executor), settle_(executor) {}

directory_watch::~directory_watch() {
  *alive_ = false;
}

bool directory_watch::open(handler on_changes) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    spdlog::warn("registry {}: inotify unavailable ({}); changes show up on each refresh only",
                 where_, std::strerror(errno));
    return false;
  }
  std::error_code ec;
  fd_.assign(fd, ec);
  if (ec) {
    ::close(fd);
    spdlog::warn("registry {}: cannot watch: {}; changes show up on each refresh only", where_,
                 ec.message());
    return false;
  }
  on_changes_ = std::move(on_changes);
  arm();
  return true;
}

bool directory_watch::add() {
  if (!fd_.is_open() || wd_ >= 0) return false;
  wd_ = ::inotify_add_watch(fd_.native_handle(), dir_.c_str(), watch_mask);
  if (wd_ < 0) {
    // Retried on every refresh; said once per outage.
    spdlog::log(add_failure_logged_ ? spdlog::level::debug : spdlog::level::warn,
                "registry {}: cannot watch {}: {}; retrying on refresh", where_,
                base::printable(dir_), std::strerror(errno));
    add_failure_logged_ = true;
    return false;
  }
  add_failure_logged_ = false;
  return true;
}

void directory_watch::close() {
  std::error_code ignored;
  fd_.close(ignored);
  settle_.cancel();
  wd_ = -1;
}

void directory_watch::arm() {
  fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                 [this, alive = alive_](std::error_code ec) {
                   if (!*alive || ec) return;
                   on_readable();
                 });
}

void directory_watch::on_readable() {
  settle_.expires_at(base::on_grid(std::chrono::steady_clock::now(), limits::registry_watch_grain));
  settle_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec || !fd_.is_open()) return;
    read_batch();
  });
}

void directory_watch::read_batch() {
  changes got;
  if (drain(got)) {
    arm();
  } else {
    // Re-arming a broken fd would spin: the owner falls back to polling, and reads everything.
    spdlog::warn("registry {}: inotify read failed: {}; watching stopped", where_,
                 std::strerror(errno));
    close();
    got.overflow = true;
  }
  // Only temp files came and went (every write makes three such events): nothing to report.
  if (got.written.empty() && got.removed.empty() && !got.overflow && !got.lost) return;
  auto on_changes = on_changes_;  // a copy: the handler may destroy this object
  on_changes(std::move(got));
}

bool directory_watch::drain(changes& out) {
  std::unordered_map<std::string, bool> gone;  // by name: whether its last event removed it
  alignas(inotify_event) char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd_.native_handle(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    if (n <= 0) break;  // drained
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) out.overflow = true;
      // Events of a watch already replaced or removed say nothing about the directory now.
      if (ev->wd != wd_ || wd_ < 0) continue;
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        // Moved away, it would still be watched wherever it went: let go of it, and watch
        // whatever holds its path next (add()).
        if (!(ev->mask & IN_IGNORED)) ::inotify_rm_watch(fd_.native_handle(), wd_);
        wd_ = -1;
        out.lost = true;
        continue;
      }
      if (ev->len == 0 || out.overflow) continue;
      const std::string_view name(ev->name);  // NUL-padded to ev->len
      if (name.empty() || name.front() == '.') continue;
      // Bounded: a flood of names costs one full read of the directory instead.
      const bool removed = (ev->mask & (IN_DELETE | IN_MOVED_FROM)) != 0;
      if (const auto known = gone.find(std::string(name)); known != gone.end()) {
        known->second = removed;
        continue;
      }
      if (gone.size() >= limits::max_registry_files) {
        out.overflow = true;
        continue;
      }
      gone.emplace(name, removed);
    }
  }
  if (out.overflow) return true;
  for (auto& [name, removed] : gone) (removed ? out.removed : out.written).push_back(name);
  return true;
}

}  // namespace galaxies::registry
