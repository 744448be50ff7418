// Two connected stream sockets in one process, for tests of what the kernel does with real sockets:
// a Unix socketpair (as a worker's channel), or a TCP connection on loopback, tuned as a host link.
// No port is held once the pair is connected.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <ostream>
#include <string>
#include <system_error>

#include "transport/socket_setup.hpp"
#include "transport/stream.hpp"

namespace galaxies::test {

enum class socket_kind { unix_stream, tcp_loopback };

inline std::string to_string(socket_kind kind) {
  return kind == socket_kind::unix_stream ? "unix" : "tcp";
}
inline void PrintTo(socket_kind kind, std::ostream* out) {
  *out << to_string(kind);
}

struct socket_pair {
  transport::socket first;
  transport::socket second;
};

inline socket_pair connected_pair(asio::io_context& io, socket_kind kind) {
  if (kind == socket_kind::unix_stream) {
    int fds[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      throw std::system_error(errno, std::system_category(), "socketpair");
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    return {transport::socket(io, unix_stream, fds[0]), transport::socket(io, unix_stream, fds[1])};
  }
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket server = acceptor.accept();
  const asio::generic::stream_protocol tcp(AF_INET, SOCK_STREAM);
  socket_pair pair{transport::socket(io, tcp, client.release()),
                   transport::socket(io, tcp, server.release())};
  transport::tune_host_link(pair.first.native_handle());
  transport::tune_host_link(pair.second.native_handle());
  return pair;
}

// Waits (in the kernel, not through the io_context's reactor, whose readiness it leaves alone)
// until `s` has received its peer's end of stream, or `limit` passes; true if it has.
inline bool wait_for_peer_end(transport::socket& s, std::chrono::milliseconds limit) {
  pollfd p{s.native_handle(), POLLRDHUP, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(limit.count()));
  return ready == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

}  // namespace galaxies::test
