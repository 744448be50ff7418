#include "registry/file_registry.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>

#include "base/text.hpp"
#include "registry/file_store.hpp"

namespace galaxies::registry {
namespace {

constexpr std::uint32_t watch_mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_CREATE;

std::chrono::milliseconds refresh_period(const options& opts) {
  if (opts.refresh.count() > 0) return opts.refresh;
  return std::max(opts.ttl / 3, std::chrono::milliseconds(1));
}

}  // namespace

file_registry::file_registry(const asio::any_io_executor& executor, std::string path,
                             std::string cluster, const options& opts)
    : executor_(executor),
      path_(std::move(path)),
      cluster_(std::move(cluster)),
      ttl_(opts.ttl),
      refresh_(refresh_period(opts)),
      request_timeout_(opts.request_timeout),
      skipped_log_("file:" + path_),
      refresh_timer_(executor),
      expiry_timer_(executor),
      watch_(executor),
      writer_(executor, path_, opts.request_timeout) {
  const auto slash = path_.rfind('/');
  dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  file_name_ = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  if (refresh_ >= ttl_) {
    spdlog::warn("registry {}: refresh {} ms is not below ttl {} ms; rows will flicker", describe(),
                 refresh_.count(), ttl_.count());
  }
}

file_registry::~file_registry() {
  *alive_ = false;
  // The members' destructors cancel the timers and close the inotify fd; the handlers that then
  // run see alive_ == false and return without touching this object.
}

std::string file_registry::describe() const {
  return "file:" + path_;
}

void file_registry::start(const host_record& self, view_handler on_view, health_handler on_health) {
  if (state_ != state::idle) {
    spdlog::error("registry {}: start() called twice or after stop(); ignored", describe());
    return;
  }
  state_ = state::running;
  self_ = own_row(self, cluster_, describe());
  on_view_ = std::move(on_view);
  on_health_ = std::move(on_health);

  write_self();  // creates the directory, unless the lock is busy; a failure is retried on refresh
  check_directory();
  open_watch();  // needs the directory to exist
  arm_refresh();
  // The first view is posted, never delivered from inside start(). It reads the file after the
  // watch exists, so no later write can slip by unseen.
  asio::post(executor_, [this, alive = alive_] {
    if (!*alive || state_ != state::running) return;
    reload();
  });
}

void file_registry::remove_stale(const host_id& stale, std::string_view address) {
  if (state_ == state::running && stale == self_.id) {
    spdlog::warn("registry {}: asked to remove our own row as stale; ignored", describe());
    return;
  }
  auto removed = std::make_shared<bool>(false);
  writer_.submit(
      [this, removed, stale, address = std::string(address)](std::vector<host_record>& rows) {
        *removed = std::erase_if(rows, [&](const host_record& r) {
                     return r.id == stale && r.address == address && r.cluster == cluster_;
                   }) > 0;
        return *removed;
      },
      [this, removed, stale, address = base::printable(address)](std::error_code ec,
                                                                 const file_store::snapshot&) {
        if (ec) {
          spdlog::warn("registry {}: could not remove stale row {} at {}: {}", describe(),
                       stale.to_string(), address, ec.message());
          return;
        }
        // Not removed: someone re-registered or removed it first; that is the compare-and-swap.
        if (!*removed) return;
        spdlog::info("registry {}: removed stale row {} at {}", describe(), stale.to_string(),
                     address);
        // inotify will report the write as well, but the view must not depend on inotify working.
        if (state_ == state::running) reload();
      });
}

// Takes no lock, like every reader: rename() makes each version of the file whole.
void file_registry::read(read_handler done) {
  auto snap = file_store::load(path_);
  if (snap.corrupt) spdlog::warn("registry {}: file is corrupt; read as empty", describe());
  log_skipped(snap.skipped);
  auto rows = live_rows(snap.rows, file_store::now_ms());
  view_bound{}.apply(rows, host_id{}, describe());
  asio::post(executor_, [alive = alive_, done = std::move(done), ec = snap.error,
                         rows = std::move(rows)]() mutable {
    if (*alive && done) done(ec, std::move(rows));
  });
}

void file_registry::stop(std::function<void()> done) {
  if (state_ == state::running) {
    refresh_timer_.cancel();
    expiry_timer_.cancel();
    std::error_code ignored;
    watch_.close(ignored);
    watch_wd_ = -1;
    state_ = state::stopped;
    // Behind any write still queued, so a refresh waiting for the lock cannot bring the row back.
    writer_.submit(
        [id = self_.id](std::vector<host_record>& rows) {
          return std::erase_if(rows, [&](const host_record& r) { return r.id == id; }) > 0;
        },
        [this, done = std::move(done)](std::error_code ec, const file_store::snapshot&) {
          if (ec) {
            spdlog::warn("registry {}: could not remove our row (it will expire in {} ms): {}",
                         describe(), ttl_.count(), ec.message());
          }
          if (done) done();
        });
    return;
  }
  state_ = state::stopped;
  asio::post(executor_, [alive = alive_, done = std::move(done)] {
    if (*alive && done) done();
  });
}

void file_registry::write_self() {
  if (self_write_queued_) return;
  self_write_queued_ = true;
  writer_.submit(
      [this](std::vector<host_record>& rows) {
        // The expiry counts from the write, however long the lock kept us waiting.
        self_.expires_ms = file_store::now_ms() + ttl_.count();
        // Replacing by id also re-creates the row if someone removed it.
        std::erase_if(rows, [&](const host_record& r) { return r.id == self_.id; });
        rows.push_back(self_);
        return true;
      },
      [this](std::error_code ec, const file_store::snapshot& stored) {
        on_self_written(ec, stored);
      });
}

void file_registry::on_self_written(std::error_code ec, const file_store::snapshot& stored) {
  self_write_queued_ = false;
  if (state_ != state::running) return;
  if (ec) {
    // Loud once per outage; its retries on every refresh are detail.
    spdlog::log(reported_health_ == ec ? spdlog::level::debug : spdlog::level::warn,
                "registry {}: could not write our row: {}", describe(),
                ec == std::errc::timed_out ? "the lock is held by another process" : ec.message());
    report_health(ec);  // may stop or destroy this registry
    return;
  }
  log_skipped(stored.skipped);
  const auto alive = alive_;
  report_health(ec);
  if (!*alive || state_ != state::running) return;
  // A change seen while we waited may be newer than what our write read: read the file again.
  if (std::exchange(reload_deferred_, false)) return reload();
  // Our own write carries every row, so this doubles as a poll when inotify is unavailable.
  evaluate(stored.rows);
}

void file_registry::report_health(std::error_code ec) {
  if (reported_health_ == ec) return;
  reported_health_ = ec;
  if (!on_health_) return;
  std::string detail;
  if (ec == std::errc::timed_out) {
    detail = "cannot lock " + path_ + ".lock within " + std::to_string(request_timeout_.count()) +
             " ms: another process holds it";
  } else if (ec) {
    detail = "cannot write " + path_ + ": " + ec.message();
  }
  auto on_health = on_health_;  // a copy: the handler may stop or destroy this registry
  on_health(ec, detail);
}

void file_registry::log_skipped(const std::vector<file_store::skipped_row>& skipped) {
  for (const auto& row : skipped) skipped_log_.skipped(row.key, row.why);
}

// Anyone who can write the directory can advertise hosts to us; rows are only hints and the
// handshake decides, but say so once.
void file_registry::check_directory() const {
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0) return;
  const bool foreign_owner = st.st_uid != ::geteuid() && st.st_uid != 0;
  const bool open_to_others =
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0;
  if (foreign_owner || open_to_others) {
    spdlog::warn("registry {}: directory {} is owned by uid {} with mode {:o}; others may edit it",
                 describe(), dir_, st.st_uid, st.st_mode & 07777);
  }
}

