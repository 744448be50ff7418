#include "base/backoff.hpp"

#include <algorithm>
#include <random>

namespace galaxies::base {

std::chrono::milliseconds backoff::next() {
  const auto base = next_;
  next_ = std::min(max_, next_ * 2);
  // xorshift: cheap, and random enough for jitter.
  state_ ^= state_ << 13;
  state_ ^= state_ >> 7;
  state_ ^= state_ << 17;
  const auto span = base.count() / 2;
  const auto jitter =
      span > 0 ? static_cast<std::int64_t>(state_ % static_cast<std::uint64_t>(span)) - span / 2
               : 0;
  return std::chrono::milliseconds(std::max<std::int64_t>(1, base.count() + jitter));
}

std::uint64_t backoff::seed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32 | device()) | 1;  // xorshift must not start at 0
}

}  // namespace galaxies::base
