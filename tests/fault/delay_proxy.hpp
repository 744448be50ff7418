// A user-space TCP proxy that delays traffic (this kernel has no netem): every chunk read from
// one side is written to the other `delay` later, in order, per direction. An end-of-stream is
// passed on (as a shutdown of the sending side) once everything before it was written; an error
// on either side closes both. Runs inside a test host's namespace (see delay_proxy_main.cpp), or
// in a test on loopback. Queues are not bounded: it is for tests with modest traffic.
// Threading: one io_context; every member on its thread.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace galaxies::test {

class delay_proxy {
 public:
  delay_proxy(asio::io_context& io, const asio::ip::tcp::endpoint& listen,
              asio::ip::tcp::endpoint target, std::chrono::milliseconds delay);
  ~delay_proxy();
  delay_proxy(const delay_proxy&) = delete;
  delay_proxy& operator=(const delay_proxy&) = delete;

  asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  // Starts accepting; each accepted connection dials the target.
  void start();
  // Stops accepting and closes every relayed connection.
  void stop();
  std::size_t accepted() const { return accepted_; }

  struct session;

 private:
  void accept();

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint target_;
  std::chrono::milliseconds delay_;
  std::vector<std::weak_ptr<session>> sessions_;
  std::size_t accepted_ = 0;
};

}  // namespace galaxies::test
