// The entry point an application's main calls.
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <functional>

#include "galaxies/node.hpp"
#include "galaxies/options.hpp"

namespace galaxies {

// Called once in every worker process, on the node's executor, before the node registers: set up
// handlers and event callbacks here (and spawn coroutines on node.get_executor()).
using worker_main = std::function<void(node&)>;

// In the master (the process the user started): runs the host — workers of this same program,
// the registry, links to other hosts — until SIGTERM or SIGINT; returns the exit code.
// In a worker (started by the master): runs `work` until the master goes or node.stop().
int run(int argc, char** argv, const options& opts, worker_main work);

// Runs an application's own io_context (one with attached nodes, node::attach) as run() runs
// its processes' loops: as io.run() does, except that after each burst of work it polls for more,
// up to `busy_poll` and only while traffic keeps coming that soon, before it sleeps
// (options::busy_poll). Rethrows what a handler throws, as io.run() does.
void run_loop(asio::io_context& io, std::chrono::microseconds busy_poll = options{}.busy_poll);

// True in a process started by a galaxies master as its worker.
bool is_worker_process();

}  // namespace galaxies
