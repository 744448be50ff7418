// A host's master: the router, the worker supervisor and the chosen registry, put together.
// Threading: lives on one io_context, run by one thread.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "galaxies/options.hpp"
#include "process/supervisor.hpp"
#include "registry/registry.hpp"
#include "router/router.hpp"

namespace galaxies::host {

class master {
 public:
  // `worker_argv`: how to start a worker (the running program's own argv).
  master(asio::io_context& io, options opts, std::vector<std::string> worker_argv);
  ~master();

  // Binds, registers, spawns the workers. Throws std::runtime_error / std::invalid_argument with a
  // clear message on a start-up error (bad address, bad registry URL, socket path too long).
  void start();

  // Graceful stop: the registry row goes, workers stop (and leave), peers get goodbye.
  void stop(std::function<void()> done);

  const host_id& id() const noexcept { return id_; }
  const std::string& address() const noexcept { return address_; }
  const std::string& unix_path() const noexcept { return unix_path_; }

 private:
  void bind_tcp();
  void bind_unix();
  void accept_tcp();
  void accept_unix();

  asio::io_context& io_;
  options opts_;
  std::vector<std::string> worker_argv_;
  host_id id_ = host_id::random();
  std::string address_;
  std::string unix_path_;
  asio::ip::tcp::acceptor tcp_acceptor_;
  asio::local::stream_protocol::acceptor unix_acceptor_;
  std::unique_ptr<registry::registry> registry_;
  std::unique_ptr<router::router> router_;
  std::unique_ptr<process::supervisor> supervisor_;
  bool stopping_ = false;
};

// The per-user directory for sockets and the embedded registry.
std::string runtime_directory();

}  // namespace galaxies::host
