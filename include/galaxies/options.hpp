// Options of a galaxies host (master) and of the nodes it runs. Plain data.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace galaxies {

struct limits_options {
  std::uint32_t max_frame_size = 16u << 20;  // bytes of one frame, headers included
  std::size_t max_pending_requests = 65536;  // per node
  std::size_t max_queue_bytes = 64u << 20;   // outbound bytes queued per connection
};

// Failure detection on every host link and worker channel. A side that hears nothing for
// interval * misses declares the other gone (link_lost). The default detects a silent host in
// 1.5 s; the short interval keeps a lost heartbeat's TCP retransmission (200 ms minimum, linear
// for these thin streams) well inside that window, so 5% packet loss causes no false leave.
struct heartbeat_options {
  std::chrono::milliseconds interval{250};  // 0 disables heartbeats (then neither side expects any)
  int misses = 6;

  std::chrono::milliseconds detection_time() const { return interval * misses; }
};

struct options {
  std::size_t workers = 2;             // worker processes this host runs
  std::string listen = "127.0.0.1:0";  // TCP address other masters dial; port 0 = any free
  std::string advertise;               // address written to the registry; empty = the bound one
  std::string registry;                // URL; empty = the embedded file registry's default
  std::string cluster = "galaxies";    // hosts of different clusters never link
  std::string unix_path;               // master's local socket; empty = a per-user default
  std::chrono::milliseconds registry_ttl{5000};
  std::chrono::milliseconds stop_grace{3000};  // SIGTERM→SIGKILL for workers on shutdown
  limits_options limits;
  heartbeat_options heartbeat;
  std::string log_level = "info";  // spdlog level name
};

}  // namespace galaxies
