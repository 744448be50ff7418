#include "worker/flow_credit.hpp"

#include <algorithm>
#include <utility>

#include "wire/frame.hpp"

namespace galaxies::detail {

send_credit::pair& send_credit::at(const node_id& to) {
  return pairs_.try_emplace(to, pair{initial_window_, initial_window_}).first->second;
}

bool send_credit::admits(const node_id& to, std::size_t size) const noexcept {
  const auto it = pairs_.find(to);
  return it == pairs_.end() || covers(it->second, size);  // absent: a fresh window
}

std::optional<std::uint8_t> send_credit::try_take(const node_id& to, std::size_t size) {
  return try_take(at(to), size);
}

std::uint8_t send_credit::take(pair& p, std::size_t size) {
  p.available -= static_cast<std::int64_t>(size);
  return std::exchange(p.blocked, false) ? wire::flag_blocked : 0;
}

void send_credit::mark_blocked(const node_id& to) {
  at(to).blocked = true;
}

void send_credit::grant(const node_id& to, std::uint32_t bytes, std::uint32_t window) {
  auto& p = at(to);
  p.window = std::max(window, 1u);
  // Clamped: a grant for bytes never debited (a broadcast that reached a node before we knew it)
  // must not let this pair exceed its window.
  p.available = std::min<std::int64_t>(p.available + bytes, p.window);
}

void send_credit::refund(const node_id& to, std::size_t size) {
  const auto it = pairs_.find(to);
  if (it == pairs_.end()) return;
  it->second.available = std::min<std::int64_t>(
      it->second.available + static_cast<std::int64_t>(size), it->second.window);
}

std::int64_t send_credit::available(const node_id& to) const noexcept {
  const auto it = pairs_.find(to);
  return it == pairs_.end() ? initial_window_ : it->second.available;
}

std::uint32_t send_credit::window(const node_id& to) const noexcept {
  const auto it = pairs_.find(to);
  return it == pairs_.end() ? initial_window_ : it->second.window;
}

std::uint32_t receive_credit::max_window() const noexcept {
  const std::size_t quarter = budget_ / 4;
  return static_cast<std::uint32_t>(
      std::clamp<std::size_t>(quarter, initial_window_, UINT32_MAX / 2));
}

std::uint32_t receive_credit::window(const node_id& from) const noexcept {
  const auto it = pairs_.find(from);
  return it == pairs_.end() ? initial_window_ : it->second.window;
}

receive_credit::pair& receive_credit::at(const node_id& from) {
  auto [it, fresh] = pairs_.try_emplace(from, pair{initial_window_});
  if (fresh) windows_ += initial_window_;
  return it->second;
}

std::optional<wire::credit_grant> receive_credit::consumed(pair& p, const node_id& self,
                                                           const node_id& from, std::size_t size,
                                                           bool blocked) {
  p.consumed += size;
  bool grew = false;
  if (blocked && p.window < max_window()) {
    // Grow into what the budget has left; every sender keeps at least its initial window.
    const std::size_t left = budget_ > windows_ ? budget_ - windows_ : 0;
    const std::size_t grown =
        std::min<std::size_t>({std::size_t{p.window} * 2, max_window(), p.window + left});
    if (grown > p.window) {
      windows_ += grown - p.window;
      // The sender gets the difference now: its credit rises to the new window as it drains.
      p.consumed += grown - p.window;
      p.window = static_cast<std::uint32_t>(grown);
      grew = true;
    }
  }
  // A blocked sender gets what is consumed at once: it may be waiting for exactly that.
  if (!grew && p.consumed < p.window / 2 && !(blocked && p.consumed > 0)) return std::nullopt;
  wire::credit_grant g{self, from,
                       static_cast<std::uint32_t>(std::min<std::uint64_t>(p.consumed, UINT32_MAX)),
                       p.window};
  p.consumed -= g.grant;
  return g;
}

void receive_credit::forget(const node_id& from) {
  const auto it = pairs_.find(from);
  if (it == pairs_.end()) return;
  windows_ -= it->second.window;
  pairs_.erase(it);
}

}  // namespace galaxies::detail
