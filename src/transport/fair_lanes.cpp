#include "transport/fair_lanes.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "base/endian.hpp"

namespace galaxies::transport {

namespace {
// Released lanes kept for their buffers' capacity, and the largest capacity worth keeping: a
// lane that once held megabytes gives them back.
constexpr std::size_t max_spare_lanes = 16;
constexpr std::size_t max_spare_capacity = 256 * 1024;
}  // namespace

std::vector<std::byte>& fair_lanes::buffer(lane_key key) {
  lane* l = last_;
  if (!l || l->key != key) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) {
      if (spare_.empty()) {
        it = by_key_.try_emplace(key).first;
      } else {
        auto node = std::move(spare_.back());
        spare_.pop_back();
        node.key() = key;
        it = by_key_.insert(std::move(node)).position;
      }
      it->second.key = key;
    }
    l = last_ = &it->second;
  }
  if (!l->in_ring) {
    l->in_ring = true;
    push_back(l);
  }
  return l->filling;
}

void fair_lanes::take(std::size_t budget, std::vector<piece>& out) {
  std::size_t total = 0;
  std::size_t fruitless = 0;  // consecutive turns that took nothing
  std::size_t shortfall = std::numeric_limits<std::size_t>::max();
  while (ring_size_ > 0 && fruitless < ring_size_) {
    lane* l = pop_front();
    const std::size_t before = total;
    const turn result = take_turn(*l, budget, total, shortfall);
    fruitless = total > before ? 0 : fruitless + 1;
    if (result == turn::empty) {
      l->in_ring = false;
      l->deficit = 0;
      if (l->taking == 0) went_idle();
      if (total == before) --fruitless;  // it left the ring: its turn does not count
      continue;
    }
    if (result == turn::full) {
      // It keeps the head of the ring and the rest of its turn: a frame that did not fit this
      // write goes first in the next, never starved by lanes of smaller frames.
      l->resumes = true;
      push_front(l);
      break;
    }
    push_back(l);
    if (total == 0 && fruitless == ring_size_) {
      // Every lane waits for its turns to add up to its next frame: grant the turns the closest
      // one needs at once rather than going round for them (its visit adds the last one).
      const std::size_t turns = (shortfall + quantum_ - 1) / quantum_;
      for (lane* waiting = ring_head_; waiting; waiting = waiting->next)
        waiting->deficit += (turns - 1) * quantum_;
      fruitless = 0;
      shortfall = std::numeric_limits<std::size_t>::max();
    }
  }
  for (lane* l : in_write_) {
    if (l->slice > 0) {
      wire::store_fragment_header(fragment_header_.data(), l->slice);
      out.emplace_back(fragment_header_);
    }
    out.emplace_back(l->draining.data() + l->sent, l->taking);
  }
}

fair_lanes::turn fair_lanes::take_turn(lane& l, std::size_t budget, std::size_t& total,
                                       std::size_t& shortfall) {
  if (l.taking == 0 && l.sent == l.draining.size()) {
    // What the writer had is written: the producers' frames become the writer's. Never while
    // this write holds a piece of `draining`, which the swap would hand to the producers.
    l.draining.clear();
    l.sent = 0;
    std::swap(l.draining, l.filling);
  }
  std::size_t at = l.sent + l.taking;
  if (at == l.draining.size()) return l.filling.empty() ? turn::empty : turn::waits;
  if (!std::exchange(l.resumes, false)) l.deficit += quantum_;
  const std::size_t remaining = l.draining.size() - at;
  // Alone, a lane has nobody to share with: it may fill the write.
  if (ring_size_ == 0) l.deficit = std::max(l.deficit, std::min(remaining, budget - total));
  if (l.frag_left == 0 && remaining <= l.deficit && total + remaining <= budget) {
    // All of it fits: no need to walk its frames.
    at += remaining;
    l.deficit -= remaining;
    total += remaining;
  }
  turn result = turn::waits;
  for (;;) {
    if (at == l.draining.size()) {
      // Standard DRR: a lane that runs dry keeps no credit for later.
      if (l.filling.empty()) {
        l.deficit = 0;
        result = turn::empty;
      }
      break;
    }
    if (l.frag_left > 0) {
      // The next slice of its head frame: the slice opens this write's piece of the lane (its
      // header goes before the piece), so it grows only while nothing else was taken.
      const std::size_t bytes = std::min({l.frag_left, l.deficit, budget - total});
      at += bytes;
      l.frag_left -= bytes;
      l.deficit -= bytes;
      l.slice += bytes;
      total += bytes;
      if (l.frag_left == 0) {
        fragmenting_ = nullptr;  // the frame is complete: whole frames may follow in the piece
        if (total < budget) continue;
      }
      result = total >= budget ? turn::full : turn::waits;
      break;
    }
    const std::size_t size = head_frame_size(l, at);
    if (size > l.deficit) {
      if (fragment_above_ > 0 && size > fragment_above_ && !fragmenting_ && l.taking == 0 &&
          at == l.sent) {
        fragmenting_ = &l;
        l.frag_left = size;
        continue;
      }
      if (at == l.sent + l.taking) shortfall = std::min(shortfall, size - l.deficit);
      break;
    }
    if (total > 0 && total + size > budget) {
      result = turn::full;
      break;
    }
    at += size;
    l.deficit -= size;
    total += size;
    if (total >= budget) {
      result = at == l.draining.size() && l.filling.empty() ? turn::empty : turn::full;
      if (result == turn::empty) l.deficit = 0;
      break;
    }
  }
  const std::size_t took = at - (l.sent + l.taking);
  if (took > 0) {
    if (l.taking == 0) in_write_.push_back(&l);
    l.taking += took;
  }
  return result;
}

