#include "worker/pending_requests.hpp"

#include <algorithm>
#include <asio/error.hpp>
#include <utility>

namespace galaxies::detail {
namespace {

void count_failure(request_failures& failed, std::error_code error) noexcept {
  if (error == asio::error::operation_aborted) {
    ++failed.cancelled;
    return;
  }
  if (error.category() != error_category()) {
    ++failed.other;
    return;
  }
  switch (static_cast<errc>(error.value())) {
    case errc::timeout:
      ++failed.timeout;
      return;
    case errc::node_left:
      ++failed.node_left;
      return;
    case errc::no_such_node:
      ++failed.no_such_node;
      return;
    case errc::overloaded:
      ++failed.overloaded;
      return;
    case errc::too_large:
      ++failed.too_large;
      return;
    case errc::not_connected:
      ++failed.not_connected;
      return;
    case errc::shutting_down:
      ++failed.shutting_down;
      return;
    default:
      ++failed.other;
  }
}

}  // namespace

pending_requests::pending_requests(const asio::any_io_executor& executor, std::size_t max_pending)
    : max_pending_(max_pending), timer_(executor) {}

pending_requests::~pending_requests() {
  timer_.cancel();
}

std::uint64_t pending_requests::add(const node_id& target, clock::time_point started,
                                    clock::time_point deadline, request_callback& done,
                                    std::uint32_t frame_size) {
  if (size() >= max_pending_) return 0;
  std::uint32_t slot = free_;
  if (slot != no_slot) {
    free_ = slots_[slot].next_free;
  } else {
    // Slot numbers must stay below no_slot; a table that large is far past any memory anyway.
    if (slots_.size() >= no_slot) return 0;
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  const std::uint64_t id = next_id_++;
  entry& e = slots_[slot];
  e.id = id;
  e.target = target;
  e.started = started;
  e.deadline = deadline;
  e.done = std::move(done);
  e.frame_size = frame_size;
  e.sent = false;
  e.next_free = no_slot;
  index_.insert(id, slot);
  heap_push(slot);
  if (deadline < armed_for_) arm_timer();
  return id;
}

bool pending_requests::complete(std::uint64_t id, std::error_code error, byte_view reply) {
  const auto slot = index_.find(id);
  return slot != no_slot && finish(slot, true, error, reply);
}

bool pending_requests::complete_reply(const node_id& from, std::uint64_t id, std::error_code error,
                                      byte_view reply, answered_by by) {
  const auto slot = index_.find(id);
  if (slot == no_slot || slots_[slot].target != from) return false;
  return finish(slot, by == answered_by::target, error, reply);
}

request_callback pending_requests::cancel(std::uint64_t id, bool sent) {
  const auto slot = index_.find(id);
  if (slot == no_slot || !slots_[slot].done) return {};
  count_failure(outcomes_.failed, asio::error::operation_aborted);
  return sent ? std::move(slots_[slot].done) : take_slot(slot);
}

void pending_requests::count_refused(std::error_code error) noexcept {
  count_failure(outcomes_.failed, error);
}

bool pending_requests::finish(std::uint32_t slot, bool round_trip, std::error_code error,
                              byte_view reply) {
  if (!slots_[slot].done) {
    take_slot(slot);  // cancelled: its ending is counted, its callback gone
    return false;
  }
  if (round_trip)
    outcomes_.latency.observe(clock::now() - slots_[slot].started);
  else
    count_failure(outcomes_.failed, error);
  auto done = take_slot(slot);
  done(error, reply);
  return true;
}

request_callback pending_requests::take(std::uint64_t id) {
  const auto slot = index_.find(id);
  return slot == no_slot ? request_callback{} : take_slot(slot);
}

request_callback pending_requests::take_slot(std::uint32_t slot) {
  entry& e = slots_[slot];
  const std::uint64_t id = e.id;
  request_callback done = std::move(e.done);
  heap_remove(e.heap_at);
  index_.erase(id);
  // The slot is reused by a later add() under a new id: a late reply for `id` finds no index
  // entry, so it cannot reach the slot's next request.
  e.id = 0;
  e.next_free = free_;
  free_ = slot;
  return done;
}

template <class Pick>
std::vector<std::uint64_t> pending_requests::ids_where(Pick pick) const {
  std::vector<std::uint64_t> ids;
  for (const entry& e : slots_)
    if (e.id != 0 && pick(e)) ids.push_back(e.id);
  // Slots are reused in any order: sort, so that callers see failures in the order they asked.
  std::sort(ids.begin(), ids.end());
  return ids;
}

template <class Pick>
void pending_requests::fail_where(Pick pick, std::error_code error) {
  // A callback may end or add other requests: each id is looked up again when its turn comes.
  for (auto id : ids_where(pick))
    if (const auto slot = index_.find(id); slot != no_slot) finish(slot, false, error, {});
}

void pending_requests::fail_target(const node_id& target, std::error_code error) {
  fail_where([&](const entry& e) { return e.target == target; }, error);
}

void pending_requests::fail_all(std::error_code error) {
  fail_where([](const entry&) { return true; }, error);
  // The owner is going: an armed timer would only keep its io_context busy. (Not done when the
  // table merely empties: that would cost a timer re-arm per request on the hot path.)
  armed_for_ = clock::time_point::max();
  timer_.cancel();
}

void pending_requests::heap_push(std::uint32_t slot) {
  deadlines_.push_back(slot);
  const auto at = static_cast<std::uint32_t>(deadlines_.size() - 1);
  slots_[slot].heap_at = at;
  // With one timeout for every request the newest deadline is the latest: one comparison.
  sift_up(at);
}

void pending_requests::heap_remove(std::uint32_t at) {
  const std::uint32_t last = deadlines_.back();
  deadlines_.pop_back();
  if (at == deadlines_.size()) return;
  place(at, last);
  sift_down(at);
  sift_up(slots_[last].heap_at);
}

void pending_requests::sift_up(std::uint32_t at) {
  const std::uint32_t slot = deadlines_[at];
  while (at > 0) {
    const std::uint32_t parent = (at - 1) / 2;
    if (!before(slot, deadlines_[parent])) break;
    place(at, deadlines_[parent]);
    at = parent;
  }
  place(at, slot);
}

void pending_requests::sift_down(std::uint32_t at) {
  const std::uint32_t slot = deadlines_[at];
  const auto n = static_cast<std::uint32_t>(deadlines_.size());
  for (;;) {
    std::uint32_t child = 2 * at + 1;
    if (child >= n) break;
    if (child + 1 < n && before(deadlines_[child + 1], deadlines_[child])) ++child;
    if (!before(deadlines_[child], slot)) break;
    place(at, deadlines_[child]);
    at = child;
  }
  place(at, slot);
}

void pending_requests::arm_timer() {
  if (deadlines_.empty()) {
    armed_for_ = clock::time_point::max();
    timer_.cancel();
    return;
  }
  armed_for_ = slots_[deadlines_.front()].deadline;
  timer_.expires_at(armed_for_);
  timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](std::error_code ec) {
    if (!ec && !alive.expired()) on_timer();
  });
}

