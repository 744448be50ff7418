// Pieces of the in-process benchmarks (path_count, publish_fanout): routers and nodes on one
// io_context, joined by socketpairs instead of TCP and the hosts' Unix sockets.
#pragma once

#include <sys/socket.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "router/router.hpp"
#include "worker/node_core.hpp"

namespace galaxies::bench {

inline std::pair<transport::socket, transport::socket> socket_pair(asio::io_context& io) {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::system_error(errno, std::system_category(), "socketpair");
  const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
  return {transport::socket(io, unix_stream, fds[0]), transport::socket(io, unix_stream, fds[1])};
}

// A node attached to `r`, as a local client of its Unix socket would be; it registers as the
// io_context runs.
inline std::shared_ptr<detail::node_core> attach_node(asio::io_context& io, router::router& r,
                                                      const std::string& cluster) {
  detail::node_core::settings s;
  s.role = wire::role::attached;
  s.cluster = cluster;
  auto node = std::make_shared<detail::node_core>(io.get_executor(), s);
  auto [mine, theirs] = socket_pair(io);
  r.accept_unix(std::move(theirs));
  node->connect(std::move(mine));
  return node;
}

}  // namespace galaxies::bench
