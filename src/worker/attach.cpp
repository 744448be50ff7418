// node::attach: an external process joins a running master through its Unix socket.
#include <spdlog/spdlog.h>

#include <asio/local/stream_protocol.hpp>

#include "galaxies/node.hpp"
#include "transport/socket_setup.hpp"
#include "worker/node_core.hpp"

namespace galaxies {

std::unique_ptr<node> node::attach(asio::io_context& io, attach_options opts) {
  if (opts.unix_path.empty() || opts.unix_path.size() > limits::max_unix_path)
    throw std::invalid_argument("attach: the master's Unix socket path is empty or too long");
  detail::node_core::settings s;
  s.role = wire::role::attached;
  s.cluster = opts.cluster;
  s.max_frame_size = opts.max_frame_size;
  s.max_pending_requests = opts.max_pending_requests;
  s.max_queue_bytes = opts.max_queue_bytes;
  s.heartbeat = opts.heartbeat;
  auto core = std::make_shared<detail::node_core>(io.get_executor(), std::move(s));
  auto handle = std::make_unique<node>(core);

  auto socket = std::make_shared<asio::local::stream_protocol::socket>(io);
  // Opened here to set close-on-exec, which Asio does not: a child of this process holding the
  // socket would keep the node registered after this process is gone.
  std::error_code open_error;
  socket->open(asio::local::stream_protocol(), open_error);
  if (!open_error) transport::set_cloexec(socket->native_handle());
  socket->async_connect(
      asio::local::stream_protocol::endpoint(opts.unix_path),
      [weak = std::weak_ptr<detail::node_core>(core), socket,
       path = opts.unix_path](std::error_code ec) {
        auto core = weak.lock();
        if (!core) return;
        if (ec) {
          if (core->events().disconnected)
            core->events().disconnected(ec, "cannot connect to " + path + ": " + ec.message());
          return;
        }
        transport::socket generic(socket->get_executor(),
                                  asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM),
                                  socket->release());
        core->connect(transport::stream(std::move(generic)));
      });
  return handle;
}

}  // namespace galaxies
