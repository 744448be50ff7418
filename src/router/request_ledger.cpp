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

// Entry nodes kept for reuse: what a burst of requests in flight needs again.
constexpr std::size_t max_spare_entries = 4096;

}  // namespace

request_ledger::add_result request_ledger::add(const node_id& requester, std::uint64_t id,
                                               const node_id& target, const void* via,
                                               std::chrono::milliseconds timeout,
                                               clock::time_point now) {
  if (entries_.size() >= max_total_) return add_result::over_total_limit;
  std::size_t& mine = per_node_[requester];
  if (mine >= max_per_node_) {
    if (mine == 0) per_node_.erase(requester);
    return add_result::over_node_limit;
  }
  const std::uint32_t bucket = bucket_of(timeout);
  const auto deadline = now + std::chrono::milliseconds(bucket);
  const key k{requester, id};
  bool inserted = false;
  if (spare_.empty()) {
    inserted = entries_.emplace(k, entry{target, via, deadline}).second;
  } else {
    auto node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = k;
    node.mapped() = entry{target, via, deadline};
    auto result = entries_.insert(std::move(node));
    inserted = result.inserted;
    if (!inserted) spare_.push_back(std::move(result.node));
  }
  if (!inserted) {
    if (mine == 0) per_node_.erase(requester);
    return add_result::duplicate;
  }
  ++mine;
  deadlines_[bucket].items.push_back({deadline, k});
  ++deadline_items_;
  if (deadline_items_ > 2 * entries_.size() + 1024) compact_deadlines();
  return add_result::added;
}

void request_ledger::erase(entry_map::iterator it) {
  // A count at zero stays until its node leaves (forget): a node asking one request at a time
  // would otherwise cost an allocation per request for its count alone.
  if (auto count = per_node_.find(it->first.requester); count != per_node_.end()) --count->second;
  if (spare_.size() < max_spare_entries)
    spare_.push_back(entries_.extract(it));
  else
    entries_.erase(it);
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
  if (auto it = entries_.find({requester, id}); it != entries_.end()) erase(it);
}

bool request_ledger::answer(const node_id& requester, std::uint64_t id, const node_id& answerer,
                            const void* via) {
  auto it = entries_.find({requester, id});
  if (it == entries_.end() || it->second.target != answerer || it->second.via != via) return false;
  erase(it);
  return true;
}

void request_ledger::forget(const std::unordered_set<node_id>& gone) {
  if (gone.empty()) return;
  for (const auto& node : gone) per_node_.erase(node);
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (gone.contains(it->first.requester) || gone.contains(it->second.target)) erase(it);
    it = next;
  }
}

void request_ledger::expire(clock::time_point now) {
  for (auto& [bucket, items] : deadlines_) {
    while (!items.empty() && items.front().deadline <= now) {
      const deadline_item item = items.front();
      items.pop_front();
      --deadline_items_;
      // Only the entry this item was made for: an answered one is gone already.
      if (auto it = entries_.find(item.k);
          it != entries_.end() && it->second.deadline == item.deadline)
        erase(it);
    }
  }
}

void request_ledger::compact_deadlines() {
  for (auto& [bucket, fifo] : deadlines_) {
    fifo.items.erase(fifo.items.begin(),
                     fifo.items.begin() + static_cast<std::ptrdiff_t>(fifo.head));
    fifo.head = 0;
    std::erase_if(fifo.items, [&](const deadline_item& item) {
      const auto it = entries_.find(item.k);
      return it == entries_.end() || it->second.deadline != item.deadline;
    });
  }
  deadline_items_ = 0;
  for (const auto& [bucket, items] : deadlines_) deadline_items_ += items.size();
}

std::size_t request_ledger::of_node(const node_id& requester) const noexcept {
  const auto it = per_node_.find(requester);
  return it == per_node_.end() ? 0 : it->second;
}

}  // namespace galaxies::router
