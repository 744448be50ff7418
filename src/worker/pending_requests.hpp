// The requester's table of requests in flight: ids, deadlines, and exactly-once completion.
// Allocation-free per request once warm: entries live in a slab of slots reused through a free
// list, ids find their slot through a flat index, and deadlines sit in a binary min-heap of slot
// numbers. Memory grows only to the high-water mark of requests in flight (at most max_pending).
// Threading: lives on one executor; every member runs there.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "galaxies/counters.hpp"
#include "galaxies/ids.hpp"
#include "galaxies/node.hpp"
#include "transport/request_id_index.hpp"

namespace galaxies::detail {

// How requests ended. Counted here, where every request ends exactly once, and before its
// callback runs, so that a callback reading them sees its own request.
struct request_outcomes {
  latency_histogram latency;  // answered by their target, by round trip
  request_failures failed;    // ended any other way
};

class pending_requests {
 public:
  using clock = std::chrono::steady_clock;
  // Who answered a request: its target (a round trip, timed), or a master for it (the request
  // never arrived: a failure, by the answer's error).
  enum class answered_by { target, master };

  pending_requests(const asio::any_io_executor& executor, std::size_t max_pending);
  ~pending_requests();

  // Reserves the next id (never 0, never reused) for a request to `target`. Returns 0 when the
  // table is full; `done` is then untouched and the caller fails the request with overloaded.
  // `started`: when the request was made, its round trip's start (the caller has just read the
  // clock for the deadline). `frame_size`: the bytes its frame took of the requester's credit
  // (refunded if a master answers for the target).
  std::uint64_t add(const node_id& target, clock::time_point started, clock::time_point deadline,
                    request_callback& done, std::uint32_t frame_size = 0);

  // Completes request `id` (its target's reply arrived). False if it is not pending: a late reply
  // (a cancelled request's entry, kept for its reply, then goes).
  bool complete(std::uint64_t id, std::error_code error, byte_view reply);
  // A reply that arrived from node `from`: it completes request `id` only if that request went to
  // `from` (another node cannot answer for it). False otherwise, and the request stays pending.
  bool complete_reply(const node_id& from, std::uint64_t id, std::error_code error, byte_view reply,
                      answered_by by = answered_by::target);

  // Ends request `id` as cancelled (counted as failed.cancelled) and hands back its callback for
  // the caller to complete with operation_aborted. `sent`: its frame went, so its entry stays,
  // without a callback, until its reply (then late), its deadline or its target's leaving end it,
  // uncounted: its reply is then known for a late one, and a master's answer for it still refunds
  // its credit (frame_size). Empty when `id` is not pending or was cancelled already.
  request_callback cancel(std::uint64_t id, bool sent);
  // The target of request `id` if it is pending and not cancelled; null otherwise.
  const node_id* awaited_target(std::uint64_t id) const noexcept {
    const auto slot = index_.find(id);
    return slot == no_slot || !slots_[slot].done ? nullptr : &slots_[slot].target;
  }
  // The deadline given to add(); time_point::min() if `id` is not pending.
  clock::time_point deadline(std::uint64_t id) const noexcept {
    const auto slot = index_.find(id);
    return slot == no_slot ? clock::time_point::min() : slots_[slot].deadline;
  }

  // Fails every request to `target` (it left) / every request (we are going).
  void fail_target(const node_id& target, std::error_code error);
  void fail_all(std::error_code error);

  // Removes request `id` without completing it (its frame could not be sent); its callback is
  // handed back so that the caller can complete it as it sees fit (empty for a cancelled one). No
  // outcome is counted for it.
  request_callback take(std::uint64_t id);

  // Request `id`'s frame went out (it took its bytes of credit): a master may answer for it now.
  void mark_sent(std::uint64_t id) noexcept {
    if (const auto slot = index_.find(id); slot != no_slot) slots_[slot].sent = true;
  }
  // A master answered for request `id` to `target` (it never arrived): the bytes its frame took of
  // our credit, to refund, 0 if none are owed. The answer may come after the request's deadline
  // ended it, from a queue where it waited: what it took is owed then too, or the pair's window
  // would shrink for good with every such request (remembered for max_pending of them).
  std::uint32_t master_answered(const node_id& target, std::uint64_t id);
  // The target itself answered request `id` after it ended: it arrived, its receiver grants its
  // bytes back, nothing is owed.
  void answered_late(std::uint64_t id) { unanswered_.erase(id); }

