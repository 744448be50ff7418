// The reference the galaxies numbers are divided by: the same tests over one plain loopback TCP
// connection inside one process (a thread at each end, blocking POSIX I/O, length-prefixed
// messages, TCP_NODELAY). Both ends batch as the galaxies links do: a writer sends what it has in
// one write, a reader parses every complete message of one read. This is one TCP hop; galaxies
// crosses three (worker -> master over Unix, master -> master over TCP, master -> worker).
#pragma once

#include "results.hpp"

namespace galaxies::bench {

throughput_result baseline_throughput(const test_spec& spec);
latency_result baseline_latency(const test_spec& spec);

}  // namespace galaxies::bench
