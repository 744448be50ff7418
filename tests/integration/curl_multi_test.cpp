// The Asio-driven libcurl client against a tiny HTTP server in the same io_context, on
// 127.0.0.1 port 0: replies, HTTP errors, refused connections, bounded timeouts, streamed chunks,
// a server closing mid-stream, cancellation and destruction with requests in flight (silent), and
// close-on-exec on every socket the client owns; and libcurl loaded only by the first client.
// Every wait is bounded.
#include "registry/http/curl_multi.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "loopback_http_server.hpp"
#include "registry/http/curl_library.hpp"
#include "support/eventually.hpp"

namespace galaxies::registry::http {
namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;

constexpr auto deadline = 5s;

// Answers by path: /echo (200 with the request body), /missing (404), /silent (never answers),
// /big (a 4 KiB body), /stream (chunked; the test pushes chunks and ends or cuts the stream).
class test_server {
 public:
  explicit test_server(asio::io_context& io)
      : http_(io, [this](const auto& x, const std::string& path, const std::string& body) {
          answer(x, path, body);
        }) {}

  std::string url(const std::string& path) const { return http_.url(path); }
  std::size_t requests() const { return http_.requests(); }
  std::size_t open_streams() const { return streams_.size(); }
  std::set<int> fds() { return http_.fds(); }

  void push(const std::string& data) {
    for (const auto& x : streams_) x->push(data);
  }
  void end_streams() {
    for (const auto& x : streams_) x->end();
    streams_.clear();
  }
  void cut_streams() {
    for (const auto& x : streams_) x->cut();
    streams_.clear();
  }

 private:
  using exchange_ptr = galaxies::test::loopback_http_server::exchange_ptr;

  void answer(const exchange_ptr& x, const std::string& path, const std::string& body) {
    if (path == "/echo") return x->reply(200, body);
    if (path == "/missing") return x->reply(404, "Not Found");
    if (path == "/big") return x->reply(200, std::string(4096, 'x'));
    if (path == "/stream") {
      streams_.push_back(x);
      return x->start_stream();
    }
    silent_.push_back(x);  // /silent: keep the connection open and say nothing
  }

  galaxies::test::loopback_http_server http_;
  std::vector<exchange_ptr> streams_;
  std::vector<exchange_ptr> silent_;
};

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = deadline) {
  return galaxies::test::run_until(io, done, limit);
}

void run_for(asio::io_context& io, std::chrono::milliseconds span) {
  run_until(
      io, [] { return false; }, span);
}

class CurlMulti : public ::testing::Test {
 protected:
  asio::io_context io;
  test_server server{io};
};

// Whether libcurl is mapped into this process.
bool libcurl_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/libcurl.so") != std::string::npos) return true;
  return false;
}

// A process that never makes an HTTP client (every worker; a master on the file or Redis registry)
// never maps libcurl and the libraries it needs; the first client loads it.
TEST(CurlLibrary, IsLoadedByTheFirstClientOnly) {
  if (curl_if_loaded())
    GTEST_SKIP() << "an earlier test in this process loaded it (ctest runs each test alone)";
  EXPECT_FALSE(libcurl_mapped()) << "loaded when the program started";
  asio::io_context io;
  { client http(io.get_executor()); }
  EXPECT_TRUE(libcurl_mapped());
  EXPECT_NE(curl_if_loaded(), nullptr);
}