  // Whether `id` has an entry: pending, or cancelled after it was sent and not yet ended.
  bool contains(std::uint64_t id) const noexcept { return index_.find(id) != no_slot; }
  // The frame size given to add(); 0 if `id` is not pending.
  std::uint32_t frame_size(std::uint64_t id) const noexcept {
    const auto slot = index_.find(id);
    return slot == no_slot ? 0 : slots_[slot].frame_size;
  }
  // Entries, cancelled ones among them: they are in flight still, and count against max_pending.
  std::size_t size() const noexcept { return index_.size(); }
  std::uint64_t timeouts() const noexcept { return outcomes_.failed.timeout; }

  const request_outcomes& outcomes() const noexcept { return outcomes_; }
  // A request refused before it got an id (the caller fails it with `error`) counts as failed.
  void count_refused(std::error_code error) noexcept;

 private:
  static constexpr std::uint32_t no_slot = transport::request_id_index::npos;

  struct entry {
    std::uint64_t id = 0;  // 0: a free slot
    node_id target;
    clock::time_point started;
    clock::time_point deadline;
    request_callback done;  // empty once cancelled
    std::uint32_t frame_size = 0;
    bool sent = false;                  // mark_sent
    std::uint32_t heap_at = 0;          // its place in deadlines_ while in use
    std::uint32_t next_free = no_slot;  // the free list, while free
  };

  // Heap order: earlier deadline first, equal deadlines oldest (smallest id) first.
  bool before(std::uint32_t a, std::uint32_t b) const noexcept {
    const entry& x = slots_[a];
    const entry& y = slots_[b];
    return x.deadline < y.deadline || (x.deadline == y.deadline && x.id < y.id);
  }
  void heap_push(std::uint32_t slot);
  void heap_remove(std::uint32_t at);
  void sift_up(std::uint32_t at);
  void sift_down(std::uint32_t at);
  void place(std::uint32_t at, std::uint32_t slot) {
    deadlines_[at] = slot;
    slots_[slot].heap_at = at;
  }
  // Ids of every pending request that `pick` accepts, oldest first.
  template <class Pick>
  std::vector<std::uint64_t> ids_where(Pick pick) const;
  // Removes the request in `slot` (in use) and hands back its callback.
  request_callback take_slot(std::uint32_t slot);
  // Counts how the request in `slot` ended, then removes and completes it: `round_trip`, its
  // target answered; otherwise it failed with `error`. A cancelled one is removed only (its
  // ending was counted when it was cancelled). False for a cancelled one.
  bool finish(std::uint32_t slot, bool round_trip, std::error_code error, byte_view reply);
  // Fails every request that `pick` accepts with `error`, oldest first.
  template <class Pick>
  void fail_where(Pick pick, std::error_code error);

  void arm_timer();
  void on_timer();
  // The request in `slot` reached its deadline unanswered: if it was sent, a master may still
  // answer for it (master_answered).
  void remember_unanswered(const entry& e);

  // Requests ended by their deadline after they were sent, by id: the target and the credit their
  // frame took. At most max_pending_, the oldest forgotten first (order_ may hold ids answered
  // since, skipped when their turn comes).
  struct unanswered {
    node_id target;
    std::uint32_t frame_size;
  };
  std::unordered_map<std::uint64_t, unanswered> unanswered_;
  std::deque<std::uint64_t> unanswered_order_;

  std::size_t max_pending_;
  std::uint64_t next_id_ = 1;
  std::vector<entry> slots_;
  std::uint32_t free_ = no_slot;
  transport::request_id_index index_;
  std::vector<std::uint32_t> deadlines_;  // slot numbers, a binary min-heap by before()
  asio::steady_timer timer_;
  clock::time_point armed_for_ = clock::time_point::max();
  request_outcomes outcomes_;
  // The timer's handler can already be queued with success when the table is destroyed (cancel()
  // cannot recall it); it checks this token instead of touching a dead table.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace galaxies::detail
