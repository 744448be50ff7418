// The on-disk side of the file registry: one file per host in a directory, each replaced whole.
// Synchronous and free of Asio so that the watcher (file_registry) stays about timing only.
//
// Layout (format 2). The URL file:PATH names a directory. Host H's row lives in PATH/H.json, H
// being its UUID in canonical lower-case form, as one JSON object:
//   {"format":2,"id":"H","cluster":"alpha","address":"127.0.0.1:4100","unix":"/run/x.sock",
//    "hostname":"box","pid":4242,"expires_ms":1767225600000}
// (row_json.hpp; keys other than these are ignored, for later versions). Format 1 was a single
// file PATH holding every host under a lock file; a PATH that is not a directory is refused with
// an error saying so, never removed.
//
// Only H writes PATH/H.json: to PATH/.H.json.tmp.PID (mode 0600, O_EXCL | O_NOFOLLOW, so a
// planted link is not followed), then rename() over PATH/H.json, so any reader opening the file
// sees one complete version. Its refreshes, which change only the expiry, rewrite that file in
// place (refresh_row). Each file has one writer, so there is no lock of ours (the kernel's
// lock on the directory, taken by rename() and unlink(), still serialises the writers). Readers
// ignore every name that is not UUID.json (the dotfiles are writes in flight) and skip, unread, a
// row file larger than limits::max_registry_row_size. A row file is removed by its owner when it
// stops, by another host's compare-and-swap of a stale row, and by any host once the row has been
// expired for the garbage grace (file_registry.hpp); a temp file older than that grace was
// abandoned by a crash and is removed too.
// Every file and directory this creates is private to the user (0600, 0700).
// Threading: free functions without shared state; safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "base/limits.hpp"
#include "registry/registry.hpp"

namespace galaxies::registry::file_store {

inline constexpr int format_version = 2;
// Far above any real row (< 1 KiB); the same bound as one row's value in etcd or Redis.
inline constexpr std::size_t max_row_file_size = limits::max_registry_row_size;

// Wall clock in milliseconds since the epoch: rows are compared across processes.
std::int64_t now_ms();

// "UUID.json", and back: the id of a row file's name, or nothing for any other name (a temp
// file, a UUID not in canonical form, anything else found in the directory).
std::string file_name(const host_id& id);
std::optional<host_id> id_of(std::string_view file_name);
// ".UUID.json.tmp.PID": where this process writes the next version of UUID.json.
std::string temp_file_name(const host_id& id);

// One row file's text, and its parse: an empty code, or the row_error saying why the text is not
// a usable row (`row` is then unspecified).
std::string serialize(const host_record& row);
std::error_code parse(std::string_view text, host_record& row);

// What reading one row file found.
struct row_file {
  std::optional<host_record> row;  // a valid row, filed under its own id
  std::error_code skipped;         // the file is there but unusable: why (a row_error)
  std::error_code error;           // the file could not be read (other than "no such file")
  // None of the three: there is no such file.
  bool missing() const { return !row && !skipped && !error; }
};

// Reads DIR/ID.json once. Never hangs on a FIFO planted there (opened O_NONBLOCK, then refused as
// not a regular file) and never reads more than max_row_file_size + 1 bytes.
row_file load_row(const std::string& dir, const host_id& id);

// The row files of DIR, by id, in directory order: at most `max_entries` directory entries are
// examined (`truncated` says there were more). A missing DIR lists nothing and is no error; a
// DIR that is not a directory is std::errc::not_a_directory.
struct listing {
  std::vector<host_id> ids;
  std::vector<std::string> temps;  // names of temp files (temp_file_name() of any host and pid)
  bool truncated = false;
  std::error_code error;
};
listing list(const std::string& dir, std::size_t max_entries = limits::max_registry_files);

// A row file that failed its checks: its file name, and why.
struct skipped_row {
  std::string key;
  std::error_code why;
};

// Every row file of DIR read once (list() then load_row()): for one-shot reads (the CLI, tests).
struct snapshot {
  std::vector<host_record> rows;     // every valid row, all clusters, expired ones included
  std::vector<skipped_row> skipped;  // files that failed their checks
  std::error_code error;             // the directory could not be listed; rows are then empty
  bool truncated = false;            // more entries than list() examines
};
snapshot load(const std::string& dir);

// Writes `row` as DIR/ID.json through its temp file and rename(); creates DIR if missing. On
// error the previous version of the file, if any, is left as it was.
std::error_code write_row(const std::string& dir, const host_record& row);

// What its owner wrote last to a row file, and which file that was.
struct written_row {
  std::string text;
  std::int64_t expires_ms = 0;
  dev_t device = 0;
  ino_t inode = 0;
};

// A refresh of the row `last` was written for: rewritten in place (open, pwrite, close) when only
// the expiry changed and the file is the one `last` names, else as write_row; `last` then
// describes what was written. Why: write_row takes the directory's lock twice (the temp file's
// creation, the rename), and masters queued seconds for it, their registry threads in state D,
// with dozens of hosts starting at once on a few cores (bench/RESULTS.md, 2026-12-05); an open of
// an existing name takes none. Safe for readers: the text keeps its length and differs only in
// the expiry's digits, so a read that meets the write mid-way sees every other field whole and an
// expiry mixing the two, and the write's close (IN_CLOSE_WRITE) makes every watcher read again.
std::error_code refresh_row(const std::string& dir, const host_record& row, written_row& last);

// Unlinks DIR/ID.json; a file already gone is no error.
std::error_code remove_row(const std::string& dir, const host_id& id);

// Unlinks the temp file DIR/NAME if it was last modified before `cutoff_ms` (wall clock): left
// by a writer that died between its open() and its rename(). True when it removed it.
bool remove_temp_older_than(const std::string& dir, const std::string& name,
                            std::int64_t cutoff_ms);

// mkdir -p with mode 0700 for every directory it creates; std::errc::not_a_directory when `dir`
// or one of its parents exists and is not a directory.
std::error_code make_directories(const std::string& dir);

// True when `path` exists and is not a directory (following links): a registry file of format 1,
// or anything else that is not ours to replace.
bool exists_as_non_directory(const std::string& path);

}  // namespace galaxies::registry::file_store
