// The requests a master has forwarded and not yet seen answered, so that a reply is forwarded only
// if it answers a request that went the other way (protocol.md §4): a peer or a node cannot
// answer a request it was never sent, nor answer one twice. Bounded per requesting node and in
// total; entries leave when answered, at their deadline, or when either node leaves.
// Pure data, no I/O. Threading: one executor, like the router that owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_set>
#include <vector>

#include "base/flat_map.hpp"
#include "galaxies/ids.hpp"

namespace galaxies::router {

class request_ledger {
 public:
  using clock = std::chrono::steady_clock;

  enum class add_result { added, duplicate, over_node_limit, over_total_limit };

  request_ledger(std::size_t max_per_node, std::size_t max_total) noexcept
      : max_per_node_(max_per_node), max_total_(max_total) {}

  // A request `id` from `requester` to `target`, forwarded on connection `via`, whose requester
  // gives up after `timeout`.
  add_result add(const node_id& requester, std::uint64_t id, const node_id& target, const void* via,
                 std::chrono::milliseconds timeout, clock::time_point now);
  // Undoes add() for a request that could not be forwarded after all.
  void cancel(const node_id& requester, std::uint64_t id);
  // A reply from `answerer` to `requester` for `id`, arriving on connection `via`: true, and the
  // entry gone, if it matches a request from `requester` to `answerer` that was forwarded on
  // `via`; false (nothing changes) otherwise.
  bool answer(const node_id& requester, std::uint64_t id, const node_id& answerer, const void* via);
  // Drops every entry whose requester or target is among `gone` (they left).
  void forget(const std::unordered_set<node_id>& gone);
  // Drops the entries whose deadline has passed: a reply after it is late for the requester too.
  void expire(clock::time_point now);

  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t of_node(const node_id& requester) const noexcept;
  std::size_t tracked_deadlines() const noexcept { return deadline_items_; }

 private:
  struct key {
    node_id requester;
    std::uint64_t id = 0;
    friend bool operator==(const key&, const key&) = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<node_id>{}(k.requester) ^ (k.id * 0x9e3779b97f4a7c15ull);
    }
  };
  struct entry {
    node_id target;
    const void* via = nullptr;
    clock::time_point deadline;
  };
  struct deadline_item {
    clock::time_point deadline;
    key k;
  };
  // A FIFO in one vector that keeps its capacity: a request at a time costs no allocation.
  struct deadline_fifo {
    std::vector<deadline_item> items;
    std::size_t head = 0;

    bool empty() const noexcept { return head == items.size(); }
    std::size_t size() const noexcept { return items.size() - head; }
    const deadline_item& front() const noexcept { return items[head]; }
    void pop_front() noexcept;
  };
  // Flat tables (looked up on every request and reply a master forwards): no allocation per
  // request in the steady state.
  using entry_map = base::flat_map<key, entry, key_hash>;

  void erase(const key& k, const entry* found);  // found: entries_.find(k)
  void compact_deadlines();
  deadline_fifo& fifo_of(std::uint32_t bucket);

  std::size_t max_per_node_;
  std::size_t max_total_;
  entry_map entries_;
  base::flat_map<node_id, std::size_t> per_node_;
  // One FIFO per timeout rounded up to a power of two: within one, deadlines only grow, so expiry
  // looks at fronts only. Answered entries stay behind as stale items until they reach the front
  // or a compaction, which runs when stale items outnumber live ones. FIFOs stay when empty
  // (there are a few dozen at most).
  std::map<std::uint32_t, deadline_fifo> deadlines_;
  // The FIFO add() used last (std::map nodes stay put): requests mostly share one timeout.
  std::uint32_t last_bucket_ = 0;
  deadline_fifo* last_fifo_ = nullptr;
  std::size_t deadline_items_ = 0;
};

}  // namespace galaxies::router
