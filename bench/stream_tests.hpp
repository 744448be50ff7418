// The tests over plain byte streams, shared by the tcp and relay baselines: blocking POSIX I/O, a
// thread at each end, length-prefixed messages. Both ends batch as the galaxies links do: a writer
// sends what it has in one write, a reader parses every complete message of one read.
#pragma once

#include <vector>

#include "results.hpp"
#include "stream_io.hpp"

namespace galaxies::bench {

// Two connected ends: what `sender` writes arrives at `receiver`, and the other way round.
struct stream_pair {
  fd_guard sender;
  fd_guard receiver;
};

// One writer and one reader thread per pair, all at once, for the spec's window; the writers
// then shut down their sending side and the readers count until end of stream.
throughput_result stream_throughput(std::vector<stream_pair>& pairs, const test_spec& spec);

// spec.inflight requests outstanding on one pair, each echoed by a thread at the receiver.
latency_result stream_latency(stream_pair& pair, const test_spec& spec);

}  // namespace galaxies::bench
