#include "support/eventually.hpp"

#include <algorithm>
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

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit) {
  using clock = std::chrono::steady_clock;
  const auto until = clock::now() + limit;
  while (!done()) {
    const auto now = clock::now();
    if (now >= until) return false;
    if (io.stopped()) io.restart();
    if (io.run_one_until(std::min(until, now + std::chrono::milliseconds(20))) == 0 && io.stopped())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace galaxies::test
