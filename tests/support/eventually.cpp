#include "support/eventually.hpp"

#include <thread>

namespace galaxies::test {

bool eventually(std::chrono::milliseconds deadline, const std::function<bool()>& predicate,
                std::chrono::milliseconds poll) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace galaxies::test
