// The embedded registry backend ("file:PATH"): a directory shared by every master on this
// machine, no server. Each host owns one file in it, PATH/UUID.json (format in file_store.hpp),
// and rewrites it on a timer; there is no lock, because no file has two writers. The directory
// is watched with inotify on the executor (no extra thread); each event names one file and only
// that file is read again (or, deleted, dropped), into an in-memory map id -> row, so a refresh by
// one host costs each other host one small read. The whole directory is read (a bounded scan) only
// at start, after lost events (IN_Q_OVERFLOW), when the watch had to be re-created, when the store
// is back after an outage, and on every refresh if inotify is unavailable. An expiry timer catches
// rows that die without any change to their file.
//
// Health is the outcome of writing our own row: a write that fails (EACCES, ENOSPC, ENOTDIR: a
// PATH that is not a directory, e.g. a registry file of an older version) makes the store
// unhealthy with a human-readable detail, and the last view stands until a write succeeds again.
// Garbage: a row expired for more than max(10 x ttl, limits::registry_garbage_grace) is removed
// by whichever host notices (on its refresh), so crashed hosts' files do not pile up; so is a temp
// file older than that, abandoned by a crash in the middle of a write (seen on a full read).
//
// Threading: like every registry, it lives on one executor; call every member there. Every read
// and write is synchronous and touches one small file (or lists the directory once), but a
// rename() or unlink() waits for the directory's lock, held by whichever process of the machine
// renames there: host::make_registry runs it on a thread of its own (offloaded_registry.hpp). No
// callback runs after destruction, not even a pending read() or stop() completion. Destroying it
// without stop() leaves the row to expire, like a crash.
#pragma once

#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "registry/directory_watch.hpp"
#include "registry/file_store.hpp"
#include "registry/store_backend.hpp"

namespace galaxies::registry {

class file_registry final : public store_backend {
 public:
  // `path` names the directory; `cluster` is already validated.
  file_registry(const asio::any_io_executor& executor, std::string path, std::string cluster,
                const options& opts);
  ~file_registry() override;

  file_registry(const file_registry&) = delete;
  file_registry& operator=(const file_registry&) = delete;

  void start(const host_record& self, view_handler on_view, health_handler on_health) override;
  void remove_stale(const host_id& stale, std::string_view address) override;
  void read(read_handler done) override;
  void stop(std::function<void()> done) override;

  // Row files read by the watcher since construction: tests prove with it that one changed file
  // costs each watcher one read, not a scan of the directory.
  std::uint64_t row_files_read() const noexcept { return files_read_; }

 private:
  // What we last read from one row file.
  struct entry {
    std::optional<host_record> row;  // valid
    std::error_code bad;             // skipped, and why (logged when it starts being so)
  };

  void check_directory() const;
  // Writes our row with a fresh expiry.
  std::error_code write_self();
  // Reports the outcome of a write of our row, then (healthy) reads what must be read again,
  // collects garbage and reports the view. Reporting comes last: its handlers may stop or
  // destroy this registry.
  void after_write(std::error_code ec);
  void on_changes(directory_watch::changes changes);
  // Reads one row file into the map. True when it is our own and not as we wrote it (removed,
  // damaged, replaced): the caller rewrites it.
  bool reload_row(const host_id& id);
  // Reads every row file again, replacing the map. True as reload_row, for our own file.
  bool rescan();
  void collect_garbage();
  void arm_refresh();
  void on_refresh();
  void arm_expiry(std::int64_t earliest_ms);
  std::string failure_detail(std::error_code ec) const;
  // Recomputes the view from the map; reports it if the keys changed. Reporting is the last thing
  // it does, so on_view may call stop() or even destroy this object.
  void evaluate();
  std::vector<host_record> live_rows(const std::vector<host_record>& rows, std::int64_t now) const;

  std::string dir_;
  std::chrono::milliseconds ttl_;
  std::chrono::milliseconds refresh_;
  std::chrono::milliseconds garbage_grace_;

  std::unordered_map<host_id, entry> files_;  // at most limits::max_registry_files
  file_store::written_row written_;           // what write_self() wrote last
  bool files_full_reported_ = false;
  bool truncation_reported_ = false;
  bool read_error_reported_ = false;
  bool needs_rescan_ = true;       // the next successful write is followed by a full read
  bool repaired_own_row_ = false;  // since the last refresh: our row is repaired at once only once
  std::uint64_t files_read_ = 0;

  asio::steady_timer refresh_timer_;
  asio::steady_timer expiry_timer_;
  directory_watch watch_;
};

}  // namespace galaxies::registry
