// An in-memory duplex stream for code that is generic over its Stream (basic_link), after Beast's
// test::stream: two connected ends on one executor, with the knobs a loopback socket almost never
// shows — short reads and writes, a peer that stops reading, the Nth operation failing — so that
// the partial-transfer and error paths run in every unit test, deterministically.
//
// Threading: single-threaded. Both ends, every operation and every handler belong to one
// io_context run by one thread. Completions are always posted, never invoked from the initiating
// call, as Asio guarantees for sockets (code under test may rely on it to avoid re-entrance).
// Per-operation cancellation slots are not supported; close() aborts pending operations.
#pragma once

#include <algorithm>
#include <array>
#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <asio/post.hpp>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "galaxies/unique_function.hpp"

namespace galaxies::test {

struct stream_options {
  // Each read_some / write_some transfers at most this many bytes (0: no cap).
  std::size_t max_read = 0;
  std::size_t max_write = 0;
  // The Nth read_some / write_some (counting from 1) and every later one fails with `error`
  // (0: never): a broken connection keeps failing, it does not heal after one error.
  std::size_t fail_read_at = 0;
  std::size_t fail_write_at = 0;
  std::error_code error = asio::error::connection_reset;
  // A write waits while this many bytes the end wrote sit unread at its peer (0: unbounded), which
  // plays a peer that does not read and keeps the writer's batch in flight.
  std::size_t max_unread = 0;
};

struct stream_stats {
  std::size_t reads = 0;   // read_some operations started, failed ones included
  std::size_t writes = 0;  // writes started (async or try_write_some), failed ones included
  std::size_t bytes_read = 0;
  std::size_t bytes_written = 0;
};

namespace detail {

using completion = galaxies::detail::unique_function<void(std::error_code, std::size_t)>;

struct stream_end {
  stream_options options;
  stream_stats stats;
  bool closed = false;

  std::vector<std::byte> inbox;  // bytes the peer wrote that this end has not read
  std::size_t inbox_begin = 0;

  std::vector<asio::mutable_buffer> read_buffers;  // a read waiting for bytes
  completion read_done;
  std::vector<asio::const_buffer> write_buffers;  // a write waiting for the peer to read
  completion write_done;

  std::size_t unread() const noexcept { return inbox.size() - inbox_begin; }
};

class stream_state {
 public:
  explicit stream_state(asio::any_io_executor executor) : executor_(std::move(executor)) {}

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  stream_end& end(int side) noexcept { return ends_[side]; }

  void start_read(int side, std::vector<asio::mutable_buffer> buffers, completion done) {
    stream_end& me = ends_[side];
    ++me.stats.reads;
    if (me.options.fail_read_at != 0 && me.stats.reads >= me.options.fail_read_at)
      return done(me.options.error, 0);
    if (me.closed) return done(asio::error::bad_descriptor, 0);
    if (asio::buffer_size(buffers) == 0) return done({}, 0);
    if (me.read_done) return done(asio::error::in_progress, 0);  // one read at a time
    me.read_buffers = std::move(buffers);
    me.read_done = std::move(done);
    serve_read(side);
  }

  void start_write(int side, std::vector<asio::const_buffer> buffers, completion done) {
    if (auto ec = refuse_write(side, buffers)) return done(ec, 0);
    if (asio::buffer_size(buffers) == 0) return done({}, 0);
    stream_end& me = ends_[side];
    me.write_buffers = std::move(buffers);
    me.write_done = std::move(done);
    serve_write(side);
  }

  // A write that takes what the peer has room for now and never waits (would_block when that is
  // nothing); the peer's waiting read completes as for any write.
  std::size_t try_write(int side, std::vector<asio::const_buffer> buffers, std::error_code& ec) {
    ec = refuse_write(side, buffers);
    if (ec || asio::buffer_size(buffers) == 0) return 0;
    const std::size_t limit = write_limit(side, buffers);
    if (limit == 0) {
      ec = asio::error::would_block;
      return 0;
    }
    const std::size_t n = copy_to_peer(side, buffers, limit);
    serve_read(1 - side);
    return n;
  }

  // Bytes become readable at `side` as if its peer had written them (no write operation counted).
  void inject(int side, std::span<const std::byte> bytes) {
    stream_end& me = ends_[side];
    if (me.closed) return;
    me.inbox.insert(me.inbox.end(), bytes.begin(), bytes.end());
    serve_read(side);
  }

  // Takes every unread byte at `side` without a read operation, and lets a waiting writer go on.
  std::vector<std::byte> take_unread(int side) {
    stream_end& me = ends_[side];
    std::vector<std::byte> out(me.inbox.begin() + static_cast<std::ptrdiff_t>(me.inbox_begin),
                               me.inbox.end());
    me.inbox.clear();
    me.inbox_begin = 0;
    serve_write(1 - side);
    return out;
  }