TEST_F(CurlMulti, PostReturnsStatusAndBody) {
  client http(io.get_executor());
  std::optional<result> got;
  http.post(server.url("/echo"), R"({"TTL":"5"})", 2s, [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_FALSE(got->ec) << got->detail;
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, R"({"TTL":"5"})");
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(CurlMulti, ManyRequestsAtOnce) {
  client http(io.get_executor());
  std::vector<std::string> bodies(20);
  std::size_t done = 0;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    http.post(server.url("/echo"), "body " + std::to_string(i), 2s, [&, i](result r) {
      EXPECT_FALSE(r.ec) << r.detail;
      bodies[i] = r.body;
      ++done;
    });
  }
  ASSERT_TRUE(run_until(io, [&] { return done == bodies.size(); }));
  for (std::size_t i = 0; i < bodies.size(); ++i) EXPECT_EQ(bodies[i], "body " + std::to_string(i));
}

TEST_F(CurlMulti, HttpErrorIsAnAnswerNotATransportFailure) {
  client http(io.get_executor());
  std::optional<result> got;
  http.post(server.url("/missing"), "{}", 2s, [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_FALSE(got->ec);
  EXPECT_EQ(got->status, 404);
  EXPECT_EQ(got->body, "Not Found");
}

TEST_F(CurlMulti, RefusedConnectionIsReportedAtOnce) {
  std::uint16_t port = 0;
  {
    tcp::acceptor closed(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }
  client http(io.get_executor());
  std::optional<result> got;
  const auto started = std::chrono::steady_clock::now();
  http.post("http://127.0.0.1:" + std::to_string(port) + "/echo", "{}", 2s,
            [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(got->ec, curl_error(7));  // CURLE_COULDNT_CONNECT
  EXPECT_EQ(got->detail, "Connection refused");
  EXPECT_EQ(got->status, 0);
}

TEST_F(CurlMulti, TimeoutIsBounded) {
  client http(io.get_executor());
  std::optional<result> got;
  const auto started = std::chrono::steady_clock::now();
  http.post(server.url("/silent"), "{}", 300ms, [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(got->ec, curl_error(28));  // CURLE_OPERATION_TIMEDOUT
  EXPECT_FALSE(got->detail.empty());
}

TEST_F(CurlMulti, ReplyLargerThanTheLimitFails) {
  client http(io.get_executor(), client::settings{.max_body = 1000});
  std::optional<result> got;
  http.post(server.url("/big"), "{}", 2s, [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_EQ(got->ec, errc::reply_too_large);
}

TEST_F(CurlMulti, StreamDeliversChunksInOrderAndEndsWithAnError) {
  client http(io.get_executor());
  std::string received;
  std::optional<result> got;
  http.stream(
      server.url("/stream"), "{}", [&](std::string_view chunk) { received += chunk; },
      [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return server.open_streams() == 1; }));
  server.push("{\"a\":1}\n");
  ASSERT_TRUE(run_until(io, [&] { return received == "{\"a\":1}\n"; }));
  server.push("{\"b\":");
  server.push("2}\n");
  ASSERT_TRUE(run_until(io, [&] { return received == "{\"a\":1}\n{\"b\":2}\n"; }));
  EXPECT_FALSE(got.has_value());
  server.end_streams();
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_EQ(got->ec, errc::stream_closed);
  EXPECT_EQ(got->status, 200);
}

TEST_F(CurlMulti, ServerClosingMidStreamEndsItWithAnError) {
  client http(io.get_executor());
  std::string received;
  std::optional<result> got;
  http.stream(
      server.url("/stream"), "{}", [&](std::string_view chunk) { received += chunk; },
      [&](result r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return server.open_streams() == 1; }));
  server.push("partial");
  ASSERT_TRUE(run_until(io, [&] { return received == "partial"; }));
  server.cut_streams();
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_TRUE(got->ec);
  EXPECT_NE(got->ec, errc::stream_closed);  // cut, not ended
  EXPECT_EQ(received, "partial");           // every byte that arrived came before the end
}

TEST_F(CurlMulti, CancelSilencesPostsAndStreams) {
  client http(io.get_executor());
  int calls = 0;
  const auto post = http.post(server.url("/silent"), "{}", 300ms, [&](result) { ++calls; });
  const auto stream = http.stream(
      server.url("/stream"), "{}", [&](std::string_view) { ++calls; }, [&](result) { ++calls; });
  ASSERT_TRUE(run_until(io, [&] { return server.open_streams() == 1 && server.requests() == 2; }));
  EXPECT_TRUE(http.cancel(post));
  server.push("data\n");
  EXPECT_TRUE(http.cancel(stream));
  EXPECT_FALSE(http.cancel(stream));
  run_for(io, 500ms);  // past the post's timeout
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(CurlMulti, CancelFromInsideTheChunkHandler) {
  client http(io.get_executor());
  client::request_id id = 0;
  int chunks = 0;
  bool done = false;
  id = http.stream(
      server.url("/stream"), "{}",
      [&](std::string_view) {
        ++chunks;
        http.cancel(id);
      },
      [&](result) { done = true; });
  ASSERT_TRUE(run_until(io, [&] { return server.open_streams() == 1; }));
  server.push("one\n");
  ASSERT_TRUE(run_until(io, [&] { return chunks == 1; }));
  server.push("two\n");
  server.end_streams();
  run_for(io, 200ms);
  EXPECT_EQ(chunks, 1);
  EXPECT_FALSE(done);
}

TEST_F(CurlMulti, DestructionWithRequestsInFlightIsSilent) {
  auto http = std::make_unique<client>(io.get_executor());
  int calls = 0;
  http->post(server.url("/silent"), "{}", 300ms, [&](result) { ++calls; });
  http->post(server.url("/echo"), "{}", 2s, [&](result) { ++calls; });
  http->stream(
      server.url("/stream"), "{}", [&](std::string_view) { ++calls; }, [&](result) { ++calls; });
  ASSERT_TRUE(run_until(io, [&] { return server.open_streams() == 1; }));
  server.push("data\n");
  http.reset();
  run_for(io, 500ms);
  EXPECT_EQ(calls, 0);
}

TEST_F(CurlMulti, DestructionFromInsideAHandler) {
  auto http = std::make_unique<client>(io.get_executor());
  int chunks = 0;
  http->stream(
      server.url("/stream"), "{}",
      [&](std::string_view) {
        ++chunks;
        http.reset();
      },
      [&](result) { ADD_FAILURE() << "done after destruction"; });
  ASSERT_TRUE(run_until(io, [&] { return server.open_streams() == 1; }));
  server.push("one\n");
  ASSERT_TRUE(run_until(io, [&] { return chunks == 1; }));
  server.push("two\n");
  server.cut_streams();
  run_for(io, 200ms);
  EXPECT_EQ(chunks, 1);
}

// Workers are fork+exec'd from the master: no descriptor of the client may leak into them.
std::set<int> open_fds() {
  std::set<int> out;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return out;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != ::dirfd(dir)) {
      out.insert(std::atoi(entry->d_name));
    }
  }
  ::closedir(dir);
  return out;
}

TEST_F(CurlMulti, EverySocketIsCloseOnExec) {
  // Descriptors inherited from whoever started the test are not the client's business.
  const auto before = open_fds();
  client http(io.get_executor());
  std::optional<result> echoed;
  http.post(server.url("/echo"), "{}", 2s, [&](result r) { echoed = std::move(r); });
  http.stream(
      server.url("/stream"), "{}", [](std::string_view) {}, [](result) {});
  ASSERT_TRUE(run_until(io, [&] { return echoed.has_value() && server.open_streams() == 1; }));

  const auto server_fds = server.fds();
  std::vector<std::string> leaking;
  std::size_t sockets = 0;
  for (const int fd : open_fds()) {
    if (before.count(fd) || server_fds.count(fd)) continue;
    char target[256] = {};
    const auto path = "/proc/self/fd/" + std::to_string(fd);
    if (::readlink(path.c_str(), target, sizeof target - 1) < 0) continue;
    if (std::string_view(target).starts_with("socket:")) ++sockets;
    // curl's connections and its wake-up socketpair alike.
    if (!(::fcntl(fd, F_GETFD) & FD_CLOEXEC)) leaking.push_back(std::to_string(fd) + " " + target);
  }
  EXPECT_GE(sockets, 2u);  // at least the stream's connection and the one the post used
  EXPECT_TRUE(leaking.empty()) << ::testing::PrintToString(leaking);
}

}  // namespace
}  // namespace galaxies::registry::http
