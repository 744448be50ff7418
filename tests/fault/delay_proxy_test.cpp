// The delay proxy on loopback: everything it relays arrives, in order, and no earlier than the
// delay each way; the end of a stream is passed on.
#include "delay_proxy.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <string>

namespace galaxies::test {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
const asio::ip::tcp::endpoint any_loopback{asio::ip::address_v4::loopback(), 0};

// An echo server on loopback: writes back whatever it reads, shuts down after EOF.
class echo_server {
 public:
  explicit echo_server(asio::io_context& io) : acceptor_(io, any_loopback) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  asio::ip::tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

 private:
  asio::awaitable<void> serve() {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (ec) co_return;
    char buffer[4096];
    while (true) {
      auto [read_error, n] = co_await socket.async_read_some(asio::buffer(buffer), use_tuple);
      if (read_error) break;
      auto [write_error, m] =
          co_await asio::async_write(socket, asio::buffer(buffer, n), use_tuple);
      if (write_error) co_return;
    }
    socket.shutdown(asio::socket_base::shutdown_send, ec);
  }

  asio::ip::tcp::acceptor acceptor_;
};

struct round_trip {
  std::string received;
  clock::duration first_byte{};
  bool eof = false;
  bool done = false;
};

// Connects to `to`, writes `chunks` one by one, shuts down, reads everything back until EOF.
asio::awaitable<void> talk(asio::ip::tcp::endpoint to, std::vector<std::string> chunks,
                           round_trip& out) {
  asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
  auto [ec] = co_await socket.async_connect(to, use_tuple);
  if (ec) {
    out.done = true;
    co_return;
  }
  const auto start = clock::now();
  for (const auto& c : chunks) co_await asio::async_write(socket, asio::buffer(c), use_tuple);
  socket.shutdown(asio::socket_base::shutdown_send, ec);
  char buffer[4096];
  while (true) {
    auto [read_error, n] = co_await socket.async_read_some(asio::buffer(buffer), use_tuple);
    if (read_error) {
      out.eof = read_error == asio::error::eof;
      break;
    }
    if (out.received.empty()) out.first_byte = clock::now() - start;
    out.received.append(buffer, n);
  }
  out.done = true;
}

TEST(delay_proxy, holds_every_chunk_the_delay_each_way_and_keeps_the_order) {
  asio::io_context io(1);
  echo_server server(io);
  delay_proxy proxy(io, any_loopback, server.endpoint(), 100ms);
  proxy.start();

  std::vector<std::string> chunks;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    chunks.push_back(std::to_string(i) + ",");
    expected += chunks.back();
  }
  round_trip result;
  asio::co_spawn(io, talk(proxy.local_endpoint(), chunks, result), asio::detached);
  const auto until = clock::now() + 10s;
  while (!result.done && clock::now() < until) io.run_one_for(50ms);

  ASSERT_TRUE(result.done);
  EXPECT_EQ(result.received, expected);
  EXPECT_TRUE(result.eof) << "the end of the stream was not passed on";
  EXPECT_GE(result.first_byte, 200ms) << "100 ms each way";
  EXPECT_EQ(proxy.accepted(), 1u);
  std::printf("[delay_proxy] first byte back after %.1f ms\n",
              std::chrono::duration<double, std::milli>(result.first_byte).count());
}

TEST(delay_proxy, a_connection_to_a_closed_target_is_closed) {
  asio::io_context io(1);
  asio::ip::tcp::endpoint closed;
  {
    asio::ip::tcp::acceptor probe(io, any_loopback);
    closed = probe.local_endpoint();
  }
  delay_proxy proxy(io, any_loopback, closed, 10ms);
  proxy.start();
  round_trip result;
  asio::co_spawn(io, talk(proxy.local_endpoint(), {"x"}, result), asio::detached);
  const auto until = clock::now() + 10s;
  while (!result.done && clock::now() < until) io.run_one_for(50ms);
  ASSERT_TRUE(result.done);
  EXPECT_EQ(result.received, "");
}

}  // namespace
}  // namespace galaxies::test
