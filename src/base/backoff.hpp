// Capped exponential backoff with jitter: redials, store reconnects, lock retries.
#pragma once

#include <chrono>
#include <cstdint>

namespace galaxies::base {

class backoff {
 public:
  backoff(std::chrono::milliseconds initial = std::chrono::milliseconds(50),
          std::chrono::milliseconds max = std::chrono::milliseconds(2000))
      : initial_(initial), max_(max), next_(initial) {}

  // The delay before the next attempt: doubles each time up to the cap, with ±25% jitter so that
  // many masters losing the same peer do not redial in lockstep.
  std::chrono::milliseconds next();
  void reset() noexcept { next_ = initial_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds next_;
  // Seeded per instance: with one fixed seed, every master would draw the same jitter and the
  // masters that lost the same peer would still redial in lockstep.
  static std::uint64_t seed();
  std::uint64_t state_ = seed();
};

}  // namespace galaxies::base
