// The embedded registry backend ("file:PATH"): one JSON file per cluster shared by every master
// on this machine, no server. Rows are refreshed on a timer and expire on their own; the file is
// watched with inotify on the executor (no extra thread), and an expiry timer catches rows that
// die without any change to the file. The format and locking live in file_store.hpp; writes go
// through a file_writer, which never blocks the loop on the lock. A lock held past the request
// timeout makes the store unhealthy, exactly like an unreachable etcd or Redis; reads take no
// lock, so the view keeps following the file meanwhile.
//
// Threading: like every registry, it lives on one executor; call every member there. No callback
// runs after destruction, not even a pending read() or stop() completion. Destroying it without
// stop() leaves the row to expire, exactly like a crash.
#pragma once

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "registry/file_store.hpp"
#include "registry/file_writer.hpp"
#include "registry/registry.hpp"
#include "registry/skipped_rows.hpp"

namespace galaxies::registry {

class file_registry final : public registry {
 public:
  // `path` names the data file; `cluster` is already validated by make_registry.
  file_registry(const asio::any_io_executor& executor, std::string path, std::string cluster,
                const options& opts);
  ~file_registry() override;

  file_registry(const file_registry&) = delete;
  file_registry& operator=(const file_registry&) = delete;

  void start(const host_record& self, view_handler on_view, health_handler on_health) override;
  void remove_stale(const host_id& stale, std::string_view address) override;
  void read(read_handler done) override;
  void stop(std::function<void()> done) override;
  std::string describe() const override;

 private:
  enum class state { idle, running, stopped };

  void check_directory() const;
  // Queues the refresh of our row, unless one is queued already (it takes the expiry of the
  // moment it is written). Its completion reports health and the view.
  void write_self();
  void on_self_written(std::error_code ec, const file_store::snapshot& stored);
  void open_watch();
  void add_watch();
  void arm_watch();
  void on_watch_ready();
  void arm_refresh();
  void on_refresh();
  void arm_expiry(std::int64_t earliest_ms);
  void reload();
  // Calls on_health when the outcome of our last write differs from the one last reported.
  void report_health(std::error_code ec);
  void log_skipped(const std::vector<file_store::skipped_row>& skipped);
  // Recomputes the view from the file's rows; emits it if the keys changed. Emitting is the last
  // thing it does, so on_view may call stop() or even destroy this object.
  void evaluate(const std::vector<host_record>& rows);
  std::vector<host_record> live_rows(const std::vector<host_record>& rows, std::int64_t now) const;

  asio::any_io_executor executor_;
  std::string path_;
  std::string dir_;
  std::string file_name_;
  std::string cluster_;
  std::chrono::milliseconds ttl_;
  std::chrono::milliseconds refresh_;
  std::chrono::milliseconds request_timeout_;

  state state_ = state::idle;
  host_record self_;
  view_handler on_view_;
  health_handler on_health_;
  std::optional<std::error_code> reported_health_;
  view_filter last_view_;
  view_bound bound_;
  skipped_rows_log skipped_log_;
  bool corrupt_reported_ = false;  // one warning per corruption, not one per inotify event
  bool self_write_queued_ = false;
  bool reload_deferred_ = false;  // a reload skipped while our write was stalled

  asio::steady_timer refresh_timer_;
  asio::steady_timer expiry_timer_;
  asio::posix::stream_descriptor watch_;  // the inotify fd
  int watch_wd_ = -1;
  file_writer writer_;

  // Handlers hold a copy and check it first: false once this object is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace galaxies::registry
