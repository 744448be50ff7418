// Outbound bytes queued by every connection of one process, against one global limit: without
// it, each connection's own bound multiplies by the number of peers that stop reading.
// Threading: shared by the links of one executor; used only there.
#pragma once

#include <cstddef>

namespace galaxies::transport {

class byte_budget {
 public:
  explicit byte_budget(std::size_t limit) noexcept : limit_(limit) {}

  // Whether `more` bytes fit once `released` bytes the caller holds are counted as given back.
  bool fits(std::size_t more, std::size_t released = 0) const noexcept {
    return used_ - released + more <= limit_;
  }
  // Replaces a holder's charge of `before` bytes by `after` bytes.
  void recharge(std::size_t before, std::size_t after) noexcept { used_ = used_ - before + after; }

  std::size_t used() const noexcept { return used_; }
  std::size_t limit() const noexcept { return limit_; }

 private:
  std::size_t limit_;
  std::size_t used_ = 0;
};

}  // namespace galaxies::transport