  void close(int side) {
    stream_end& me = ends_[side];
    if (me.closed) return;
    me.closed = true;
    me.inbox.clear();
    me.inbox_begin = 0;
    if (me.read_done) std::exchange(me.read_done, {})(asio::error::operation_aborted, 0);
    if (me.write_done) std::exchange(me.write_done, {})(asio::error::operation_aborted, 0);
    stream_end& peer = ends_[1 - side];
    if (peer.write_done) std::exchange(peer.write_done, {})(asio::error::broken_pipe, 0);
    serve_read(1 - side);  // the peer reads what is left, then EOF
  }

  // Drops pending handlers without calling them: the io_context is going away (what the socket
  // service does on shutdown). Breaks the cycle handler -> coroutine -> stream -> state.
  void abandon() {
    for (auto& e : ends_) {
      completion read = std::exchange(e.read_done, {});
      completion write = std::exchange(e.write_done, {});
    }
  }

 private:
  void serve_read(int side) {
    stream_end& me = ends_[side];
    if (!me.read_done) return;
    if (me.unread() == 0) {
      if (ends_[1 - side].closed) std::exchange(me.read_done, {})(asio::error::eof, 0);
      return;
    }
    std::size_t limit = me.unread();
    if (me.options.max_read != 0) limit = std::min(limit, me.options.max_read);
    std::size_t n = 0;
    for (const auto& b : me.read_buffers) {
      const std::size_t k = std::min(b.size(), limit - n);
      std::memcpy(b.data(), me.inbox.data() + me.inbox_begin + n, k);
      n += k;
      if (n == limit) break;
    }
    me.inbox_begin += n;
    if (me.inbox_begin == me.inbox.size()) {
      me.inbox.clear();
      me.inbox_begin = 0;
    } else if (me.inbox_begin > me.inbox.size() / 2) {
      me.inbox.erase(me.inbox.begin(),
                     me.inbox.begin() + static_cast<std::ptrdiff_t>(me.inbox_begin));
      me.inbox_begin = 0;
    }
    me.stats.bytes_read += n;
    me.read_buffers.clear();
    std::exchange(me.read_done, {})(std::error_code{}, n);
    serve_write(1 - side);  // room at this end: the peer's waiting write may go on
  }

  // Why a write starting now fails at once (counting it as started), if it does.
  std::error_code refuse_write(int side, const std::vector<asio::const_buffer>& buffers) {
    stream_end& me = ends_[side];
    ++me.stats.writes;
    if (me.options.fail_write_at != 0 && me.stats.writes >= me.options.fail_write_at)
      return me.options.error;
    if (me.closed) return asio::error::bad_descriptor;
    if (ends_[1 - side].closed) return asio::error::broken_pipe;
    if (asio::buffer_size(buffers) != 0 && me.write_done)
      return asio::error::in_progress;  // one write at a time
    return {};
  }

  // How many of `buffers`' bytes a write may transfer now (0: it must wait for the peer to read).
  std::size_t write_limit(int side, const std::vector<asio::const_buffer>& buffers) const {
    const stream_end& me = ends_[side];
    const stream_end& peer = ends_[1 - side];
    std::size_t limit = asio::buffer_size(buffers);
    if (me.options.max_write != 0) limit = std::min(limit, me.options.max_write);
    if (me.options.max_unread != 0)
      limit =
          std::min(limit, me.options.max_unread - std::min(peer.unread(), me.options.max_unread));
    return limit;
  }

  std::size_t copy_to_peer(int side, const std::vector<asio::const_buffer>& buffers,
                           std::size_t limit) {
    stream_end& peer = ends_[1 - side];
    std::size_t n = 0;
    for (const auto& b : buffers) {
      const std::size_t k = std::min(b.size(), limit - n);
      const auto* p = static_cast<const std::byte*>(b.data());
      peer.inbox.insert(peer.inbox.end(), p, p + k);
      n += k;
      if (n == limit) break;
    }
    ends_[side].stats.bytes_written += n;
    return n;
  }

  void serve_write(int side) {
    stream_end& me = ends_[side];
    if (!me.write_done) return;
    const std::size_t limit = write_limit(side, me.write_buffers);
    if (limit == 0) return;  // wait for the peer to read
    const std::size_t n = copy_to_peer(side, me.write_buffers, limit);
    me.write_buffers.clear();
    std::exchange(me.write_done, {})(std::error_code{}, n);
    serve_read(1 - side);
  }

  asio::any_io_executor executor_;
  std::array<stream_end, 2> ends_;
};

// Tracks the live pairs of one execution context so that its shutdown can drop their pending
// handlers, as a socket service does; otherwise a link waiting on a read would keep itself alive.
class stream_service : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;

  explicit stream_service(asio::execution_context& context)
      : asio::execution_context::service(context) {}

  void add(const std::shared_ptr<stream_state>& state) {
    std::erase_if(states_, [](const auto& weak) { return weak.expired(); });
    states_.push_back(state);
  }

 private:
  void shutdown() override {
    auto states = std::move(states_);
    for (auto& weak : states)
      if (auto state = weak.lock()) state->abandon();
  }

