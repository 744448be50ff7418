// Making host links: a TCP connect bounded in time, and who is at the other end of an accepted one.
// Threading: callbacks run on the executor given.
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

#include "transport/stream.hpp"

namespace galaxies::transport {

using connect_handler = std::function<void(std::error_code, socket)>;

// Connects to a numeric "ip:port" and gives up after `timeout` (the kernel would retry lost SYNs
// only after 1, 3, 7 s). The socket comes close-on-exec and tuned for a host link.
void connect_tcp(const asio::any_io_executor& executor, std::string_view address,
                 std::chrono::milliseconds timeout, connect_handler done);

struct remote_address {
  std::string text;       // "ip:port", for logs
  bool loopback = false;  // on this machine: 127.0.0.0/8, ::1 (or a Unix socketpair)
};

remote_address remote_of(const socket& s);

}  // namespace galaxies::transport
