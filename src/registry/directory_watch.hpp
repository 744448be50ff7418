// Which files of one directory changed, from inotify on the executor (no extra thread). Once the
// fd turns readable the watch waits for the next point of a machine-wide grid
// (limits::registry_watch_grain, base/clock_grid.hpp), then drains every event queued and delivers
// the names as one set: a burst of writes to one file costs its reader one read, and a deletion
// none; the writes of many processes at about the same time (registry refreshes keep to a grid
// too) cost each reader one wake-up instead of one each. Names
// starting with a dot are never reported: in the file registry's directory they are writes in
// flight (file_store.hpp).
//
// Events watched: a file renamed in or out (IN_MOVED_TO, IN_MOVED_FROM), written in place
// (IN_CLOSE_WRITE) or deleted (IN_DELETE); and the directory's own fate (deleted, moved away),
// after which nothing more is seen until add() succeeds again.
//
// Threading: one executor; call every member there. The handler runs only from the executor,
// never after destruction, and may destroy this object.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace galaxies::registry {

class directory_watch {
 public:
  // Each name touched, once, by what its last event says: there (written, renamed in) or gone
  // (deleted, renamed out). Events in one batch come in order, so the last one is the truth.
  struct changes {
    std::vector<std::string> written;
    std::vector<std::string> removed;
    // Events were lost (the kernel's queue overflowed, or more names than max_registry_files in
    // one batch): the names are incomplete and the directory must be read again in full.
    bool overflow = false;
    // The directory was deleted or moved away: the watch is gone (watching() is false).
    bool lost = false;
  };
  using handler = std::function<void(changes)>;

  // `where` names the owner in log lines (its describe()).
  directory_watch(const asio::any_io_executor& executor, std::string dir, std::string where);
  ~directory_watch();

  directory_watch(const directory_watch&) = delete;
  directory_watch& operator=(const directory_watch&) = delete;

  // Opens the inotify fd and delivers every later batch to `on_changes`. False, and logged, when
  // inotify is unavailable: the owner must then poll.
  bool open(handler on_changes);
  // Watches the directory, if it is not watched already and it exists. True when this call
  // established a new watch: events before it were not seen, so the owner reads everything.
  bool add();
  // Stops everything; no handler runs afterwards.
  void close();

  bool available() const { return fd_.is_open(); }
  bool watching() const { return wd_ >= 0; }

 private:
  void arm();
  void on_readable();
  void read_batch();
  // Reads every queued event into `out`; false when the fd is broken.
  bool drain(changes& out);

  std::string dir_;
  std::string where_;
  asio::posix::stream_descriptor fd_;
  asio::steady_timer settle_;  // from readable to the next grid point
  int wd_ = -1;
  bool add_failure_logged_ = false;
  handler on_changes_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace galaxies::registry
