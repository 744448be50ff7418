// Edits of the registry file, applied in the order they were submitted, without ever blocking the
// event loop on the file's lock. file_store::update never waits for the lock; while another
// process holds it, the writer retries on a timer (limits::file_lock_retry_initial doubling to
// file_lock_retry_max, with jitter) and the loop serves everything else meanwhile. Edits submitted
// while it waits join the queue behind the others; once the lock is free, every queued edit is
// applied, in order, in one locked read-modify-write. An edit still waiting when its request
// timeout passes fails with std::errc::timed_out, as a request to an unreachable store fails for
// the other backends.
//
// Threading: one executor; call every member there. Completions are posted, never run inside
// submit(), and never after destruction.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "base/backoff.hpp"
#include "registry/file_store.hpp"

namespace galaxies::registry {

class file_writer {
 public:
  // Changes the rows; true when it changed something. Called once, under the lock, or never.
  using edit = std::function<bool(std::vector<host_record>&)>;
  // The outcome of one edit; on success, the file as stored once its batch was written.
  using completion = std::function<void(std::error_code, const file_store::snapshot&)>;

  file_writer(const asio::any_io_executor& executor, std::string path,
              std::chrono::milliseconds timeout);
  ~file_writer();

  file_writer(const file_writer&) = delete;
  file_writer& operator=(const file_writer&) = delete;

  // Tries at once when nothing is queued before it (the usual case: the write happens inside this
  // call); otherwise, or when the lock is busy, it waits its turn.
  void submit(edit change, completion done);

  // Edits waiting for the lock.
  std::size_t queued() const noexcept { return queue_.size(); }

 private:
  using clock = std::chrono::steady_clock;
  struct pending {
    edit change;
    completion done;
    clock::time_point deadline;
  };

  void attempt();
  void fail_expired(clock::time_point now);
  void complete(std::vector<pending> batch, std::error_code ec,
                std::shared_ptr<const file_store::snapshot> stored);

  asio::any_io_executor executor_;
  std::string path_;
  std::chrono::milliseconds timeout_;
  std::deque<pending> queue_;
  asio::steady_timer retry_timer_;
  bool retry_armed_ = false;
  base::backoff backoff_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace galaxies::registry
