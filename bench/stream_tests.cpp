#include "stream_tests.hpp"

#include <sys/socket.h>

#include <deque>
#include <exception>
#include <thread>

namespace galaxies::bench {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t batch_bytes = 64 * 1024;  // one writer batch, as a link's read buffer
// Longer than any window: a blocked read or write past this means the other end is gone.
constexpr auto stall_limit = 10s;

void send_for_window(int fd, const test_spec& spec, clock::time_point window_end,
                     std::uint64_t& sent) {
  const std::vector<char> payload(spec.payload, 'x');
  const std::size_t per_batch =
      std::max<std::size_t>(1, batch_bytes / (prefix_size + spec.payload));
  std::vector<char> batch;
  batch.reserve(per_batch * (prefix_size + spec.payload));
  for (std::size_t i = 0; i < per_batch; ++i) append_message(batch, payload);
  while (clock::now() < window_end) {
    write_all(fd, batch);
    sent += per_batch;
  }
}

// Counts until end of stream.
void count_arrivals(int fd, throughput_result& out) {
  message_reader reader;
  while (reader.read_from(fd)) {
    const auto before = out.arrived;
    reader.for_each_message([&](const char*, std::size_t) { ++out.arrived; });
    if (out.arrived == before) continue;
    out.last_arrival_ns = to_ns(clock::now());
    if (before == 0) out.first_arrival_ns = out.last_arrival_ns;
  }
}

// Runs fn() on a thread, keeping its exception for join().
class worker_thread {
 public:
  template <class Fn>
  explicit worker_thread(Fn fn)
      : thread_([this, fn = std::move(fn)]() mutable {
          try {
            fn();
          } catch (...) {
            error_ = std::current_exception();
          }
        }) {}
  ~worker_thread() {
    if (thread_.joinable()) thread_.join();
  }
  void join() {
    thread_.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace

throughput_result stream_throughput(std::vector<stream_pair>& pairs, const test_spec& spec) {
  const auto window_end = clock::now() + std::chrono::milliseconds(spec.window_ms);
  std::vector<throughput_result> results(pairs.size());
  std::vector<std::unique_ptr<worker_thread>> threads;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const int out_fd = pairs[i].sender.get();
    const int in_fd = pairs[i].receiver.get();
    set_io_timeout(out_fd, stall_limit);
    set_io_timeout(in_fd, stall_limit);
    auto& result = results[i];
    threads.push_back(std::make_unique<worker_thread>([out_fd, &spec, window_end, &result] {
      try {
        send_for_window(out_fd, spec, window_end, result.sent);
      } catch (...) {
        ::shutdown(out_fd, SHUT_RDWR);
        throw;
      }
      ::shutdown(out_fd, SHUT_WR);
    }));
    threads.push_back(std::make_unique<worker_thread>([in_fd, &result] {
      try {
        count_arrivals(in_fd, result);
      } catch (...) {
        ::shutdown(in_fd, SHUT_RDWR);  // unblocks the writer
        throw;
      }
    }));
  }
  std::exception_ptr first_error;
  for (auto& t : threads) {
    try {
      t->join();
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
  for (auto& r : results) compute_rate(r);
  return combine(results);
}

latency_result stream_latency(stream_pair& pair, const test_spec& spec) {
  const int client = pair.sender.get();
  const int echo = pair.receiver.get();
  set_io_timeout(client, stall_limit);
  set_io_timeout(echo, stall_limit);

  // The echo end: every complete request of one read is answered in one write.
  worker_thread server([echo] {
    message_reader reader;
    std::vector<char> replies;
    std::vector<char> payload;
    try {
      while (reader.read_from(echo)) {
        replies.clear();
        reader.for_each_message([&](const char* data, std::size_t size) {
          payload.assign(data, data + size);
          append_message(replies, payload);
        });
        if (!replies.empty()) write_all(echo, replies);
      }
    } catch (...) {
      ::shutdown(echo, SHUT_RDWR);
      throw;
    }
    ::shutdown(echo, SHUT_WR);
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
    write_all(client, requests);
    while (!sent_at.empty() && reader.read_from(client)) {
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
      if (!requests.empty()) write_all(client, requests);
    }
  } catch (...) {
    ::shutdown(client, SHUT_RDWR);
    server.join();
    throw;
  }
  const auto elapsed = clock::now() - start;
  ::shutdown(client, SHUT_WR);
  server.join();
  return summarize(samples, sent_at.size(), elapsed);
}

}  // namespace galaxies::bench
