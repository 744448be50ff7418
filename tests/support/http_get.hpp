// A blocking HTTP GET for tests, bounded in time and size, to a loopback address only (the test
// hosts' SAFETY RULE, support/netns.hpp: outside a namespace of its own a test talks to loopback).
// HTTP/1.0 with "Connection: close", so that the reply ends where the connection does and needs
// no chunked decoding. Thread-safe (no shared state).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace galaxies::test {

struct http_reply {
  int status = 0;       // 0: no complete reply; `error` says why
  std::string headers;  // the status line and header lines, as received
  std::string body;
  std::string error;

  // The value of header `name` (case-insensitive), "" when absent.
  std::string header(std::string_view name) const;
};

// GET http://ADDRESS/TARGET: `address` is "127.0.0.1:PORT" (any 127/8) or "[::1]:PORT", `target`
// starts with '/'. Throws std::invalid_argument for anything else, never connects to it.
http_reply http_get(const std::string& address, const std::string& target,
                    std::chrono::milliseconds timeout);

// `text` percent-encoded for a query string's value (RFC 3986 unreserved characters kept).
std::string url_encode(std::string_view text);

}  // namespace galaxies::test
