// System "tcp": the same tests over plain loopback TCP connections inside this process, one per
// pair (TCP_NODELAY). One TCP hop; galaxies crosses three (worker -> master over Unix, master ->
// master over TCP, master -> worker).
#pragma once

#include "results.hpp"

namespace galaxies::bench {

throughput_result tcp_throughput(const test_spec& spec);
latency_result tcp_latency(const test_spec& spec);

}  // namespace galaxies::bench
