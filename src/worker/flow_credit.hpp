// End-to-end flow control between nodes (docs/protocol.md §4.1), without I/O: what a node may
// still send to each receiver, and what it owes each sender as it consumes their frames. Each
// pair also carries the traffic counted for node::peer_counters(): the message path looks the
// pair up anyway, so counting there costs no lookup of its own, and the counts go when the peer
// does.
// Threading: owned by a node_core; runs on its executor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>

#include "galaxies/ids.hpp"
#include "wire/credit.hpp"
#include "wire/frame.hpp"

namespace galaxies::detail {

struct sent_traffic {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;  // payload
  std::uint64_t requests = 0;
};

struct received_traffic {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;  // payload
  std::uint64_t replies = 0;
};

// The sending side: one window per receiver, created at the first frame to it.
class send_credit {
 public:
  struct pair {
    std::int64_t available;  // below zero after a frame larger than the window went alone
    std::uint32_t window;
    bool blocked = false;
    sent_traffic sent{};
  };

  explicit send_credit(std::uint32_t initial_window) noexcept : initial_window_(initial_window) {}

  // Whether a frame of `size` bytes may go to `to` now: the credit covers it, or at least half
  // the window is available (so a frame larger than that still goes, alone). Frames already waiting
  // for that receiver go first: the caller keeps FIFO by asking only when none waits.
  bool admits(const node_id& to, std::size_t size) const noexcept;
  bool admits(const pair& p, std::size_t size) const noexcept { return covers(p, size); }
  // Debits a frame admitted for `to`; returns the flags it must carry (flag_blocked once after
  // the pair was refused or waited, asking the receiver for a larger window).
  std::uint8_t take(const node_id& to, std::size_t size) { return take(at(to), size); }
  std::uint8_t take(pair& p, std::size_t size);
  // admits() and take() with one lookup (the hot path): the flags when admitted and debited;
  // otherwise nothing, and the pair is marked blocked.
  std::optional<std::uint8_t> try_take(const node_id& to, std::size_t size);
  // The same for a pair found before (a batch being filled debits it once per message). Inline:
  // it runs for every message sent, and a call costs as much as its body.
  std::optional<std::uint8_t> try_take(pair& p, std::size_t size) {
    if (!covers(p, size)) {
      p.blocked = true;
      return std::nullopt;
    }
    p.available -= static_cast<std::int64_t>(size);
    return std::exchange(p.blocked, false) ? wire::flag_blocked : 0;
  }
  // A pair's state, valid until forget(`to`) or clear(); created if absent.
  pair& at(const node_id& to);
  // The same, or null if absent.
  pair* find(const node_id& to) noexcept {
    const auto it = pairs_.find(to);
    return it == pairs_.end() ? nullptr : &it->second;
  }
  // A frame to `to` was refused or has to wait for credit.
  void mark_blocked(const node_id& to);
  // A grant from `to`: adds to the credit, which never exceeds the window it names.
  void grant(const node_id& to, std::uint32_t bytes, std::uint32_t window);
  // A frame debited for `to` never reached it (a master answered its request instead).
  void refund(const node_id& to, std::size_t size);
  // `to` left: its window goes with it.
  void forget(const node_id& to) { pairs_.erase(to); }
  void clear() { pairs_.clear(); }

  std::int64_t available(const node_id& to) const noexcept;
  std::uint32_t window(const node_id& to) const noexcept;
  const std::unordered_map<node_id, pair>& pairs() const noexcept { return pairs_; }

 private:
  // A receiver grants once half a window is consumed, so with nothing in flight more than half is
  // available: a frame larger than that goes then, alone, and never waits for good.
  static bool covers(const pair& p, std::size_t size) noexcept {
    return p.available >= static_cast<std::int64_t>(size) ||
           p.available >= static_cast<std::int64_t>(p.window / 2);
  }

  std::uint32_t initial_window_;
  std::unordered_map<node_id, pair> pairs_;
};

// The receiving side: what each sender has consumed since its last grant, and its window. A
// sender's window grows (doubling) when it says it was blocked, while the sum of the windows of
// the senders it knows stays within the node's budget, and none exceeds a quarter of it. Every
// pair starts with the initial window whatever the budget: N senders hold at least N of them.
class receive_credit {
 public:
  struct pair {
    std::uint32_t window;
    std::uint64_t consumed = 0;  // since the last grant
    received_traffic received{};
  };

  receive_credit(std::uint32_t initial_window, std::size_t budget) noexcept
      : initial_window_(initial_window), budget_(budget) {}

  // A frame of `size` bytes from `from` has been handled. Returns the grant to send now, if any:
  // half a window consumed, or whatever is consumed when the sender says it was blocked (its
  // window doubled first, when the budget allows).
  std::optional<wire::credit_grant> consumed(const node_id& self, const node_id& from,
                                             std::size_t size, bool blocked) {
    return consumed(at(from), self, from, size, blocked);
  }
  // The same for `from`'s pair, found before (the caller counted the frame's traffic on it).
  std::optional<wire::credit_grant> consumed(pair& p, const node_id& self, const node_id& from,
                                             std::size_t size, bool blocked);
  // `from`'s state, valid until forget(`from`) or clear(); created (with the initial window) if
  // absent.
  pair& at(const node_id& from);
  // `from` left: its window returns to the budget.
  void forget(const node_id& from);
  void clear() {
    pairs_.clear();
    windows_ = 0;
  }

  std::size_t windows() const noexcept { return windows_; }  // the sum of every sender's window
  std::uint32_t window(const node_id& from) const noexcept;
  std::uint32_t max_window() const noexcept;
  const std::unordered_map<node_id, pair>& pairs() const noexcept { return pairs_; }

 private:
  std::uint32_t initial_window_;
  std::size_t budget_;
  std::size_t windows_ = 0;
  std::unordered_map<node_id, pair> pairs_;
};

}  // namespace galaxies::detail