void pending_requests::on_timer() {
  const auto now = clock::now();
  // Requests added by the callbacks of this pass wait for the next pass (the re-armed timer),
  // even when already due: a callback that keeps asking with no time left cannot hold the loop.
  const std::uint64_t added_before = next_id_;
  while (!deadlines_.empty()) {
    const entry& first = slots_[deadlines_.front()];
    if (first.deadline > now || first.id >= added_before) break;
    remember_unanswered(first);
    finish(deadlines_.front(), false, make_error_code(errc::timeout), {});
  }
  armed_for_ = clock::time_point::max();
  arm_timer();
}

std::uint32_t pending_requests::master_answered(const node_id& target, std::uint64_t id) {
  if (const auto slot = index_.find(id); slot != no_slot)
    return slots_[slot].target == target && slots_[slot].sent ? slots_[slot].frame_size : 0;
  const auto it = unanswered_.find(id);
  if (it == unanswered_.end() || it->second.target != target) return 0;
  const std::uint32_t owed = it->second.frame_size;
  unanswered_.erase(it);
  return owed;
}

void pending_requests::remember_unanswered(const entry& e) {
  if (!e.sent || e.frame_size == 0 || max_pending_ == 0) return;
  while (unanswered_.size() >= max_pending_ && !unanswered_order_.empty()) {
    unanswered_.erase(unanswered_order_.front());
    unanswered_order_.pop_front();
  }
  // Ids answered since they were remembered stay in the order until their turn: drop them once
  // they are most of it, so that it stays within twice the bound.
  if (unanswered_order_.size() >= 2 * max_pending_)
    std::erase_if(unanswered_order_, [&](std::uint64_t id) { return !unanswered_.contains(id); });
  unanswered_.emplace(e.id, unanswered{e.target, e.frame_size});
  unanswered_order_.push_back(e.id);
}

}  // namespace galaxies::detail
