// A tiny HTTP/1.1 server for tests, on 127.0.0.1 port 0 in the test's own io_context: it reads
// each POST (headers and a Content-Length body) and hands it to the test, which answers it whole,
// streams a chunked answer, or says nothing. Connections are kept alive for the next request.
// Threading: the io_context's thread.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <charconv>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace galaxies::test {

class loopback_http_server {
 public:
  // One request and its answer.
  class exchange : public std::enable_shared_from_this<exchange> {
   public:
    exchange(loopback_http_server& server, std::shared_ptr<asio::ip::tcp::socket> socket)
        : server_(server), socket_(std::move(socket)) {}

    void reply(int status, const std::string& body) {
      write("HTTP/1.1 " + std::to_string(status) +
            " X\r\nContent-Type: application/json\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
      server_.read_request(socket_);  // keep-alive: the client may send the next one here
    }
    void start_stream() {
      write(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
          "chunked\r\n\r\n");
      // The client sends nothing more on a stream: a read ends only when it hangs up.
      auto byte = std::make_shared<char>();
      socket_->async_read_some(asio::buffer(byte.get(), 1),
                               [socket = socket_, byte](std::error_code ec, std::size_t) {
                                 std::error_code ignored;
                                 if (ec) socket->close(ignored);
                               });
    }
    void push(const std::string& data) {
      char size[32];
      const auto n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
      write(std::string(size, static_cast<std::size_t>(n)) + data + "\r\n");
    }
    void end() { write("0\r\n\r\n"); }
    void cut() {
      std::error_code ignored;
      socket_->close(ignored);
    }
    bool is_open() const { return socket_->is_open(); }

   private:
    void write(std::string data) {
      auto owned = std::make_shared<std::string>(std::move(data));
      asio::async_write(*socket_, asio::buffer(*owned),
                        [socket = socket_, owned](std::error_code, std::size_t) {});
    }

    loopback_http_server& server_;
    std::shared_ptr<asio::ip::tcp::socket> socket_;
  };
  using exchange_ptr = std::shared_ptr<exchange>;
  using handler =
      std::function<void(const exchange_ptr&, const std::string& path, const std::string& body)>;

  loopback_http_server(asio::io_context& io, handler on_request)
      : io_(io),
        acceptor_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        on_request_(std::move(on_request)) {
    accept();
  }
  ~loopback_http_server() { stop(); }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  std::size_t requests() const { return requests_; }

  // The server's own descriptors (listening and accepted), for fd-leak checks.
  std::set<int> fds() {
    std::set<int> out{acceptor_.native_handle()};
    for (const auto& s : sockets_) {
      if (s->is_open()) out.insert(s->native_handle());
    }
    return out;
  }

  // Closes everything: the listening socket and every connection.
  void stop() {
    std::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& s : sockets_) s->close(ignored);
  }

 private:
  using socket_ptr = std::shared_ptr<asio::ip::tcp::socket>;

  void accept() {
    auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
    acceptor_.async_accept(*socket, [this, socket](std::error_code ec) {
      if (ec) return;
      sockets_.push_back(socket);
      read_request(socket);
      accept();
    });
  }

  void read_request(const socket_ptr& socket) {
    auto buffer = buffers_[socket.get()];
    if (!buffer) buffer = buffers_[socket.get()] = std::make_shared<std::string>();
    asio::async_read_until(
        *socket, asio::dynamic_buffer(*buffer), "\r\n\r\n",
        [this, socket, buffer](std::error_code ec, std::size_t header_size) {
          if (ec) return;
          const std::string head = buffer->substr(0, header_size);
          buffer->erase(0, header_size);
          std::size_t length = 0;
          if (const auto at = head.find("Content-Length: "); at != std::string::npos) {
            std::from_chars(head.data() + at + 16, head.data() + head.size(), length);
          }
          const auto have = buffer->size();
          const auto missing = length > have ? length - have : 0;
          buffer->resize(have + missing);
          asio::async_read(*socket, asio::buffer(buffer->data() + have, missing),
                           [this, socket, buffer, head, length](std::error_code ec, std::size_t) {
                             if (ec) return;
                             const std::string body = buffer->substr(0, length);
                             buffer->erase(0, length);
                             ++requests_;
                             // "POST /path HTTP/1.1"
                             const auto path = head.substr(5, head.find(' ', 5) - 5);
                             on_request_(std::make_shared<exchange>(*this, socket), path, body);
                           });
        });
  }

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  handler on_request_;
  std::vector<socket_ptr> sockets_;
  std::map<void*, std::shared_ptr<std::string>> buffers_;
  std::size_t requests_ = 0;
};

}  // namespace galaxies::test
