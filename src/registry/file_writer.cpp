#include "registry/file_writer.hpp"

#include <asio/post.hpp>
#include <iterator>

#include "base/limits.hpp"

namespace galaxies::registry {

file_writer::file_writer(const asio::any_io_executor& executor, std::string path,
                         std::chrono::milliseconds timeout)
    : executor_(executor),
      path_(std::move(path)),
      timeout_(timeout),
      retry_timer_(executor),
      backoff_(limits::file_lock_retry_initial, limits::file_lock_retry_max) {}

file_writer::~file_writer() {
  *alive_ = false;
}

void file_writer::submit(edit change, completion done) {
  queue_.push_back({std::move(change), std::move(done), clock::now() + timeout_});
  if (!retry_armed_) attempt();
}

void file_writer::attempt() {
  std::vector<pending> batch(std::make_move_iterator(queue_.begin()),
                             std::make_move_iterator(queue_.end()));
  queue_.clear();
  auto stored = std::make_shared<file_store::snapshot>();
  const auto ec = file_store::update(
      path_, file_store::now_ms(),
      [&](std::vector<host_record>& rows) {
        bool changed = false;
        for (auto& p : batch) changed = p.change(rows) || changed;
        return changed;
      },
      stored.get());

  if (ec == std::errc::resource_unavailable_try_again) {
    // Nothing was applied: the batch goes back in front of what was submitted meanwhile (none,
    // as this runs on the executor), in its order.
    queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()),
                  std::make_move_iterator(batch.end()));
    fail_expired(clock::now());
    if (queue_.empty()) return;
    retry_armed_ = true;
    retry_timer_.expires_after(backoff_.next());
    retry_timer_.async_wait([this, alive = alive_](std::error_code waited) {
      if (!*alive || waited) return;
      retry_armed_ = false;
      if (!queue_.empty()) attempt();
    });
    return;
  }
  backoff_.reset();
  complete(std::move(batch), ec, std::move(stored));
}

void file_writer::fail_expired(clock::time_point now) {
  // Deadlines grow along the queue, so the expired edits are a prefix of it.
  std::vector<pending> expired;
  while (!queue_.empty() && queue_.front().deadline <= now) {
    expired.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  if (!expired.empty()) {
    complete(std::move(expired), std::make_error_code(std::errc::timed_out),
             std::make_shared<file_store::snapshot>());
  }
}

void file_writer::complete(std::vector<pending> batch, std::error_code ec,
                           std::shared_ptr<const file_store::snapshot> stored) {
  asio::post(executor_,
             [alive = alive_, batch = std::move(batch), ec, stored = std::move(stored)]() mutable {
               for (auto& p : batch) {
                 // A completion may destroy the registry that owns this writer: check before each
                 // one.
                 if (!*alive) return;
                 if (p.done) p.done(ec, *stored);
               }
             });
}

}  // namespace galaxies::registry
