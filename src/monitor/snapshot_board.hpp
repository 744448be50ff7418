// Where a master's loop leaves what its HTTP threads serve: a snapshot of its status, built on the
// loop when a reader asks and the last one is too old. The loop never waits for a reader; a reader
// waits for the loop at most a bounded time, then serves the last snapshot it has (a master
// too busy to answer at once is exactly when its figures matter).
// Threading: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace galaxies::monitor {

struct snapshot {
  std::string status_json;  // the status document, as /status.json serves it
  std::string metrics;      // the same, in the Prometheus text format
  std::chrono::steady_clock::time_point built;
};

class snapshot_board {
 public:
  using clock = std::chrono::steady_clock;

  // `request_build` asks the loop for a new snapshot (it posts, never runs the build itself);
  // the loop answers with publish(). At most one request is outstanding at a time.
  explicit snapshot_board(std::function<void()> request_build);

  // A snapshot built at most `max_age` ago if the loop provides one within `wait`, else the
  // latest one (null before the first).
  std::shared_ptr<const snapshot> get(clock::duration max_age, clock::duration wait);

  void publish(std::shared_ptr<const snapshot> s);
  // No more requests to the loop (it is going away); readers get the latest at once.
  void close();

 private:
  std::mutex mutex_;
  std::condition_variable published_;
  std::function<void()> request_build_;
  std::shared_ptr<const snapshot> latest_;
  bool requested_ = false;
  bool closed_ = false;
};

}  // namespace galaxies::monitor
