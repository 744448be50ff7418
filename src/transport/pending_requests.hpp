// The requester's table of requests in flight: ids, deadlines, and exactly-once completion.
// Threading: lives on one executor; every member runs there.
#pragma once

#include <algorithm>
#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "galaxies/ids.hpp"
#include "galaxies/node.hpp"

namespace galaxies::transport {

class pending_requests {
 public:
  using clock = std::chrono::steady_clock;

  pending_requests(const asio::any_io_executor& executor, std::size_t max_pending);
  ~pending_requests();

  // Reserves the next id (never 0, never reused) for a request to `target`. Returns 0 when the
  // table is full; `done` is then untouched and the caller fails the request with overloaded.
  // `frame_size`: the bytes its frame took of the requester's credit (refunded if a master answers
  // for the target).
  std::uint64_t add(const node_id& target, clock::time_point deadline, request_callback& done,
                    std::uint32_t frame_size = 0);

  // Completes request `id` (a reply arrived). False if it is not pending: a late reply.
  bool complete(std::uint64_t id, std::error_code error, bytes reply);
  // A reply that arrived from node `from`: it completes request `id` only if that request went to
  // `from` (another node cannot answer for it). False otherwise, and the request stays pending.
  bool complete_reply(const node_id& from, std::uint64_t id, std::error_code error, bytes reply);

  // Fails every request to `target` (it left) / every request (we are going).
  void fail_target(const node_id& target, std::error_code error);
  void fail_all(std::error_code error);

  // Removes request `id` without completing it (its frame could not be sent); its callback is
  // handed back so that the caller can complete it as it sees fit.
  request_callback take(std::uint64_t id);

  bool contains(std::uint64_t id) const noexcept { return entries_.contains(id); }
  // The frame size given to add(); 0 if `id` is not pending.
  std::uint32_t frame_size(std::uint64_t id) const noexcept {
    const auto it = entries_.find(id);
    return it == entries_.end() ? 0 : it->second.frame_size;
  }
  std::size_t size() const noexcept { return entries_.size(); }
  std::uint64_t timeouts() const noexcept { return timeouts_; }

 private:
  struct entry {
    node_id target;
    clock::time_point deadline;
    request_callback done;
    std::uint32_t frame_size = 0;
  };

  void arm_timer();
  void on_timer();

  std::size_t max_pending_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::set<std::pair<clock::time_point, std::uint64_t>> deadlines_;
  asio::steady_timer timer_;
  clock::time_point armed_for_ = clock::time_point::max();
  std::uint64_t timeouts_ = 0;
  // The timer's handler can already be queued with success when the table is destroyed (cancel()
  // cannot recall it); it checks this token instead of touching a dead table.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace galaxies::transport
