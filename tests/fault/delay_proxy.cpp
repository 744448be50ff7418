#include "delay_proxy.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <deque>

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace

// One relayed connection: two sockets and a delayed queue per direction.
struct delay_proxy::session : std::enable_shared_from_this<session> {
  struct direction {
    explicit direction(asio::any_io_executor ex) : wake(ex) {}
    std::deque<std::pair<clock::time_point, std::vector<char>>> queue;
    asio::steady_timer wake;
    bool ended = false;  // the reading side reached its end
  };

  session(asio::ip::tcp::socket client, std::chrono::milliseconds delay)
      : client(std::move(client)),
        server(this->client.get_executor()),
        delay(delay),
        up(this->client.get_executor()),
        down(this->client.get_executor()) {}

  asio::awaitable<void> run(asio::ip::tcp::endpoint target) {
    auto self = shared_from_this();
    auto [ec] = co_await server.async_connect(target, use_tuple);
    if (ec) {
      close();
      co_return;
    }
    server.set_option(asio::ip::tcp::no_delay(true), ec);
    client.set_option(asio::ip::tcp::no_delay(true), ec);
    const auto ex = client.get_executor();
    asio::co_spawn(ex, read(self, client, up), asio::detached);
    asio::co_spawn(ex, write(self, server, up), asio::detached);
    asio::co_spawn(ex, read(self, server, down), asio::detached);
    asio::co_spawn(ex, write(self, client, down), asio::detached);
  }

  asio::awaitable<void> read(std::shared_ptr<session>, asio::ip::tcp::socket& from, direction& d) {
    std::vector<char> buffer(64 * 1024);
    while (!closed) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
      if (ec) break;
      d.queue.emplace_back(clock::now() + delay,
                           std::vector<char>(buffer.begin(), buffer.begin() + n));
      d.wake.cancel();
    }
    d.ended = true;
    d.wake.cancel();
  }

  asio::awaitable<void> write(std::shared_ptr<session>, asio::ip::tcp::socket& to, direction& d) {
    while (!closed) {
      if (d.queue.empty()) {
        if (d.ended) {
          std::error_code ignored;
          to.shutdown(asio::socket_base::shutdown_send, ignored);
          if (++finished == 2) close();
          co_return;
        }
        d.wake.expires_at(clock::time_point::max());
        co_await d.wake.async_wait(use_tuple);
        continue;
      }
      if (clock::now() < d.queue.front().first) {
        d.wake.expires_at(d.queue.front().first);
        co_await d.wake.async_wait(use_tuple);
        continue;
      }
      auto [ec, n] =
          co_await asio::async_write(to, asio::buffer(d.queue.front().second), use_tuple);
      if (ec) break;
      d.queue.pop_front();
    }
    close();
  }

  void close() {
    if (closed) return;
    closed = true;
    std::error_code ignored;
    client.close(ignored);
    server.close(ignored);
    up.wake.cancel();
    down.wake.cancel();
  }

  asio::ip::tcp::socket client;
  asio::ip::tcp::socket server;
  std::chrono::milliseconds delay;
  direction up;    // client -> server
  direction down;  // server -> client
  int finished = 0;
  bool closed = false;
};

delay_proxy::delay_proxy(asio::io_context& io, const asio::ip::tcp::endpoint& listen,
                         asio::ip::tcp::endpoint target, std::chrono::milliseconds delay)
    : io_(io), acceptor_(io, listen), target_(std::move(target)), delay_(delay) {}

delay_proxy::~delay_proxy() {
  stop();
}

void delay_proxy::start() {
  accept();
}

void delay_proxy::accept() {
  acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
    if (ec) return;  // closed by stop()
    ++accepted_;
    auto s = std::make_shared<session>(std::move(socket), delay_);
    std::erase_if(sessions_, [](const std::weak_ptr<session>& w) { return w.expired(); });
    sessions_.push_back(s);
    asio::co_spawn(io_, s->run(target_), asio::detached);
    accept();
  });
}

void delay_proxy::stop() {
  std::error_code ignored;
  acceptor_.close(ignored);
  for (auto& w : sessions_)
    if (auto s = w.lock()) s->close();
  sessions_.clear();
}

}  // namespace galaxies::test
