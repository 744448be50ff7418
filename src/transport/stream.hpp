// A connection's byte stream: a plain socket, TLS 1.3 over it (host links, when configured), or
// two shared-memory rings with pipe doorbells, the socket kept for the end (a worker's channel,
// transport/shm_channel.hpp).
// One type for both, so that a link and everything above it are written once; the branch costs a
// predictable test per read or write, nothing per frame.
// Threading: lives on its socket's executor; used only there.
#pragma once

#include <array>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/compose.hpp>
#include <asio/error.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "galaxies/unique_function.hpp"
#include "transport/doorbell_buffer.hpp"
#include "transport/draining_buffer.hpp"
#include "transport/shm_channel.hpp"

namespace galaxies::transport {

using socket = asio::generic::stream_protocol::socket;

enum class tls_role { client, server };

class stream {
 public:
  using executor_type = socket::executor_type;
  using binding = std::array<std::byte, 32>;

  // A plain socket is switched to non-blocking mode for try_write_some (Asio's own operations
  // manage the descriptor's mode themselves and do not depend on it).
  explicit stream(socket s) : plain_(std::in_place, std::move(s)) {
    std::error_code ignored;  // on failure, try_write_some leaves every write to async_write_some
    plain_->non_blocking(true, ignored);
  }
  // The bytes go through `rings`, the doorbells are theirs; `s` carries no bytes, and its end is
  // the stream's.
  stream(socket s, std::unique_ptr<shm_channel> rings) : stream(std::move(s)) {
    base::unique_fd bell = rings->take_doorbell();
    doorbell_.emplace(plain_->get_executor(), bell.get());
    bell.release();
    shm_ = std::move(rings);
  }
  // TLS over `s`; the handshake runs when the link starts (async_handshake), before any frame.
  stream(socket s, asio::ssl::context& context, tls_role role)
      : tls_(std::make_unique<asio::ssl::stream<socket>>(std::move(s), context)), role_(role) {}

  stream(stream&&) noexcept = default;
  stream& operator=(stream&&) noexcept = default;

  executor_type get_executor() { return lowest_layer().get_executor(); }
  socket& lowest_layer() noexcept { return tls_ ? tls_->next_layer() : *plain_; }
  bool is_tls() const noexcept { return tls_ != nullptr; }

