#include "router/request_ledger.hpp"

#include <algorithm>
#include <bit>
#include <vector>

namespace galaxies::router {
namespace {

// Rounded up to a power of two (at least 1 ms): a few dozen FIFOs whatever timeouts peers choose,
// at the price of keeping an entry up to twice its timeout.
std::uint32_t bucket_of(std::chrono::milliseconds timeout) noexcept {
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(timeout.count(), 1));
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(std::bit_ceil(ms), 1ull << 31));
}

}  // namespace

request_ledger::add_result request_ledger::add(const node_id& requester, std::uint64_t id,
                                               const node_id& target, const void* via,
                                               std::chrono::milliseconds timeout,
                                               clock::time_point now) {
  if (entries_.size() >= max_total_) return add_result::over_total_limit;
  // One lookup for the count (a master does this for every request it forwards); a count at
  // zero stays anyway, see erase().
  std::size_t& mine = *per_node_.try_emplace(requester, 0).first;
  if (mine >= max_per_node_) return add_result::over_node_limit;
  const std::uint32_t bucket = bucket_of(timeout);
  const auto deadline = now + std::chrono::milliseconds(bucket);
  const key k{requester, id};
  if (!entries_.try_emplace(k, entry{target, via, deadline}).second) return add_result::duplicate;
  ++mine;
  fifo_of(bucket).items.push_back({deadline, k});
  ++deadline_items_;
  if (deadline_items_ > 2 * entries_.size() + 1024) compact_deadlines();
  return add_result::added;
}

request_ledger::deadline_fifo& request_ledger::fifo_of(std::uint32_t bucket) {
  if (!last_fifo_ || last_bucket_ != bucket) {
    last_fifo_ = &deadlines_[bucket];
    last_bucket_ = bucket;
  }
  return *last_fifo_;
}

void request_ledger::erase(const key& k, const entry* found) {
  // A count at zero stays until its node leaves (forget): a node asking one request at a time
  // would otherwise insert and erase its count on every request.
  if (std::size_t* count = per_node_.find(k.requester)) --*count;
  entries_.erase_found(found);
}

void request_ledger::deadline_fifo::pop_front() noexcept {
  if (++head == items.size()) {
    items.clear();
    head = 0;
  } else if (head >= 32 && 2 * head >= items.size()) {
    items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(head));
    head = 0;
  }
}

void request_ledger::cancel(const node_id& requester, std::uint64_t id) {
  const key k{requester, id};
  if (const entry* e = entries_.find(k)) erase(k, e);
}

bool request_ledger::answer(const node_id& requester, std::uint64_t id, const node_id& answerer,
                            const void* via) {
  const key k{requester, id};
  const entry* e = entries_.find(k);
  if (!e || e->target != answerer || e->via != via) return false;
  erase(k, e);
  return true;
}

void request_ledger::forget(const std::unordered_set<node_id>& gone) {
  if (gone.empty()) return;
  entries_.erase_if([&](const key& k, const entry& e) {
    if (!gone.contains(k.requester) && !gone.contains(e.target)) return false;
    if (std::size_t* count = per_node_.find(k.requester)) --*count;
    return true;
  });
  for (const auto& node : gone) per_node_.erase(node);
}

void request_ledger::expire(clock::time_point now) {
  for (auto& [bucket, items] : deadlines_) {
    while (!items.empty() && items.front().deadline <= now) {
      const deadline_item item = items.front();
      items.pop_front();
      --deadline_items_;
      // Only the entry this item was made for: an answered one is gone already.
      if (const entry* e = entries_.find(item.k); e && e->deadline == item.deadline)
        erase(item.k, e);
    }
  }
}

void request_ledger::compact_deadlines() {
  for (auto& [bucket, fifo] : deadlines_) {
    fifo.items.erase(fifo.items.begin(),
                     fifo.items.begin() + static_cast<std::ptrdiff_t>(fifo.head));
    fifo.head = 0;
    std::erase_if(fifo.items, [&](const deadline_item& item) {
      const entry* e = entries_.find(item.k);
      return !e || e->deadline != item.deadline;
    });
  }
  deadline_items_ = 0;
  for (const auto& [bucket, items] : deadlines_) deadline_items_ += items.size();
}

std::size_t request_ledger::of_node(const node_id& requester) const noexcept {
  const std::size_t* count = per_node_.find(requester);
  return count ? *count : 0;
}

}  // namespace galaxies::router
