#include "host/async_fd_sink.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <string>
#include <system_error>
#include <thread>

namespace galaxies::host {

namespace detail {
std::size_t whole_lines_within(std::string_view text, std::size_t max) noexcept {
  const std::size_t first_end = text.find('\n');
  if (first_end == std::string_view::npos) return text.size();
  if (first_end + 1 >= max) return first_end + 1;
  const std::size_t last_end = text.substr(0, max).rfind('\n');
  return last_end + 1;
}
}  // namespace detail

namespace {

// Writes `text` to fd; returns how much was written. A regular file takes it in one write, which
// its position lock keeps whole; a pipe, socket or terminal in pieces of whole lines that fit
// PIPE_BUF, each after poll() finds room, so that a reader that stopped cannot hold the writer
// past `give_up` (checked every 100 ms).
template <class GiveUp>
std::size_t write_lines(int fd, std::string_view text, GiveUp give_up) {
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  std::size_t done = 0;
  while (done < text.size()) {
    if (!regular) {
      pollfd p{fd, POLLOUT, 0};
      const int ready = ::poll(&p, 1, 100);
      if (ready < 0 && errno != EINTR) return done;
      if (ready <= 0) {
        if (give_up()) return done;
        continue;
      }
      if ((p.revents & (POLLERR | POLLNVAL)) != 0) return done;
    }
    const std::string_view rest = text.substr(done);
    const std::size_t piece = regular ? rest.size() : detail::whole_lines_within(rest, PIPE_BUF);
    const ssize_t n = ::write(fd, rest.data(), piece);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && !regular) continue;  // someone made it non-blocking: poll() again
      return done;                                // EPIPE, EBADF, ENOSPC: nowhere to go
    }
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::uint64_t lines_in(std::string_view text) noexcept {
  return static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

struct async_fd_sink::shared {
  explicit shared(int descriptor) : fd(descriptor) {}

  // The writer thread: takes the whole queue at once and writes it, until stopped.
  void write_until_stopped() {
    std::string batch;
    std::unique_lock lock(m);
    for (;;) {
      wake.wait(lock, [&] { return !queued.empty() || stopping; });
      if (queued.empty() || give_up) break;
      batch.swap(queued);
      writing = true;
      lock.unlock();
      const std::size_t done = write_lines(fd, batch, [&] { return give_up.load(); });
      dropped += lines_in(std::string_view(batch).substr(done));
      batch.clear();
      lock.lock();
      writing = false;
      written.notify_all();
    }
    dropped += lines_in(queued);
    queued.clear();
    finished = true;
    written.notify_all();
  }

  bool drained() const { return queued.empty() && !writing; }

  const int fd;
  std::mutex m;
  std::condition_variable wake;     // the writer: lines queued, or stop
  std::condition_variable written;  // flush and stop: a batch written, or the writer finished
  std::string queued;               // formatted lines the writer has not taken yet
  bool writing = false;
  bool stopping = false;
  bool finished = false;
  std::atomic<bool> give_up{false};  // stop's deadline passed: leave the rest unwritten
  std::atomic<std::uint64_t> dropped{0};
};

async_fd_sink::async_fd_sink(int fd, settings s)
    : shared_(std::make_shared<shared>(fd)), settings_(s) {}

async_fd_sink::~async_fd_sink() {
  stop();
}

bool async_fd_sink::start() {
  std::lock_guard lock(mutex_);
  std::lock_guard state(shared_->m);
  if (shared_->stopping) return false;  // a writer given up on may still be in its write
  wanted_ = true;
  return true;
}

bool async_fd_sink::launch_writer() {
  // Signals go to the loop's thread (asio's signal_set), never to this one: it starts with them
  // blocked.
  sigset_t all;
  sigset_t before;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &before);
  try {
    writer_ = std::thread([s = shared_] {
      ::pthread_setname_np(::pthread_self(), "galaxies-log");
      s->write_until_stopped();
    });
  } catch (const std::system_error&) {
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  return writer_.joinable();
}

void async_fd_sink::stop() {
  std::lock_guard lock(mutex_);
  wanted_ = false;
  if (!running_) return;
  running_ = false;
  std::unique_lock state(shared_->m);
  shared_->stopping = true;
  shared_->wake.notify_one();
  if (shared_->written.wait_for(state, settings_.drain_on_stop,
                                [&] { return shared_->finished; })) {
    shared_->stopping = false;  // a later start() may run a new writer
    shared_->finished = false;
    state.unlock();
    writer_.join();  // it is returning: no thread of ours outlives a run()
    return;
  }
  // Detached, not joined: a writer stuck in write() on a full pipe must not hold the process's
  // exit. It holds `shared` itself, and ends when that write returns.
  shared_->give_up = true;
  writer_.detach();
}

std::uint64_t async_fd_sink::lines_dropped() const noexcept {
  return shared_->dropped.load();
}

void async_fd_sink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t lines;
  // The warning goes with the next line that fits, not alone into a queue kept full.
  if (unreported_ != 0) {
    const std::string text =
        fmt::format("{} log line{} dropped: stderr could not take them as fast as they came",
                    unreported_, unreported_ == 1 ? " was" : "s were");
    formatter_->format({msg.time, {}, msg.logger_name, spdlog::level::warn, text}, lines);
  }
  formatter_->format(msg, lines);
  if (put(std::string_view(lines.data(), lines.size()))) {
    unreported_ = 0;
    return;
  }
  ++shared_->dropped;
  // Said with the next line that fits. A synchronous write fails only for good (EPIPE, EBADF):
  // no later line would say it either.
  if (running_) ++unreported_;
}

bool async_fd_sink::put(std::string_view line) {
  if (wanted_ && !running_) {
    running_ = launch_writer();
    wanted_ = running_;  // no thread to be had: this sink stays synchronous
  }
  if (!running_) return write_lines(shared_->fd, line, [] { return false; }) == line.size();
  std::lock_guard state(shared_->m);
  if (shared_->queued.size() + line.size() > settings_.max_queued_bytes) return false;
  shared_->queued.append(line);
  shared_->wake.notify_one();
  return true;
}

void async_fd_sink::flush_() {
  if (!running_) return;  // written already: nothing is buffered on this side
  std::unique_lock state(shared_->m);
  shared_->written.wait_for(state, settings_.drain_on_flush, [&] { return shared_->drained(); });
}

}  // namespace galaxies::host
