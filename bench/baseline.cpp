#include "baseline.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace galaxies::bench {
namespace {

constexpr std::size_t prefix_size = 4;
constexpr std::size_t batch_bytes = 64 * 1024;  // one writer batch, as a link's read buffer
constexpr std::size_t read_size = 64 * 1024;

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

class fd_guard {
 public:
  explicit fd_guard(int fd = -1) : fd_(fd) {}
  fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  fd_guard& operator=(fd_guard&&) = delete;
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct tcp_pair {
  fd_guard client;
  fd_guard server;
};

tcp_pair connect_loopback() {
  fd_guard listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  if (::listen(listener.get(), 1) != 0) fail("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail("getsockname");
  fd_guard client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client.get() < 0) fail("socket");
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    fail("connect");
  fd_guard server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (server.get() < 0) fail("accept");
  const int one = 1;
  for (int fd : {client.get(), server.get()})
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("TCP_NODELAY");
  return {std::move(client), std::move(server)};
}

void write_all(int fd, const std::vector<char>& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("send");
    done += static_cast<std::size_t>(n);
  }
}

void append_message(std::vector<char>& out, const std::vector<char>& payload) {
  const std::uint32_t size = htonl(static_cast<std::uint32_t>(payload.size()));
  const std::size_t at = out.size();
  out.resize(at + prefix_size + payload.size());
  std::memcpy(out.data() + at, &size, prefix_size);
  std::memcpy(out.data() + at + prefix_size, payload.data(), payload.size());
}

// Accumulates a byte stream and hands out complete length-prefixed messages.
class message_reader {
 public:
  message_reader() : buffer_(read_size * 2) {}

  // One read(2); false at EOF.
  bool read_from(int fd) {
    if (begin_ > 0 && buffer_.size() - end_ < read_size) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buffer_.size() - end_ < read_size) buffer_.resize(end_ + read_size);
    for (;;) {
      const ssize_t n = ::read(fd, buffer_.data() + end_, buffer_.size() - end_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("read");
      end_ += static_cast<std::size_t>(n);
      return n > 0;
    }
  }

  // Calls fn(payload pointer, size) for each complete message buffered.
  template <class Fn>
  void for_each_message(Fn&& fn) {
    while (end_ - begin_ >= prefix_size) {
      std::uint32_t size = 0;
      std::memcpy(&size, buffer_.data() + begin_, prefix_size);
      size = ntohl(size);
      if (end_ - begin_ < prefix_size + size) return;
      fn(buffer_.data() + begin_ + prefix_size, std::size_t{size});
      begin_ += prefix_size + size;
    }
  }

 private:
  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace

throughput_result baseline_throughput(const test_spec& spec) {
  tcp_pair pair = connect_loopback();
  const auto window_end = clock::now() + std::chrono::milliseconds(spec.window_ms);
  const std::vector<char> payload(spec.payload, 'x');
  const std::size_t per_batch =
      std::max<std::size_t>(1, batch_bytes / (prefix_size + spec.payload));
  std::uint64_t sent = 0;
  std::exception_ptr writer_error;

  std::thread writer([&] {
    try {
      std::vector<char> batch;
      batch.reserve(per_batch * (prefix_size + spec.payload));
      while (clock::now() < window_end) {
        batch.clear();
        for (std::size_t i = 0; i < per_batch; ++i) append_message(batch, payload);
        write_all(pair.client.get(), batch);
        sent += per_batch;
      }
    } catch (...) {
      writer_error = std::current_exception();
    }
    ::shutdown(pair.client.get(), SHUT_WR);
  });

  throughput_result out;
  clock::time_point first_arrival{};
  clock::time_point last_arrival{};
  message_reader reader;
  try {
    while (reader.read_from(pair.server.get())) {
      const auto before = out.arrived;
      reader.for_each_message([&](const char*, std::size_t) { ++out.arrived; });
      if (out.arrived == before) continue;
      last_arrival = clock::now();
      if (before == 0) first_arrival = last_arrival;
    }
  } catch (...) {
    ::shutdown(pair.server.get(), SHUT_RDWR);  // unblocks the writer
    writer.join();
    throw;
  }
  writer.join();
  if (writer_error) std::rethrow_exception(writer_error);
  out.sent = sent;
  if (out.arrived > 1)
    out.seconds = std::chrono::duration<double>(last_arrival - first_arrival).count();
  out.msgs_per_s = out.seconds > 0 ? static_cast<double>(out.arrived) / out.seconds : 0;
  return out;
}

latency_result baseline_latency(const test_spec& spec) {
  tcp_pair pair = connect_loopback();
  std::exception_ptr server_error;

  // The echo end: every complete request of one read is answered in one write.
  std::thread server([&] {
    try {
      message_reader reader;
      std::vector<char> replies;
      std::vector<char> payload;
      while (reader.read_from(pair.server.get())) {
        replies.clear();
        reader.for_each_message([&](const char* data, std::size_t size) {
          payload.assign(data, data + size);
          append_message(replies, payload);
        });
        if (!replies.empty()) write_all(pair.server.get(), replies);
      }
    } catch (...) {
      server_error = std::current_exception();
    }
    ::shutdown(pair.server.get(), SHUT_WR);
  });

  const std::vector<char> payload(spec.payload, 'x');
  const auto start = clock::now();
  const auto deadline = start + std::chrono::milliseconds(spec.window_ms);
  std::deque<clock::time_point> sent_at;  // FIFO: replies come back in request order
  std::vector<std::int64_t> samples;
  samples.reserve(1 << 16);
  std::vector<char> requests;
  message_reader reader;
  try {
    for (int i = 0; i < spec.inflight; ++i) {
      append_message(requests, payload);
      sent_at.push_back(clock::now());
    }
    write_all(pair.client.get(), requests);
    while (!sent_at.empty() && reader.read_from(pair.client.get())) {
      requests.clear();
      reader.for_each_message([&](const char*, std::size_t) {
        const auto now = clock::now();
        samples.push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at.front()).count());
        sent_at.pop_front();
        if (now < deadline) {
          append_message(requests, payload);
          sent_at.push_back(now);
        }
      });
      if (!requests.empty()) write_all(pair.client.get(), requests);
    }
  } catch (...) {
    ::shutdown(pair.client.get(), SHUT_RDWR);
    server.join();
    throw;
  }
  const auto elapsed = clock::now() - start;
  ::shutdown(pair.client.get(), SHUT_WR);
  server.join();
  if (server_error) std::rethrow_exception(server_error);
  return summarize(samples, 0, elapsed);
}

}  // namespace galaxies::bench
