#include "transport/pending_requests.hpp"

#include <vector>

namespace galaxies::transport {

pending_requests::pending_requests(const asio::any_io_executor& executor, std::size_t max_pending)
    : max_pending_(max_pending), timer_(executor) {}

pending_requests::~pending_requests() {
  timer_.cancel();
}

std::uint64_t pending_requests::add(const node_id& target, clock::time_point deadline,
                                    request_callback& done, std::uint32_t frame_size) {
  if (entries_.size() >= max_pending_) return 0;
  const std::uint64_t id = next_id_++;
  entries_.emplace(id, entry{target, deadline, std::move(done), frame_size});
  deadlines_.emplace(deadline, id);
  if (deadline < armed_for_) arm_timer();
  return id;
}

bool pending_requests::complete(std::uint64_t id, std::error_code error, bytes reply) {
  auto done = take(id);
  if (!done) return false;
  done(error, std::move(reply));
  return true;
}

bool pending_requests::complete_reply(const node_id& from, std::uint64_t id, std::error_code error,
                                      bytes reply) {
  const auto it = entries_.find(id);
  if (it == entries_.end() || it->second.target != from) return false;
  return complete(id, error, std::move(reply));
}

request_callback pending_requests::take(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return {};
  request_callback done = std::move(it->second.done);
  deadlines_.erase({it->second.deadline, id});
  entries_.erase(it);
  return done;
}

void pending_requests::fail_target(const node_id& target, std::error_code error) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, e] : entries_)
    if (e.target == target) ids.push_back(id);
  // Oldest first, so that callers see failures in the order they asked.
  std::sort(ids.begin(), ids.end());
  for (auto id : ids) complete(id, error, {});
}

void pending_requests::fail_all(std::error_code error) {
  std::vector<std::uint64_t> ids;
  ids.reserve(entries_.size());
  for (const auto& [id, e] : entries_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (auto id : ids) complete(id, error, {});
  // The owner is going: an armed timer would only keep its io_context busy. (Not done when the
  // table merely empties: that would cost a timer re-arm per request on the hot path.)
  armed_for_ = clock::time_point::max();
  timer_.cancel();
}

void pending_requests::arm_timer() {
  if (deadlines_.empty()) {
    armed_for_ = clock::time_point::max();
    timer_.cancel();
    return;
  }
  armed_for_ = deadlines_.begin()->first;
  timer_.expires_at(armed_for_);
  timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](std::error_code ec) {
    if (!ec && !alive.expired()) on_timer();
  });
}

void pending_requests::on_timer() {
  const auto now = clock::now();
  std::vector<std::uint64_t> expired;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it)
    expired.push_back(it->second);
  for (auto id : expired)
    if (complete(id, make_error_code(errc::timeout), {})) ++timeouts_;
  armed_for_ = clock::time_point::max();
  arm_timer();
}

}  // namespace galaxies::transport
