// Why a connection closed: recorded once per connection and logged once.
#pragma once

#include <cstdint>

namespace galaxies::transport {

enum class close_reason : std::uint8_t {
  local,              // this side closed it on purpose
  eof,                // the peer closed it
  io_error,           // read or write failed
  protocol_error,     // the peer sent bad input
  heartbeat_timeout,  // the peer went silent
  handshake_timeout,  // no complete handshake in time
  refused,            // the handshake was refused (by either side)
  duplicate,          // another link to the same peer won
  replaced,           // the peer dialled again: it had declared this link dead
  shutdown,           // this process is stopping
  overloaded,         // the outbound queue overflowed: a consumer too slow for its traffic
  write_stall,        // the peer stopped reading: nothing written for too long
  internal_error,     // an exception in this connection's code; logged with its text
  tls_failed,         // the TLS handshake failed (e.g. a certificate the CA did not sign)
  unauthorized,       // the peer did not prove the cluster secret, or may not connect at all
  limit,              // too many connections (in handshake, or in total)
};

inline const char* to_string(close_reason reason) noexcept {
  switch (reason) {
    case close_reason::local:
      return "closed locally";
    case close_reason::eof:
      return "closed by peer";
    case close_reason::io_error:
      return "i/o error";
    case close_reason::protocol_error:
      return "protocol error";
    case close_reason::heartbeat_timeout:
      return "heartbeat timeout";
    case close_reason::handshake_timeout:
      return "handshake timeout";
    case close_reason::refused:
      return "handshake refused";
    case close_reason::duplicate:
      return "duplicate link";
    case close_reason::replaced:
      return "replaced by the peer's new link";
    case close_reason::shutdown:
      return "shutting down";
    case close_reason::overloaded:
      return "outbound queue overflow (slow consumer)";
    case close_reason::write_stall:
      return "peer stopped reading (write stalled)";
    case close_reason::internal_error:
      return "internal error";
    case close_reason::tls_failed:
      return "TLS handshake failed";
    case close_reason::unauthorized:
      return "unauthorized";
    case close_reason::limit:
      return "connection limit reached";
  }
  return "unknown";
}

// The reason as an identifier, for metrics labels and JSON keys ("heartbeat_timeout").
inline const char* to_label(close_reason reason) noexcept {
  switch (reason) {
    case close_reason::local:
      return "local";
    case close_reason::eof:
      return "eof";
    case close_reason::io_error:
      return "io_error";
    case close_reason::protocol_error:
      return "protocol_error";
    case close_reason::heartbeat_timeout:
      return "heartbeat_timeout";
    case close_reason::handshake_timeout:
      return "handshake_timeout";
    case close_reason::refused:
      return "refused";
    case close_reason::duplicate:
      return "duplicate";
    case close_reason::replaced:
      return "replaced";
    case close_reason::shutdown:
      return "shutdown";
    case close_reason::overloaded:
      return "overloaded";
    case close_reason::write_stall:
      return "write_stall";
    case close_reason::internal_error:
      return "internal_error";
    case close_reason::tls_failed:
      return "tls_failed";
    case close_reason::unauthorized:
      return "unauthorized";
    case close_reason::limit:
      return "limit";
  }
  return "unknown";
}

}  // namespace galaxies::transport
