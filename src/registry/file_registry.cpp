#include "registry/file_registry.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <limits>
#include <system_error>
#include <unordered_set>
#include <utility>

#include "base/clock_grid.hpp"
#include "base/limits.hpp"
#include "base/text.hpp"

namespace galaxies::registry {

file_registry::file_registry(const asio::any_io_executor& executor, std::string path,
                             std::string cluster, const options& opts)
    : store_backend(executor, std::move(cluster), "file:" + path),
      dir_(std::move(path)),
      ttl_(opts.ttl),
      refresh_(refresh_period(opts)),
      garbage_grace_(
          std::max<std::chrono::milliseconds>(10 * opts.ttl, limits::registry_garbage_grace)),
      refresh_timer_(executor),
      expiry_timer_(executor),
      watch_(executor, dir_, "file:" + dir_) {
  warn_if_refresh_not_below(refresh_, ttl_);
}

file_registry::~file_registry() {
  *alive_ = false;
  // The members' destructors cancel the timers and close the inotify fd; the handlers that then
  // run see alive_ == false and return without touching this object.
}

void file_registry::start(const host_record& self, view_handler on_view, health_handler on_health) {
  if (!begin(self, std::move(on_view), std::move(on_health))) return;
  const auto written = write_self();  // creates the directory; a failure is retried on refresh
  check_directory();
  if (watch_.open([this](directory_watch::changes c) { on_changes(std::move(c)); })) {
    watch_.add();  // needs the directory to exist
  }
  arm_refresh();
  // The first report and view are posted, never delivered from inside start(). The directory is
  // read after the watch exists, so no later write can slip by unseen.
  asio::post(executor_, [this, alive = alive_, written] {
    if (!*alive || state_ != state::running) return;
    after_write(written);
  });
}

void file_registry::remove_stale(const host_id& stale, std::string_view address) {
  if (refuses_own_removal(stale)) return;
  const auto shown = base::printable(address);
  const auto got = file_store::load_row(dir_, stale);
  if (got.error) {
    spdlog::warn("registry {}: could not read stale row {} at {}: {}", describe(),
                 stale.to_string(), shown, got.error.message());
    return;
  }
  // The compare-and-swap: only a row still naming that id, at that address, in our cluster.
  // Otherwise someone re-registered or removed it first.
  if (!got.row || got.row->address != address || got.row->cluster != cluster_) return;
  // The check and the unlink are two steps, so the owner may rewrite its file in between. That is
  // harmless: a host's address never changes during its life, so the row we remove names the same
  // host at the same address as the one we checked, and an owner that is alive re-creates its
  // row on its next refresh (or at once, seeing its file deleted), as the contract says.
  if (const auto ec = file_store::remove_row(dir_, stale)) {
    spdlog::warn("registry {}: could not remove stale row {} at {}: {}", describe(),
                 stale.to_string(), shown, ec.message());
    return;
  }
  spdlog::info("registry {}: removed stale row {} at {}", describe(), stale.to_string(), shown);
  if (state_ != state::running) return;
  // inotify will report the removal as well, but the view must not depend on inotify working.
  files_.erase(stale);
  asio::post(executor_, [this, alive = alive_] {
    if (*alive && state_ == state::running) evaluate();
  });
}

// One listing and one read per row file; nothing is written, not even the directory.
void file_registry::read(read_handler done) {
  auto snap = file_store::load(dir_);
  if (snap.error) {
    spdlog::warn("registry {}: cannot read: {}", describe(),
                 snap.error == std::errc::not_a_directory ? failure_detail(snap.error)
                                                          : snap.error.message());
  }
  for (const auto& row : snap.skipped) skipped_log_.skipped(row.key, row.why);
  auto rows = live_rows(snap.rows, file_store::now_ms());
  bound_read(rows);
  asio::post(executor_, [alive = alive_, done = std::move(done), ec = snap.error,
                         rows = std::move(rows)]() mutable {
    if (*alive && done) done(ec, std::move(rows));
  });
}

void file_registry::stop(std::function<void()> done) {
  if (state_ == state::running) {
    refresh_timer_.cancel();
    expiry_timer_.cancel();
    watch_.close();
    if (const auto ec = file_store::remove_row(dir_, self_.id)) {
      spdlog::warn("registry {}: could not remove our row (it will expire in {} ms): {}",
                   describe(), ttl_.count(), ec.message());
    }
  }
  state_ = state::stopped;
  asio::post(executor_, [alive = alive_, done = std::move(done)] {
    if (*alive && done) done();
  });
}

std::error_code file_registry::write_self() {
  self_.expires_ms = file_store::now_ms() + ttl_.count();
  return file_store::refresh_row(dir_, self_, written_);
}

void file_registry::after_write(std::error_code ec) {
  if (ec) return report_health(ec, failure_detail(ec));  // may stop or destroy this registry
  // Back from an outage: what happened meanwhile is read again, not trusted to have been seen.
  if (reported_healthy() == false) needs_rescan_ = true;
  if (watch_.add()) needs_rescan_ = true;             // a new watch: what came before it was unseen
  if (!watch_.watching()) needs_rescan_ = true;       // no inotify: the view follows each refresh
  if (std::exchange(needs_rescan_, false)) rescan();  // our own row was just written: ignore it
  collect_garbage();
  const auto alive = alive_;
  report_health({}, {});
  if (!*alive || state_ != state::running) return;
  evaluate();
}

void file_registry::on_changes(directory_watch::changes changes) {
  if (state_ != state::running) return;
  // The directory went away (deleted: the store lost its contents): our row is written again at
  // once, which re-creates the directory; the watch follows it.
  bool rewrite = changes.lost;
  if (changes.overflow) {
    needs_rescan_ = true;
  } else {
    for (const auto& name : changes.removed) {
      const auto id = file_store::id_of(name);
      if (!id) continue;
      files_.erase(*id);
      // Our own row removed by someone else (remove_stale, garbage collection): written again.
      if (*id == self_.id) rewrite = true;
    }
    for (const auto& name : changes.written) {
      const auto id = file_store::id_of(name);
      if (id && reload_row(*id)) rewrite = true;
    }
  }
  // A lost directory is read again once it is watched again (after_write, add()).
  if (needs_rescan_ && !changes.lost) {
    needs_rescan_ = false;
    if (rescan()) rewrite = true;
  }
  // Repaired at once rather than at the next refresh, but once per refresh at most: a row that
  // never reads back as written (a bug, a hostile rewriter) must not become a write loop.
  if (rewrite && !std::exchange(repaired_own_row_, true)) return after_write(write_self());
  evaluate();
}

bool file_registry::reload_row(const host_id& id) {
  ++files_read_;
  const auto got = file_store::load_row(dir_, id);
  if (got.error) {
    // Keep what we knew: an unreadable file (EMFILE, EACCES) says nothing about the host.
    spdlog::log(read_error_reported_ ? spdlog::level::debug : spdlog::level::warn,
                "registry {}: cannot read {}: {}", describe(), file_store::file_name(id),
                got.error.message());
    read_error_reported_ = true;
    return false;
  }
  read_error_reported_ = false;
  const bool own = state_ == state::running && id == self_.id;
  if (got.missing()) {
    files_.erase(id);
    return own;
  }
  auto known = files_.find(id);
  if (known == files_.end()) {
    if (files_.size() >= limits::max_registry_files) {
      if (!std::exchange(files_full_reported_, true)) {
        spdlog::warn("registry {}: more than {} row files; ignoring the others", describe(),
                     limits::max_registry_files);
      }
      return false;
    }
    known = files_.emplace(id, entry{}).first;
  }
  auto& e = known->second;
  if (got.skipped) {
    // Said once per file per damage, however many times it is read meanwhile.
    if (e.bad != got.skipped) skipped_log_.skipped(file_store::file_name(id), got.skipped);
    // The row last read stands until it expires: a damaged file says nothing about its host,
    // whose next refresh may well repair it.
    e.bad = got.skipped;
    return own;
  }
  e = {got.row, {}};
  return own && *got.row != self_;
}

bool file_registry::rescan() {
  const auto listed = file_store::list(dir_);
  if (listed.error) {
    // Keep the map: an unreadable directory says nothing about the hosts.
    spdlog::warn("registry {}: cannot list: {}", describe(), listed.error.message());
    return false;
  }
  if (listed.truncated != truncation_reported_) {
    truncation_reported_ = listed.truncated;
    if (listed.truncated) {
      spdlog::warn("registry {}: more than {} entries in the directory; reading the first only",
                   describe(), limits::max_registry_files);
    }
  }
  // A temp file this old is no write in flight (a write takes microseconds) but one abandoned by
  // a crash between open() and rename(). A writer merely stalled that long finds its rename()
  // failing, reports one failed write, and succeeds on its next refresh.
  const auto cutoff = file_store::now_ms() - garbage_grace_.count();
  for (const auto& temp : listed.temps) {
    if (file_store::remove_temp_older_than(dir_, temp, cutoff))
      spdlog::info("registry {}: removed {}, a write abandoned by a crash", describe(),
                   base::printable(temp));
  }
  const std::unordered_set<host_id> present(listed.ids.begin(), listed.ids.end());
  std::erase_if(files_, [&](const auto& known) { return !present.contains(known.first); });
  if (files_.size() < limits::max_registry_files) files_full_reported_ = false;
  bool own_damaged = state_ == state::running && !present.contains(self_.id);
  for (const auto& id : listed.ids) own_damaged = reload_row(id) || own_damaged;
  return own_damaged;
}

void file_registry::collect_garbage() {
  const auto cutoff = file_store::now_ms() - garbage_grace_.count();
  std::vector<host_id> long_dead;
  for (const auto& [id, known] : files_) {
    if (known.row && known.row->expires_ms < cutoff && id != self_.id) long_dead.push_back(id);
  }
  for (const auto& id : long_dead) {
    // Read again just before: an owner back since then has rewritten it. Between this read and
    // the unlink an owner may still come back; that race is harmless: a host stalled that long
    // was already dead in every view, and it re-creates its row on its next refresh (or at once,
    // seeing its file deleted).
    ++files_read_;
    const auto got = file_store::load_row(dir_, id);
    if (!got.row || got.row->expires_ms >= cutoff) {
      reload_row(id);
      continue;
    }
    if (const auto ec = file_store::remove_row(dir_, id)) {
      spdlog::debug("registry {}: could not remove the long-expired row {}: {}", describe(),
                    id.to_string(), ec.message());
      continue;
    }
    files_.erase(id);
    spdlog::info("registry {}: removed the row of host {}, expired {} s ago", describe(),
                 id.to_string(), (file_store::now_ms() - got.row->expires_ms) / 1000);
  }
}

std::string file_registry::failure_detail(std::error_code ec) const {
  if (ec == std::errc::not_a_directory && file_store::exists_as_non_directory(dir_)) {
    return dir_ +
           " exists and is not a directory: this version keeps one file per host in a "
           "directory " +
           dir_ + " (a registry file of an older version? it is left as it is: move it away)";
  }
  return "cannot write " + dir_ + "/" + file_store::file_name(self_.id) + " (through " +
         file_store::temp_file_name(self_.id) + "): " + ec.message();
}

// Anyone who can write the directory can advertise hosts to us; rows are only hints and the
// handshake decides, but say so once.
void file_registry::check_directory() const {
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  const bool foreign_owner = st.st_uid != ::geteuid() && st.st_uid != 0;
  const bool open_to_others =
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0;
  if (foreign_owner || open_to_others) {
    spdlog::warn("registry {}: directory {} is owned by uid {} with mode {:o}; others may edit it",
                 describe(), base::printable(dir_), st.st_uid, st.st_mode & 07777);
  }
}

// On the machine-wide grid of whole refresh periods (base/clock_grid.hpp): the masters of one
// machine refresh together, and each of them reads the others' rows in one wake-up
// (directory_watch gathers on a grid too).
void file_registry::arm_refresh() {
  refresh_timer_.expires_at(base::next_period(std::chrono::steady_clock::now(), refresh_));
  refresh_timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec || state_ != state::running) return;
    on_refresh();
  });
}

