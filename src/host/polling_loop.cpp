// galaxies::run_loop: io_context::run(), polling for a while after each burst of work before it
// sleeps (base/spin_governor.hpp says how long, and why).
#include <sched.h>

#include "base/spin_governor.hpp"
#include "galaxies/run.hpp"

namespace galaxies {

void run_loop(asio::io_context& io, std::chrono::microseconds busy_poll) {
  if (busy_poll <= busy_poll.zero()) {
    io.run();
    return;
  }
  using clock = std::chrono::steady_clock;
  base::spin_governor governor(busy_poll);
  bool drained = false;
  for (;;) {
    // The rest of the burst: poll() runs every ready handler and ends with a non-blocking look
    // at the sockets, which is what tells that the process has nothing left to do.
    if (!drained) io.poll();
    if (io.stopped()) return;
    const auto idle_since = clock::now();
    const auto poll_until = idle_since + governor.window();
    drained = false;
    // Yielding between looks lets a process with work to do have this CPU meanwhile.
    while (!drained && clock::now() < poll_until) {
      ::sched_yield();
      drained = io.poll() > 0;
      if (io.stopped()) return;
    }
    if (!drained && io.run_one() == 0) return;
    governor.idle_ended(clock::now() - idle_since);
  }
}

}  // namespace galaxies
