// A read buffer whose short read tells Asio's epoll reactor that the socket is drained, so that the
// next read waits for readiness instead of first trying a recv that fails with EAGAIN.
//
// Why: Asio 1.22 tries every read at once when it starts (speculatively) unless the last read on
// that socket reported the socket exhausted, which for a stream socket it does on a read of 0
// bytes only. A link reads again as soon as it has handled a read, so every read that waits costs
// a failed recv first: one syscall in four on a forwarding step. Waiting for readiness instead
// (async_wait) costs an epoll_ctl per wait, which is no better.
//
// Why the bytes are right: a recv on a Linux stream socket (TCP, Unix) copies until the buffer is
// full or the receive queue is empty, so fewer bytes than asked means the queue was empty then;
// the reactor registers sockets edge-triggered, and every later arrival is a new edge, which makes
// the next read try again (epoll_reactor::descriptor_state::perform_io).
//
// The blind spot: the peer's end of stream (FIN, or a Unix peer's close) is no byte. When it
// reaches the socket together with the last bytes, before the reactor's epoll_wait, the two make
// ONE edge: the read that takes the bytes is short, and the read after it waits for an edge that
// never comes (stream_test, AnEndThatCameWithTheLastBytesShowsAtTheNextWrite). Asio 1.22
// registers no EPOLLRDHUP and shows an operation no event bits, so the end cannot be told apart.
//
// Hence only a stream that writes on its own schedule may drain: stream::drain_reads, which
// basic_link::enable_heartbeats sets (strangers, handshakes and links without heartbeats read as
// Asio does, and see every end exactly). What makes it safe there, checked on Linux 6.18 by
// stream_test and link_socket_test:
// - TCP: a write to a peer that has closed draws a RST; the RST is a new edge (EPOLLERR|EPOLLHUP)
//   on our socket, which performs the waiting read, and the read sees the end (0 bytes: the FIN was
//   queued first) or the reset. If no read waits at that edge, the next write fails at once (EPIPE
//   or ECONNRESET).
// - Unix: the write itself fails with EPIPE.
// - A link writes at least once per heartbeat interval when idle, and at once under traffic, so a
//   missed end shows at its next write: within one interval (while this process runs late, within
//   its heartbeat spacing: at most half the peer's max_stretch intervals, 1 s by default,
//   local_health::heartbeat_spacing), or the write after when a reset found no read waiting;
//   never later than the silence limit, which a peer that has closed cannot hold off (nor one that
//   only shut down its sending side, which galaxies never does, and whose end shows there). The
//   link then reports the end as its reader would have (basic_link::close_at_write_error), not as
//   an i/o error or a silence.
// Caveat: a TCP read also stops short at an urgent-data mark (MSG_OOB, which no galaxies peer
// sends); the rest is then read when the peer's next bytes arrive (a heartbeat at the latest).
//
// How: Asio builds a socket read from reactive_socket_recv_op_base<Buffers>, which is specialised
// here for this buffer type only; its one change from Asio's own is the condition for
// done_and_exhausted. Only for the Asio version it was written against (checked at compile time);
// with another, or another reactor, this is a plain buffer and reads are as Asio makes them.
#pragma once

#include <asio/buffer.hpp>
#include <asio/version.hpp>

namespace galaxies::transport {

struct draining_buffer : asio::mutable_buffer {
  explicit draining_buffer(asio::mutable_buffer b) noexcept : asio::mutable_buffer(b) {}
};

#if ASIO_VERSION == 102201 && defined(ASIO_HAS_EPOLL)
inline constexpr bool reads_can_drain = true;
#else
inline constexpr bool reads_can_drain = false;
#endif

}  // namespace galaxies::transport

#if ASIO_VERSION == 102201 && defined(ASIO_HAS_EPOLL)
// First, for Asio's detail headers below use socket_base without including it.
#include <asio/socket_base.hpp>
// The specialised operation.
#include <asio/detail/reactive_socket_recv_op.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/detail/socket_ops.hpp>

namespace asio::detail {

template <>
class reactive_socket_recv_op_base<galaxies::transport::draining_buffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const asio::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state,
                               const galaxies::transport::draining_buffer& buffer,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffer),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
    if (!socket_ops::non_blocking_recv1(o->socket_, o->buffer_.data(), o->buffer_.size(), o->flags_,
                                        stream, o->ec_, o->bytes_transferred_))
      return not_done;
    // Asio's own: exhausted after 0 bytes (end of stream, or an error) only.
    return stream && o->bytes_transferred_ < o->buffer_.size() ? done_and_exhausted : done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  asio::mutable_buffer buffer_;
  socket_base::message_flags flags_;
};

}  // namespace asio::detail
#endif
