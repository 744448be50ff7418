// galaxies' own log lines go to stderr from a writer thread, so that a loop that logs never waits
// for the descriptor. Processes sharing one log file queue on its position lock, for seconds on a
// loaded machine (bench/RESULTS.md, "Logging off the loop"), long enough for a master's peers to
// miss its heartbeats; a pipe nobody reads would hold a synchronous writer for good.
//
// Lines are formatted by the thread that logs, in the order it logs them, and queued up to a
// bound. A line that does not fit is dropped and counted, and a warning saying how many were
// dropped goes out just before the next line that fits. Critical records and stop() wait (bounded)
// for the queue to be written, so a process's last words are not lost on its way out.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

namespace galaxies::host {

class async_fd_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  struct settings {
    std::size_t max_queued_bytes = std::size_t{1} << 20;
    std::chrono::milliseconds drain_on_stop{2000};   // stop() then gives up what is left
    std::chrono::milliseconds drain_on_flush{1000};  // flush() then returns
  };

  // The descriptor is not owned; it must stay open while the sink lives.
  async_fd_sink(int fd, settings s);
  ~async_fd_sink() override;
  async_fd_sink(const async_fd_sink&) = delete;
  async_fd_sink& operator=(const async_fd_sink&) = delete;

  // From now on lines go through the queue, to a writer thread started with the first of them:
  // a process that logs nothing (most workers) stays single-threaded, and keeps glibc's
  // single-thread fast paths. Before, and after stop(), the thread that logs writes its line
  // itself, as it does when no thread can be started. fork_server.hpp forks only while a process
  // has one thread, so this comes after it. Returns false, and stays synchronous, while a writer
  // stop() gave up on may still be in its write().
  bool start();
  // Writes what is queued, for up to drain_on_stop, and ends the thread; lines it could not
  // write count as dropped. Records logged meanwhile wait, so the order is kept.
  void stop();

  std::uint64_t lines_dropped() const noexcept;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  struct shared;  // what the writer thread holds: it may outlive the sink (stop() on a stuck fd)

  // Queues the lines, or writes them when no writer runs; false when they were not taken.
  bool put(std::string_view lines);
  bool launch_writer();

  std::shared_ptr<shared> shared_;
  settings settings_;
  std::thread writer_;
  bool wanted_ = false;           // start() was called; guarded by base_sink's mutex_
  bool running_ = false;          // the writer thread runs; mutex_ too
  std::uint64_t unreported_ = 0;  // dropped lines no warning has named yet; mutex_ too
};

namespace detail {
// The longest prefix of `text` made of whole lines and at most `max` bytes long (or its first
// line, however long): one write to a pipe of at most PIPE_BUF bytes is never interleaved with
// other processes' writes, so no line is torn.
std::size_t whole_lines_within(std::string_view text, std::size_t max) noexcept;
}  // namespace detail

}  // namespace galaxies::host
