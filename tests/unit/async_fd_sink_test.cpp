// galaxies' stderr sink, on a pipe: lines arrive whole and in order; a reader that stops never
// holds the thread that logs, and what was dropped meanwhile is counted and then said; stop()
// writes what is queued, gives up on a stuck reader after its deadline, and leaves no thread.
#include "host/async_fd_sink.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "process/proc_tasks.hpp"
#include "support/eventually.hpp"

namespace galaxies::host {
namespace {

using namespace std::chrono_literals;
using detail::whole_lines_within;

TEST(whole_lines_within, takes_whole_lines_up_to_the_bound) {
  EXPECT_EQ(whole_lines_within("ab\ncd\nef\n", 6), 6u);
  EXPECT_EQ(whole_lines_within("ab\ncd\nef\n", 8), 6u);
  EXPECT_EQ(whole_lines_within("ab\ncd\nef\n", 100), 9u);
  EXPECT_EQ(whole_lines_within("ab\ncd\n", 3), 3u);
}

TEST(whole_lines_within, a_first_line_longer_than_the_bound_goes_whole) {
  EXPECT_EQ(whole_lines_within("abcdef\ng\n", 3), 7u);
  EXPECT_EQ(whole_lines_within("abcdef", 3), 6u);  // no newline: all of it
  EXPECT_EQ(whole_lines_within("", 3), 0u);
}

// A sink on a pipe's write end, behind a logger that prints the bare message.
class async_fd_sink_test : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end_ = base::unique_fd(fds[0]);
    write_end_ = base::unique_fd(fds[1]);
  }

  std::shared_ptr<spdlog::logger> logger_on(async_fd_sink::settings s) {
    sink_ = std::make_shared<async_fd_sink>(write_end_.get(), s);
    auto logger = std::make_shared<spdlog::logger>("test", sink_);
    logger->set_pattern("%v");
    return logger;
  }

  // Everything the pipe holds now, without waiting for more.
  std::string read_available() {
    const int flags = ::fcntl(read_end_.get(), F_GETFL);
    ::fcntl(read_end_.get(), F_SETFL, flags | O_NONBLOCK);
    std::string out;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::read(read_end_.get(), buffer, sizeof buffer);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    ::fcntl(read_end_.get(), F_SETFL, flags);
    return out;
  }

  // Fills the pipe so that the next write would block.
  void fill_pipe() {
    const int flags = ::fcntl(write_end_.get(), F_GETFL);
    ::fcntl(write_end_.get(), F_SETFL, flags | O_NONBLOCK);
    const std::string block(4096, 'x');
    while (::write(write_end_.get(), block.data(), block.size()) > 0) {
    }
    ::fcntl(write_end_.get(), F_SETFL, flags);
  }

  static std::size_t threads() { return process::threads_of(::getpid()).size(); }

  base::unique_fd read_end_;
  base::unique_fd write_end_;
  std::shared_ptr<async_fd_sink> sink_;
};

TEST_F(async_fd_sink_test, lines_arrive_in_order_from_one_thread_started_with_the_first) {
  const std::size_t before = threads();
  auto logger = logger_on({});
  ASSERT_TRUE(sink_->start());
  EXPECT_EQ(threads(), before) << "the writer starts with the first line, not before";
  logger->info("first");
  EXPECT_EQ(threads(), before + 1);
  std::string expected = "first\n";
  for (int i = 0; i < 2000; ++i) {
    logger->info("line {}", i);
    expected += "line " + std::to_string(i) + "\n";
  }
  sink_->stop();
  EXPECT_EQ(threads(), before);  // fork_server.hpp needs one thread at the next run()
  EXPECT_EQ(read_available(), expected);
  EXPECT_EQ(sink_->lines_dropped(), 0u);
}

TEST_F(async_fd_sink_test, without_a_writer_the_caller_writes_its_line_at_once) {
  auto logger = logger_on({});
  logger->info("before start");
  EXPECT_EQ(read_available(), "before start\n");
  ASSERT_TRUE(sink_->start());
  sink_->stop();
  logger->info("after stop");
  EXPECT_EQ(read_available(), "after stop\n");
  ASSERT_TRUE(sink_->start());  // a second run() in the same process
  logger->info("again");
  sink_->stop();
  EXPECT_EQ(read_available(), "again\n");
}

