// The buffer a ring channel's doorbell (the read end of a pipe, transport/shm_channel.hpp) is
// read into. A read into it that comes back short tells Asio's epoll reactor that the pipe is
// drained, so that the next wait on it makes no read that fails with EAGAIN first.
//
// Why: Asio 1.22 tries every read at once (speculatively) unless the last read on that descriptor
// reported it exhausted, which Asio's own descriptor read never does after taking bytes. A ring
// side parks as soon as it finds nothing to do, so every park would cost a failed read: one
// syscall in four on a ring hop.
// Why it is right: a pipe's read returns what the pipe holds up to the buffer's size, so a read
// shorter than the buffer emptied it; the next byte written makes it readable again, a new edge
// for the edge-triggered reactor, which makes the next read try again
// (epoll_reactor::descriptor_state::perform_io). A read that filled the buffer may have left
// bytes: Asio's own status, and the next read is tried at once. A read of 0 is the writer's close
// (reported as eof, which the stream takes for the end, so it never waits on that pipe again).
// How: Asio builds a descriptor read from descriptor_read_op_base<Buffers>, specialised here for
// this buffer type only; it differs from Asio's own in the status it reports. The pipe's read end
// is this process's own open file, non-blocking (shm_channel makes it so): a plain read never
// waits. Only for the Asio version it was written against, with epoll (checked at compile time);
// elsewhere this is a plain buffer, read as any.
#pragma once

#include <asio/buffer.hpp>
#include <asio/version.hpp>

namespace galaxies::transport {

struct doorbell_buffer : asio::mutable_buffer {
  explicit doorbell_buffer(asio::mutable_buffer b) noexcept : asio::mutable_buffer(b) {}
};

}  // namespace galaxies::transport

#if ASIO_VERSION == 102201 && defined(ASIO_HAS_EPOLL)
#include <unistd.h>

#include <asio/detail/descriptor_read_op.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/error.hpp>
#include <cerrno>

namespace asio::detail {

template <>
class descriptor_read_op_base<galaxies::transport::doorbell_buffer> : public reactor_op {
 public:
  descriptor_read_op_base(const asio::error_code& success_ec, int descriptor,
                          const galaxies::transport::doorbell_buffer& buffer,
                          func_type complete_func)
      : reactor_op(success_ec, &descriptor_read_op_base::do_perform, complete_func),
        descriptor_(descriptor),
        buffer_(buffer) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<descriptor_read_op_base*>(base);
    if (!read_doorbell(o->descriptor_, o->buffer_, o->ec_, o->bytes_transferred_)) return not_done;
    // A short read emptied the pipe; one that filled the buffer may have left bytes, and an
    // error or the end is final: Asio's own status for those, so the next read is tried at once.
    return o->ec_ || o->bytes_transferred_ == o->buffer_.size() ? done : done_and_exhausted;
  }

 private:
  // One read: false when there is nothing to take (EAGAIN), as Asio's non_blocking_read1. (Kept
  // here, not in a galaxies::transport::detail, which would hide galaxies::detail from
  // transport's code.)
  static bool read_doorbell(int fd, asio::mutable_buffer into, asio::error_code& ec,
                            std::size_t& bytes) {
    for (;;) {
      const ssize_t n = ::read(fd, into.data(), into.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      bytes = n < 0 ? 0 : static_cast<std::size_t>(n);
      ec = n < 0    ? asio::error_code(errno, asio::error::get_system_category())
           : n == 0 ? asio::error::eof
                    : asio::error_code();
      return true;
    }
  }

  int descriptor_;
  asio::mutable_buffer buffer_;
};

}  // namespace asio::detail
#endif
