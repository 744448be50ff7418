// The buffer a ring channel's doorbell (an eventfd, transport/shm_channel.hpp) is read into. A
// read into it that takes a count tells Asio's epoll reactor that the eventfd is drained, so that
// the next wait on it makes no read that fails with EAGAIN first.
//
// Why: Asio 1.22 tries every read at once (speculatively) unless the last read on that descriptor
// reported it exhausted, which Asio's own descriptor read never does after taking bytes. A ring
// side parks as soon as it finds nothing to do, so every park would cost a failed read: one
// syscall in four on a ring hop.
// Why it is right: reading an eventfd that is not a semaphore (shm_channel refuses those) takes
// its whole count and resets it to 0; every later ring makes it readable again, a new edge for
// the edge-triggered reactor, which makes the next read try again
// (epoll_reactor::descriptor_state::perform_io). Unlike a socket, an eventfd has no end of stream
// that could be queued behind what was read.
// How: Asio builds a descriptor read from descriptor_read_op_base<Buffers>, specialised here for
// this buffer type only; it differs from Asio's own in the status it reports, and in the read
// itself, which asks the kernel not to wait (RWF_NOWAIT) whatever the eventfd's file status says:
// the other process holds the same open file and could clear its O_NONBLOCK, and a read finding
// the count at 0 would then stop this process for good. Only for the Asio version it was written
// against, with epoll (checked at compile time); elsewhere this is a plain buffer, read as any.
#pragma once

#include <asio/buffer.hpp>
#include <asio/version.hpp>

namespace galaxies::transport {

struct doorbell_buffer : asio::mutable_buffer {
  explicit doorbell_buffer(asio::mutable_buffer b) noexcept : asio::mutable_buffer(b) {}
};

}  // namespace galaxies::transport

#if ASIO_VERSION == 102201 && defined(ASIO_HAS_EPOLL)
#include <sys/uio.h>
#include <unistd.h>

#include <asio/detail/descriptor_read_op.hpp>
#include <asio/detail/reactor_op.hpp>
#include <asio/error.hpp>
#include <atomic>
#include <cerrno>

namespace galaxies::transport::detail {

// One read that never waits: false when there is nothing to take (EAGAIN), as Asio's
// non_blocking_read1. Kernels before 5.12 refuse RWF_NOWAIT on an eventfd (EOPNOTSUPP): there
// a plain read serves, which waits only if the other process cleared O_NONBLOCK.
inline bool read_doorbell(int fd, asio::mutable_buffer into, asio::error_code& ec,
                          std::size_t& bytes) {
  static std::atomic<bool> nowait{true};
  for (;;) {
    ssize_t n = -1;
    if (nowait.load(std::memory_order_relaxed)) {
      iovec part{into.data(), into.size()};
      n = ::preadv2(fd, &part, 1, -1, RWF_NOWAIT);
      if (n < 0 && errno == EOPNOTSUPP) {
        nowait.store(false, std::memory_order_relaxed);
        continue;
      }
    } else {
      n = ::read(fd, into.data(), into.size());
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    bytes = n < 0 ? 0 : static_cast<std::size_t>(n);
    ec = n < 0    ? asio::error_code(errno, asio::error::get_system_category())
         : n == 0 ? asio::error::eof
                  : asio::error_code();
    return true;
  }
}

}  // namespace galaxies::transport::detail

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
    if (!galaxies::transport::detail::read_doorbell(o->descriptor_, o->buffer_, o->ec_,
                                                    o->bytes_transferred_))
      return not_done;
    // Asio's own: done, never exhausted, so the next read would be tried at once.
    return o->ec_ ? done : done_and_exhausted;
  }

 private:
  int descriptor_;
  asio::mutable_buffer buffer_;
};

}  // namespace asio::detail
#endif
