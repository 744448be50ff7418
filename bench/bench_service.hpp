// The benchmark's worker side: every worker answers the receiver's commands, and the one the
// driver asks (with "bench.run") measures against the other. Lives on the node's executor.
#pragma once

#include <galaxies/node.hpp>

namespace galaxies::bench {

// Commands between the driver and the workers, and between the two workers.
inline constexpr const char* cmd_run = "bench.run";            // driver -> sender: run one test
inline constexpr const char* cmd_tp_begin = "bench.tp.begin";  // sender -> receiver: reset
inline constexpr const char* cmd_tp = "bench.tp";              // the measured one-way messages
inline constexpr const char* cmd_tp_end = "bench.tp.end";      // after the last: what arrived?
inline constexpr const char* cmd_echo = "bench.echo";          // the measured requests

// The worker function of the bench host: installs the handlers on `n`.
void install_bench_service(node& n);

}  // namespace galaxies::bench