TEST_F(async_fd_sink_test, flush_returns_once_every_queued_line_is_written) {
  auto logger = logger_on({.drain_on_flush = 60s});
  ASSERT_TRUE(sink_->start());
  std::string expected;
  for (int i = 0; i < 500; ++i) {
    logger->warn("record {}", i);
    expected += "record " + std::to_string(i) + "\n";
  }
  logger->flush();
  EXPECT_EQ(read_available(), expected);
  sink_->stop();
}

TEST_F(async_fd_sink_test, a_reader_that_stopped_never_holds_the_logger_and_drops_are_said) {
  auto logger = logger_on({.max_queued_bytes = 4096, .drain_on_stop = 60s, .drain_on_flush = 60s});
  ASSERT_TRUE(sink_->start());
  fill_pipe();
  // Far more than the pipe and the queue hold. Synchronously written, this would block for good.
  auto flood = std::async(std::launch::async, [&] {
    for (int i = 0; i < 20000; ++i) logger->info("flood {:0>90}", i);
  });
  ASSERT_EQ(flood.wait_for(60s), std::future_status::ready) << "logging waited for the reader";
  const std::uint64_t dropped = sink_->lines_dropped();
  EXPECT_GT(dropped, 0u);

  // The reader comes back: everything queued is written, then the warning, then the next line.
  std::string seen;
  auto reader = std::async(std::launch::async, [&] {
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::read(read_end_.get(), buffer, sizeof buffer);
      if (n <= 0) return;
      seen.append(buffer, static_cast<std::size_t>(n));
    }
  });
  logger->flush();  // the queue written: room again
  logger->info("after");
  sink_->stop();
  write_end_.reset();  // EOF for the reader
  ASSERT_EQ(reader.wait_for(60s), std::future_status::ready);

  // Whole flood lines in order; each run of drops is said, with its count, before the next line
  // that went out, which is "after" at last.
  const std::string said = " dropped: stderr could not take them as fast as they came";
  std::size_t at = seen.find("flood ");
  ASSERT_NE(at, std::string::npos);
  int last = -1;
  std::uint64_t written = 0;
  std::uint64_t dropped_as_said = 0;
  bool said_last = false;
  std::string last_line;
  while (at < seen.size()) {
    const std::size_t end = seen.find('\n', at);
    ASSERT_NE(end, std::string::npos);
    last_line = seen.substr(at, end - at);
    at = end + 1;
    if (last_line.ends_with(said)) {
      EXPECT_FALSE(said_last) << "two warnings in a row";
      const std::uint64_t n = std::stoull(last_line);
      EXPECT_EQ(last_line,
                std::to_string(n) + (n == 1 ? " log line was" : " log lines were") + said);
      dropped_as_said += n;
      said_last = true;
      continue;
    }
    said_last = false;
    if (last_line == "after") break;
    ASSERT_EQ(last_line.size(), 96u) << last_line;
    ASSERT_EQ(last_line.substr(0, 6), "flood ");
    const int i = std::stoi(last_line.substr(6));
    EXPECT_GT(i, last);
    last = i;
    ++written;
  }
  EXPECT_EQ(last_line, "after");
  EXPECT_EQ(at, seen.size());
  EXPECT_EQ(dropped_as_said, dropped);
  EXPECT_EQ(written + dropped, 20000u);
  EXPECT_EQ(sink_->lines_dropped(), dropped);
}

TEST_F(async_fd_sink_test, stop_gives_up_on_a_stuck_reader_after_its_deadline) {
  auto logger = logger_on({.drain_on_stop = 200ms});
  ASSERT_TRUE(sink_->start());
  fill_pipe();
  for (int i = 0; i < 10; ++i) logger->info("stuck {}", i);
  auto stopping = std::async(std::launch::async, [&] { sink_->stop(); });
  ASSERT_EQ(stopping.wait_for(60s), std::future_status::ready) << "stop() waited for the reader";
  EXPECT_FALSE(sink_->start()) << "its writer may still be in write()";
  // The writer, between polls of the full pipe, sees it gave up: what it held counts as dropped.
  EXPECT_TRUE(test::eventually(60s, [&] { return sink_->lines_dropped() == 10; }))
      << sink_->lines_dropped();
}

}  // namespace
}  // namespace galaxies::host
