// The on-disk side of the file registry: the JSON format, the lock file and the atomic replace.
// Synchronous and free of Asio so that the watcher (file_registry) stays about timing only.
//
// File: {"format":1,"hosts":[{"id","cluster","address","unix","hostname","pid","expires_ms"}]}.
// Readers take no lock: the data file is only ever replaced whole by rename(), so any open() sees
// one complete version. Writers serialise on PATH.lock, never on PATH itself, because locking the
// data file would lock an inode the next rename() unlinks. Nothing here ever waits for the lock:
// a process stopped while holding it (SIGSTOP, a debugger) must not freeze the event loops of
// every master on the machine; the caller retries (file_writer.hpp).
// Every file and directory this creates is private to the user (0600, 0700).
// Threading: free functions without shared state; safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "registry/registry.hpp"

namespace galaxies::registry::file_store {

inline constexpr int format_version = 1;
// Far above any real registry (a row is ~250 bytes); a bigger file is treated as corrupt.
inline constexpr std::size_t max_file_size = 16u << 20;

// Wall clock in milliseconds since the epoch: rows are compared across processes.
std::int64_t now_ms();

// A row that failed its checks (row_checks.hpp): its id as written, or "#N" (its index) when it
// has none, and why.
struct skipped_row {
  std::string key;
  std::error_code why;
};

struct snapshot {
  std::vector<host_record> rows;     // every valid row, all clusters, expired ones included
  std::vector<skipped_row> skipped;  // rows that failed their checks (the first max_registry_hosts)
  std::error_code error;             // an I/O error other than "no such file"; rows are then empty
  bool corrupt = false;              // the file exists but does not parse; rows are then empty
};

// Parses the document; false when it is not a format-1 registry. Rows failing their checks are
// skipped (and listed in `skipped`, if given); rows repeating an id keep the latest expiry.
bool parse(std::string_view text, std::vector<host_record>& rows,
           std::vector<skipped_row>* skipped = nullptr);
std::string serialize(const std::vector<host_record>& rows);

// Reads PATH once without locking. A missing file is an empty registry; a corrupt one is reported
// in `corrupt` (callers decide how loudly: a watcher may read it many times before the repair).
snapshot load(const std::string& path);

// Edits the rows under the lock: reads, drops rows expired at `now_ms` (of any cluster: dead is
// dead), calls `edit`, and writes back through PATH.tmp.<pid> + rename() when `edit` returned true,
// something was pruned, or the file was corrupt (so a corrupt file is repaired by the next writer).
// A write drops the rows that failed their checks. Creates the parent directory (mode 0700) if
// missing. On success `result` holds the rows as now stored (and the rows skipped when reading);
// on error the file is left as it was.
// Never blocks: while another writer holds the lock it returns
// std::errc::resource_unavailable_try_again, having read and written nothing.
std::error_code update(const std::string& path, std::int64_t now_ms,
                       const std::function<bool(std::vector<host_record>&)>& edit,
                       snapshot* result = nullptr);

// mkdir -p with mode 0700 for every directory it creates.
std::error_code make_directories(const std::string& dir);

}  // namespace galaxies::registry::file_store
