// node::attach: an external process joins a running master through its Unix socket. Here, with
// the composition, rather than in worker/: like run() for a worker, it tells the node how to
// read its master's waits for a core (process/cpu_wait.hpp).
#include <spdlog/spdlog.h>

#include <asio/local/stream_protocol.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "galaxies/node.hpp"
#include "process/cpu_wait.hpp"
#include "transport/local_peer.hpp"
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
  // Its master is known once connected: by the pid the kernel recorded (SO_PEERCRED).
  using probe = std::function<std::optional<std::chrono::nanoseconds>()>;
  auto master_cpu_wait = std::make_shared<probe>();
  s.master_cpu_wait = [master_cpu_wait]() -> std::optional<std::chrono::nanoseconds> {
    if (!*master_cpu_wait) return std::nullopt;
    return (*master_cpu_wait)();
  };
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
      [weak = std::weak_ptr<detail::node_core>(core), socket, path = opts.unix_path,
       master_cpu_wait](std::error_code ec) {
        auto core = weak.lock();
        if (!core) return;
        if (ec) {
          if (core->events().disconnected)
            core->events().disconnected(ec, "cannot connect to " + path + ": " + ec.message());
          return;
        }
        if (const pid_t master = transport::local_peer_pid(socket->native_handle()); master > 0)
          *master_cpu_wait = process::cpu_wait_probe(master);
        transport::socket generic(socket->get_executor(),
                                  asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM),
                                  socket->release());
        core->connect(transport::stream(std::move(generic)));
      });
  return handle;
}

}  // namespace galaxies