  // Asio tries each read at once, and a read that finds nothing fails with EAGAIN before it waits:
  // that failed recv is one syscall in four on a forwarding step. Draining reads spare it by
  // taking a short read for a drained socket, which is right for the bytes but may leave unseen an
  // end of stream queued behind them in the same edge (draining_buffer.hpp). So they are off
  // unless asked for, by a link whose own writes are sure to show such an end (its heartbeats);
  // they apply to a plain socket's single-buffer reads only, and only where reads_can_drain.
  void drain_reads(bool on) noexcept { drain_reads_ = on && reads_can_drain && !tls_ && !shm_; }
  bool drains_reads() const noexcept { return drain_reads_; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (shm_)
            shm_read_some(*asio::buffer_sequence_begin(b), std::move(handler));
          else if (tls_)
            tls_->async_read_some(b, std::move(handler));
          else if (!drain_reads_)
            plain_->async_read_some(b, std::move(handler));
          else if constexpr (std::is_convertible_v<MutableBuffers, asio::mutable_buffer>)
            plain_->async_read_some(draining_buffer(b), std::move(handler));
          else
            plain_->async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  // With draining reads (else false): whether the peer's end of stream waits on the socket with no
  // byte before it, peeked at without taking anything. How a link that failed to write, or heard
  // nothing for too long, tells an end its reader missed from an i/o error or a silence.
  bool end_of_stream_waiting();
  // Rings: whether the peer's end is known. The socket's end can come before the reader has
  // taken what the ring still holds, or delivered what it read: a write then fails, and the
  // reader, not the writer, must end the connection, after the peer's last frames. (The reader
  // sees the end at its next read, which never waits once it is known.)
  bool end_left_to_reader() const noexcept { return shm_ && shm_->peer_closed; }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (shm_)
            shm_write_some(b, std::move(handler));
          else if (tls_)
            tls_->async_write_some(b, std::move(handler));
          else
            plain_->async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

  // Writes what the socket takes now, without waiting; would_block when it takes nothing, and
  // always with TLS (whose records only its own write operation produces): such bytes are for
  // async_write_some.
  template <class ConstBuffers>
  std::size_t try_write_some(const ConstBuffers& buffers, std::error_code& ec) {
    if (shm_) return shm_try_write(buffers, ec);
    if (tls_ || !plain_->non_blocking()) {
      ec = asio::error::would_block;
      return 0;
    }
    return plain_->write_some(buffers, ec);
  }

  // The TLS handshake (call only when is_tls()).
  template <class Token>
  auto async_handshake(Token&& token) {
    return tls_->async_handshake(
        role_ == tls_role::client ? asio::ssl::stream_base::client : asio::ssl::stream_base::server,
        std::forward<Token>(token));
  }

  // Bytes waiting in the socket (still encrypted, with TLS): a sign that the peer is alive.
  std::size_t available(std::error_code& ec) {
    return (shm_ ? shm_->in.available() : 0) + lowest_layer().available(ec);
  }
  void close(std::error_code& ec) {
    lowest_layer().close(ec);
    std::error_code ignored;  // the socket's error is the one to report
    if (doorbell_) doorbell_->close(ignored);
  }

  // A value both ends of one TLS session compute alike and no other session shares (RFC 5705
  // keying material exporter): authentication bound to it cannot be relayed into another session.
  // Empty for a plain stream, or before the TLS handshake.
  std::optional<binding> tls_binding();

 private:
  // The rings' operations. A side with nothing to do says so on its ring, looks once more, and
  // parks until the other side rings its doorbell (or the socket ends). The wait is one read of
  // the doorbell's pipe (park), which serves the parked read and write and resumes both
  // whatever it takes: only that read takes doorbells, so none meant for one operation can be
  // lost to the other. A doorbell rung while nothing was parked (stale: rung for a look that
  // found bytes after all, or early: rung between the look and the park) leaves a byte in the
  // pipe, and the next park's read takes it, at once or at the edge the reactor has yet to
  // report; the operations look again. A read that came back short has drained the pipe
  // (doorbell_buffer.hpp), so the next park waits without trying a read first. The socket has
  // one read pending from the first park on (watch_the_end), which completes only at the end:
  // the parked operations then look at their rings once more, so the last bytes are read before
  // the end is reported. The doorbell's end (the other side closed its write end: it is gone, or
  // broken) is the end too, so that no operation is parked on a pipe that will never ring again.
  // Operations complete through the executor, never inside the call that starts them, as Asio's
  // own.
  template <class Handler>
  void shm_read_some(asio::mutable_buffer into, Handler&& handler) {
    asio::async_compose<Handler, void(std::error_code, std::size_t)>(
        [this, into, started = false](auto& self, std::error_code ec = {}) mutable {
          if (!std::exchange(started, true))
            return asio::post(plain_->get_executor(), std::move(self));
          if (ec) return self.complete(ec, 0);
          for (;;) {
            const auto got = shm_->in.read({static_cast<std::byte*>(into.data()), into.size()});
            if (got.broken || shm_->peer_spoke) return self.complete(broken_ring(), 0);
            if (got.bytes > 0 || into.size() == 0) {
              if (shm_->in.take_writer_waiting()) shm_->ring_peer();
              return self.complete({}, got.bytes);
            }
            if (shm_->peer_closed) return self.complete(asio::error::eof, 0);
            if (shm_->in.wait_for_bytes()) return park(parked_read_, std::move(self));
          }
        },
        handler, *plain_);
  }

  template <class ConstBuffers, class Handler>
  void shm_write_some(const ConstBuffers& buffers, Handler&& handler) {
    asio::async_compose<Handler, void(std::error_code, std::size_t)>(
        [this, buffers, started = false](auto& self, std::error_code ec = {}) mutable {
          if (!std::exchange(started, true))
            return asio::post(plain_->get_executor(), std::move(self));
          if (ec) return self.complete(ec, 0);
          for (;;) {
            std::error_code write_ec;
            const std::size_t n = shm_try_write(buffers, write_ec);
            if (write_ec != asio::error::would_block) return self.complete(write_ec, n);
            if (shm_->out.wait_for_room()) return park(parked_write_, std::move(self));
          }
        },
        handler, *plain_);
  }

  // A parked operation: Asio's composed operation (our state, its work guards, the caller's
  // handler), kept inline so that a side going to sleep allocates nothing. Asio declares no
  // noexcept on a composed operation's move, though nothing in it throws (executors, handlers,
  // our pointers and buffers): this says so, as unique_function needs to keep it inline.
  template <class Self>
  struct parked_operation {
    Self self;
    explicit parked_operation(Self&& s) : self(std::move(s)) {}
    parked_operation(parked_operation&& other) noexcept : self(std::move(other.self)) {}
    void operator()(std::error_code ec) { self(ec); }
  };
  using parked_slot = galaxies::detail::unique_function<void(std::error_code), 512>;

  template <class Self>
  void park(parked_slot& slot, Self&& self) {
    using operation = parked_operation<std::decay_t<Self>>;
    static_assert(parked_slot::fits_inline<operation>,
                  "a parked ring operation outgrew parked_slot's room: make it larger");
    slot = operation(std::move(self));
    watch_the_end();
    if (std::exchange(doorbell_waited_, true)) return;
    // A read, not async_wait: Asio precedes a wait with an epoll_ctl, and a read takes stale
    // doorbells at once. Another error (our close, normally) reaches the parked operations.
    doorbell_->async_read_some(
        doorbell_buffer(asio::buffer(shm_->rung)),
        [this, alive = std::weak_ptr<int>(alive_)](std::error_code ec, std::size_t) {
          if (alive.expired()) return;
          doorbell_waited_ = false;
          // Nothing parks once the end is known, so a pipe readable at its end is read no more.
          if (ec == asio::error::eof) {
            shm_->peer_closed = true;
            ec = {};
          }
          resume_parked(ec);
        });
  }

  // The socket's one read, pending for the rest of the stream's life.
  void watch_the_end() {
    if (std::exchange(end_watched_, true)) return;
    plain_->async_read_some(
        asio::buffer(shm_->socket_byte),
        [this, alive = std::weak_ptr<int>(alive_)](std::error_code ec, std::size_t) {
          if (alive.expired()) return;
          if (ec == asio::error::operation_aborted) return resume_parked(ec);
          // The end, or an error: nothing will ring again. A byte: the peer broke the protocol.
          (ec ? shm_->peer_closed : shm_->peer_spoke) = true;
          resume_parked();
        });
  }

  // Both parked operations look at their rings again (or learn the wait's error).
  void resume_parked(std::error_code ec = {}) {
    auto read = std::exchange(parked_read_, {});
    auto write = std::exchange(parked_write_, {});
    if (read) read(ec);
    if (write) write(ec);
  }

  template <class ConstBuffers>
  std::size_t shm_try_write(const ConstBuffers& buffers, std::error_code& ec) {
    ec.clear();
    if (shm_->peer_closed || shm_->peer_spoke) {
      ec = shm_->peer_spoke ? broken_ring() : asio::error::broken_pipe;
      return 0;
    }
    std::size_t written = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      const asio::const_buffer b = *it;
      const auto put = shm_->out.write({static_cast<const std::byte*>(b.data()), b.size()});
      if (put.broken) {
        ec = broken_ring();
        return written;
      }
      written += put.bytes;
      if (put.bytes < b.size()) break;
    }
    if (written > 0 && shm_->out.take_reader_waiting()) shm_->ring_peer();
    if (written == 0 && asio::buffer_size(buffers) > 0) ec = asio::error::would_block;
    return written;
  }

  static std::error_code broken_ring() { return std::make_error_code(std::errc::protocol_error); }

  std::optional<socket> plain_;  // exactly one of plain_ and tls_ is set
  std::unique_ptr<asio::ssl::stream<socket>> tls_;
  std::unique_ptr<shm_channel> shm_;  // with plain_: the bytes go through its rings
  std::optional<asio::posix::stream_descriptor> doorbell_;  // with shm_: the pipe we wait on
  // shm_: a read, and a write, parked until a doorbell; the read of the doorbell is pending; the
  // socket's read is pending or has seen the end.
  parked_slot parked_read_;
  parked_slot parked_write_;
  bool doorbell_waited_ = false;
  bool end_watched_ = false;
  // shm_: what the handlers above check before they touch the stream (moved streams take it along).
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  tls_role role_ = tls_role::client;
  bool drain_reads_ = false;  // drain_reads
};

}  // namespace galaxies::transport
