// System "relay": the physical floor of galaxies' process layout. The same three hops as a
// worker-to-worker message (client --Unix--> relay process --TCP 127.0.0.1--> relay process
// --Unix--> client), each relay a plain copy loop (blocking read/write, a thread per direction, no
// framing work); the clients are the stream tests' threads in the driver.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "child_process.hpp"
#include "results.hpp"

namespace galaxies::bench {

// The hidden CLI subcommand that runs one relay process.
inline constexpr const char* relay_subcommand = "bench-relay";

struct relay_options {
  std::string unix_path;  // where clients connect
  std::string port_file;  // far relay: listen on 127.0.0.1:0 and write the port here
  int connect_port = 0;   // near relay: dial the far relay on 127.0.0.1:PORT per client
};

// The relay process: accepts clients until it is killed; returns only on a start-up error.
int run_relay(const relay_options& options);

// The driver's side: the two relay processes (started by the constructor, stopped by PID by
// stop() or the destructor) and the tests through them.
class relay_baseline {
 public:
  explicit relay_baseline(const std::string& dir);

  throughput_result throughput(const test_spec& spec);
  latency_result latency(const test_spec& spec);

  // Throws if a relay process has exited.
  void check_running();
  // True if both stopped on SIGTERM.
  bool stop(std::chrono::milliseconds grace);

 private:
  std::string dir_;
  std::unique_ptr<child_process> far_;
  std::unique_ptr<child_process> near_;
};

}  // namespace galaxies::bench