void file_registry::on_refresh() {
  arm_refresh();
  repaired_own_row_ = false;
  const auto started = refresh_stats::clock::now();
  const auto ec = write_self();
  refreshes_.note(started, !ec);
  after_write(ec);
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
    evaluate();
  });
}

std::vector<host_record> file_registry::live_rows(const std::vector<host_record>& rows,
                                                  std::int64_t now) const {
  std::vector<host_record> live;
  for (const auto& row : rows) {
    if (row.cluster == cluster_ && row.expires_ms >= now) live.push_back(row);
  }
  return live;
}

void file_registry::evaluate() {
  // While our row cannot be written the view stands, as for a store that does not answer: a row
  // expiring meanwhile may only have missed its refresh for the same reason.
  if (reported_healthy() != true) return;
  std::vector<host_record> rows;
  rows.reserve(files_.size());
  for (const auto& [id, known] : files_)
    if (known.row) rows.push_back(*known.row);
  const auto view = view_of(live_rows(rows, file_store::now_ms()));
  auto earliest = std::numeric_limits<std::int64_t>::max();
  for (const auto& row : view)
    if (row.id != self_.id) earliest = std::min(earliest, row.expires_ms);
  arm_expiry(earliest);
  report_view(view);
}

}  // namespace galaxies::registry