void file_registry::open_watch() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    spdlog::warn("registry {}: inotify unavailable ({}); changes show up on each refresh only",
                 describe(), std::strerror(errno));
    return;
  }
  std::error_code ec;
  watch_.assign(fd, ec);
  if (ec) {
    ::close(fd);
    spdlog::warn("registry {}: cannot watch: {}", describe(), ec.message());
    return;
  }
  add_watch();
  arm_watch();
}

void file_registry::add_watch() {
  if (!watch_.is_open()) return;
  // The directory, not the file: the file is replaced by rename(), a new inode every write.
  watch_wd_ = ::inotify_add_watch(watch_.native_handle(), dir_.c_str(), watch_mask);
  if (watch_wd_ < 0) {
    spdlog::warn("registry {}: cannot watch {}: {}; retrying on refresh", describe(), dir_,
                 std::strerror(errno));
  }
}

void file_registry::arm_watch() {
  watch_.async_wait(asio::posix::stream_descriptor::wait_read,
                    [this, alive = alive_](std::error_code ec) {
                      if (!*alive || ec || state_ != state::running) return;
                      on_watch_ready();
                    });
}

void file_registry::on_watch_ready() {
  // Drain every queued event, then re-read once: a rename burst becomes one reload.
  bool relevant = false;
  alignas(inotify_event) char buf[4096];
  while (true) {
    const ssize_t n = ::read(watch_.native_handle(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      // Re-arming a broken fd would spin: fall back to seeing changes on each refresh.
      spdlog::warn("registry {}: inotify read failed: {}; watching stopped", describe(),
                   std::strerror(errno));
      std::error_code ignored;
      watch_.close(ignored);
      watch_wd_ = -1;
      reload();
      return;
    }
    if (n <= 0) break;  // drained
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) relevant = true;
      if ((ev->mask & IN_IGNORED) && ev->wd == watch_wd_) {
        watch_wd_ = -1;  // the directory went away; the next refresh re-creates and re-watches it
        relevant = true;
      }
      if (ev->len > 0 && std::string_view(ev->name) == file_name_) relevant = true;
    }
  }
  arm_watch();
  if (relevant) reload();
}