std::size_t fair_lanes::head_frame_size(const lane& l, std::size_t at) const noexcept {
  return std::size_t{base::load_le<std::uint32_t>(l.draining.data() + at)} + 4;
}

void fair_lanes::written() {
  for (lane* l : in_write_) {
    l->sent += l->taking;
    queued_ -= l->taking;
    l->taking = 0;
    l->slice = 0;
  }
  in_write_.clear();
  went_idle();
}

std::size_t fair_lanes::move_out(lane_key key, std::vector<std::byte>& out) {
  const auto it = by_key_.find(key);
  if (it == by_key_.end()) return 0;
  lane& l = it->second;
  const std::size_t keep = l.sent + l.taking;  // the write in progress still reads these
  const std::size_t moved = l.draining.size() - keep + l.filling.size();
  std::size_t from = keep;
  if (l.frag_left > 0) {
    // The receiver holds the slices so far: the rest must follow them, as a fragment.
    const std::size_t at = out.size();
    out.resize(at + wire::header_size);
    wire::store_fragment_header(out.data() + at, l.frag_left);
    out.insert(out.end(), l.draining.begin() + static_cast<std::ptrdiff_t>(from),
               l.draining.begin() + static_cast<std::ptrdiff_t>(from + l.frag_left));
    from += l.frag_left;
    l.frag_left = 0;
    fragmenting_ = nullptr;
  }
  out.insert(out.end(), l.draining.begin() + static_cast<std::ptrdiff_t>(from), l.draining.end());
  out.insert(out.end(), l.filling.begin(), l.filling.end());
  l.draining.resize(keep);
  l.filling.clear();
  l.resumes = false;
  queued_ -= moved;
  // It stays in the ring if it is there: its next turn finds it empty and takes it out.
  return moved;
}

void fair_lanes::went_idle() {
  // Idle lanes stay, so that a source that comes and goes (a request at a time) costs no lookup
  // of a new lane; the sources that left do not pile up past a bound.
  if (by_key_.size() <= ring_size_ + in_write_.size() + max_idle_lanes) return;
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    lane* l = &it->second;
    ++it;
    if (!l->in_ring && l->taking == 0) release(l);
  }
}

void fair_lanes::release(lane* l) {
  if (last_ == l) last_ = nullptr;
  const auto it = by_key_.find(l->key);
  if (it == by_key_.end()) return;
  if (spare_.size() >= max_spare_lanes || l->filling.capacity() > max_spare_capacity ||
      l->draining.capacity() > max_spare_capacity) {
    by_key_.erase(it);
    return;
  }
  l->filling.clear();
  l->draining.clear();
  l->sent = l->taking = l->deficit = l->frag_left = l->slice = 0;
  l->in_ring = l->resumes = false;
  l->next = nullptr;
  spare_.push_back(by_key_.extract(it));
}

void fair_lanes::push_back(lane* l) noexcept {
  l->next = nullptr;
  if (ring_tail_)
    ring_tail_->next = l;
  else
    ring_head_ = l;
  ring_tail_ = l;
  ++ring_size_;
}

void fair_lanes::push_front(lane* l) noexcept {
  l->next = ring_head_;
  ring_head_ = l;
  if (!ring_tail_) ring_tail_ = l;
  ++ring_size_;
}

fair_lanes::lane* fair_lanes::pop_front() noexcept {
  lane* l = ring_head_;
  ring_head_ = l->next;
  if (!ring_head_) ring_tail_ = nullptr;
  l->next = nullptr;
  --ring_size_;
  return l;
}

void fair_lanes::clear() {
  // Lanes with a piece in the write in progress keep that piece until written(): the write may
  // still read it.
  ring_head_ = ring_tail_ = nullptr;
  ring_size_ = 0;
  last_ = nullptr;
  fragmenting_ = nullptr;
  queued_ = 0;
  for (lane* l : in_write_) {
    l->filling.clear();
    l->draining.resize(l->sent + l->taking);
    l->in_ring = false;
    l->frag_left = 0;
    queued_ += l->taking;
  }
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    lane* l = &it->second;
    ++it;
    if (l->taking == 0) release(l);
  }
}

}  // namespace galaxies::transport
