// System "nats" (--peer nats): two nats-server processes on 127.0.0.1 with a route between them,
// started and stopped (by PID) by the driver; the publisher or requester is a client of one, the
// subscriber or responder a client of the other, so every message crosses the route, as a
// galaxies message crosses the host link. Built only where libnats was found at configure time.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "results.hpp"

namespace galaxies::bench {

class nats_system {
 public:
  virtual ~nats_system() = default;

  virtual throughput_result throughput(const test_spec& spec) = 0;
  virtual latency_result latency(const test_spec& spec) = 0;

  // Throws if a server has exited.
  virtual void check_running() = 0;
  // True if both servers stopped on SIGTERM.
  virtual bool stop(std::chrono::milliseconds grace) = 0;
};

// True when this build has the NATS client.
bool nats_built_in();

// Starts the two servers (nats-server from $PATH; logs in `dir`) and waits, bounded, until a
// request crosses the route. Throws with the reason when it cannot (not built in, no nats-server,
// a server exited, timed out).
std::unique_ptr<nats_system> start_nats(const std::string& dir);

}  // namespace galaxies::bench
