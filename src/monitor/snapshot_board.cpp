#include "monitor/snapshot_board.hpp"

namespace galaxies::monitor {

snapshot_board::snapshot_board(std::function<void()> request_build)
    : request_build_(std::move(request_build)) {}

std::shared_ptr<const snapshot> snapshot_board::get(clock::duration max_age, clock::duration wait) {
  std::unique_lock lock(mutex_);
  const auto fresh = [&] { return latest_ && clock::now() - latest_->built <= max_age; };
  if (fresh() || closed_) return latest_;
  if (!requested_) {
    requested_ = true;
    // Posting is quick and never waits for the loop; under the lock so close() cannot pass it.
    request_build_();
  }
  published_.wait_for(lock, wait, [&] { return fresh() || closed_; });
  return latest_;
}

void snapshot_board::publish(std::shared_ptr<const snapshot> s) {
  {
    std::lock_guard lock(mutex_);
    latest_ = std::move(s);
    requested_ = false;
  }
  published_.notify_all();
}

void snapshot_board::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  published_.notify_all();
}

}  // namespace galaxies::monitor