  std::vector<std::weak_ptr<stream_state>> states_;
};

// Wraps an Asio completion handler: holds outstanding work (a pending operation keeps run() going,
// as a socket's does) and posts the handler to its associated executor.
template <class Handler>
completion make_completion(Handler handler, const asio::any_io_executor& io) {
  asio::any_io_executor work = asio::prefer(io, asio::execution::outstanding_work.tracked);
  return [handler = std::move(handler), work = std::move(work)](std::error_code ec,
                                                                std::size_t n) mutable {
    auto ex = asio::get_associated_executor(handler, work);
    asio::post(ex, [handler = std::move(handler), ec, n]() mutable { std::move(handler)(ec, n); });
    work = asio::any_io_executor{};
  };
}

}  // namespace detail

// One end of a pair. Movable; destroying or closing an end gives its peer EOF once the peer has
// read what is left, and fails the peer's writes with broken_pipe.
class test_stream {
 public:
  using executor_type = asio::any_io_executor;

  test_stream(std::shared_ptr<detail::stream_state> state, int side)
      : state_(std::move(state)), side_(side) {}
  test_stream(test_stream&& other) noexcept : state_(std::move(other.state_)), side_(other.side_) {}
  test_stream& operator=(test_stream&& other) noexcept {
    if (this != &other) {
      close();
      state_ = std::move(other.state_);
      side_ = other.side_;
    }
    return *this;
  }
  ~test_stream() { close(); }

  executor_type get_executor() const { return state_->executor(); }

  template <class MutableBufferSequence, class CompletionToken>
  auto async_read_some(const MutableBufferSequence& buffers, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [state = state_, side = side_](auto handler, std::vector<asio::mutable_buffer> buffers) {
          state->start_read(side, std::move(buffers),
                            detail::make_completion(std::move(handler), state->executor()));
        },
        token,
        std::vector<asio::mutable_buffer>(asio::buffer_sequence_begin(buffers),
                                          asio::buffer_sequence_end(buffers)));
  }

  template <class ConstBufferSequence, class CompletionToken>
  auto async_write_some(const ConstBufferSequence& buffers, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [state = state_, side = side_](auto handler, std::vector<asio::const_buffer> buffers) {
          state->start_write(side, std::move(buffers),
                             detail::make_completion(std::move(handler), state->executor()));
        },
        token,
        std::vector<asio::const_buffer>(asio::buffer_sequence_begin(buffers),
                                        asio::buffer_sequence_end(buffers)));
  }

  // Like the library's stream over a non-blocking socket: what fits now, or would_block.
  template <class ConstBufferSequence>
  std::size_t try_write_some(const ConstBufferSequence& buffers, std::error_code& ec) {
    return state_->try_write(side_,
                             std::vector<asio::const_buffer>(asio::buffer_sequence_begin(buffers),
                                                             asio::buffer_sequence_end(buffers)),
                             ec);
  }

  void close(std::error_code& ec) {
    ec = {};
    if (state_) state_->close(side_);
  }
  void close() {
    std::error_code ignored;
    close(ignored);
  }
  bool is_open() const noexcept { return state_ && !state_->end(side_).closed; }
  // Like a socket's FIONREAD: bytes that a read would return at once.
  std::size_t available(std::error_code& ec) const {
    ec = {};
    return state_ ? state_->end(side_).unread() : 0;
  }

  // Test controls. Options may change at any time; they apply to operations started afterwards
  // (and to a waiting write when the peer next reads).
  stream_options& options() noexcept { return state_->end(side_).options; }
  const stream_stats& stats() const noexcept { return state_->end(side_).stats; }
  // Bytes written to this end and not read yet.
  std::size_t unread() const noexcept { return state_->end(side_).unread(); }
  // Makes bytes readable here as though the peer had written them, without a write operation.
  void inject(std::span<const std::byte> bytes) { state_->inject(side_, bytes); }
  // Takes every unread byte here without a read operation (for a test playing a raw peer).
  std::vector<std::byte> take_unread() { return state_->take_unread(side_); }

 private:
  std::shared_ptr<detail::stream_state> state_;
  int side_ = 0;
};

// Two connected ends on `executor`; `a` and `b` are the options of each end's own operations.
inline std::pair<test_stream, test_stream> make_stream_pair(const asio::any_io_executor& executor,
                                                            const stream_options& a,
                                                            const stream_options& b) {
  auto state = std::make_shared<detail::stream_state>(executor);
  state->end(0).options = a;
  state->end(1).options = b;
  asio::use_service<detail::stream_service>(asio::query(executor, asio::execution::context))
      .add(state);
  return {test_stream(state, 0), test_stream(state, 1)};
}

inline std::pair<test_stream, test_stream> make_stream_pair(const asio::any_io_executor& executor,
                                                            const stream_options& options = {}) {
  return make_stream_pair(executor, options, options);
}

}  // namespace galaxies::test