void file_registry::arm_refresh() {
  refresh_timer_.expires_after(refresh_);
  refresh_timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec || state_ != state::running) return;
    on_refresh();
  });
}

void file_registry::on_refresh() {
  arm_refresh();
  if (watch_wd_ < 0) add_watch();
  // Still waiting for the lock since the last refresh: that write takes the expiry of its moment.
  if (self_write_queued_) return;
  write_self();
}

void file_registry::arm_expiry(std::int64_t earliest_ms) {
  if (earliest_ms == std::numeric_limits<std::int64_t>::max()) {
    expiry_timer_.cancel();
    return;
  }
  // A row is live while expires_ms >= now, so it is dead one millisecond after. The cap keeps a
  // hand-edited far-future expiry from overflowing the timer's nanoseconds.
  constexpr std::int64_t max_wait_ms = 24 * 3600 * 1000;
  const auto wait =
      std::clamp<std::int64_t>(earliest_ms - file_store::now_ms(), -1, max_wait_ms - 1) + 1;
  expiry_timer_.expires_after(std::chrono::milliseconds(wait));
  expiry_timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec || state_ != state::running) return;
    reload();
  });
}

void file_registry::reload() {
  const auto snap = file_store::load(path_);
  if (snap.error) {
    // Keep the last view: an unreadable file (EMFILE, EACCES) says nothing about the hosts.
    spdlog::warn("registry {}: cannot read: {}", describe(), snap.error.message());
    return;
  }
  if (snap.corrupt && !corrupt_reported_) {
    spdlog::warn("registry {}: file is corrupt; rewriting our row", describe());
  }
  corrupt_reported_ = snap.corrupt;
  if (snap.corrupt) {
    // Repair now rather than at the next refresh: every watcher re-adds its own row, so the other
    // hosts are back within one round of inotify events. The view follows the repaired file; a
    // corrupt one says nothing about the hosts.
    return write_self();
  }
  // While our own row waits for the lock or could not be written, the view stands, as for a
  // store that does not answer: a row expiring meanwhile may only have missed its refresh behind
  // the same lock. The next write that succeeds reads the file again.
  if (self_write_queued_ || (reported_health_ && *reported_health_)) {
    reload_deferred_ = true;
    return;
  }
  log_skipped(snap.skipped);
  evaluate(snap.rows);
}

std::vector<host_record> file_registry::live_rows(const std::vector<host_record>& rows,
                                                  std::int64_t now) const {
  std::vector<host_record> live;
  for (const auto& row : rows) {
    if (row.cluster == cluster_ && row.expires_ms >= now) live.push_back(row);
  }
  std::sort(live.begin(), live.end(),
            [](const host_record& a, const host_record& b) { return a.id < b.id; });
  return live;
}

void file_registry::evaluate(const std::vector<host_record>& rows) {
  const auto now = file_store::now_ms();
  auto view = live_rows(rows, now);
  // We are live while running even when our row is missing (removed, file corrupt): report
  // ourselves as we last wrote, so a repair by the next refresh is no change.
  std::erase_if(view, [&](const host_record& r) { return r.id == self_.id; });
  view.insert(
      std::upper_bound(view.begin(), view.end(), self_,
                       [](const host_record& a, const host_record& b) { return a.id < b.id; }),
      self_);
  bound_.apply(view, self_.id, describe());
  auto earliest = std::numeric_limits<std::int64_t>::max();
  for (const auto& row : view)
    if (row.id != self_.id) earliest = std::min(earliest, row.expires_ms);
  arm_expiry(earliest);

  if (!last_view_.changed(view) || !on_view_) return;
  auto on_view = on_view_;  // a copy: the handler may stop or destroy this registry
  on_view(view);
}

}  // namespace galaxies::registry
