// A connection's byte stream: a plain socket, or TLS 1.3 over it (host links, when configured).
// One type for both, so that a link and everything above it are written once; the branch costs a
// predictable test per read or write, nothing per frame.
// Threading: lives on its socket's executor; used only there.
#pragma once

#include <array>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

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
  // TLS over `s`; the handshake runs when the link starts (async_handshake), before any frame.
  stream(socket s, asio::ssl::context& context, tls_role role)
      : tls_(std::make_unique<asio::ssl::stream<socket>>(std::move(s), context)), role_(role) {}

  stream(stream&&) noexcept = default;
  stream& operator=(stream&&) noexcept = default;

  executor_type get_executor() { return lowest_layer().get_executor(); }
  socket& lowest_layer() noexcept { return tls_ ? tls_->next_layer() : *plain_; }
  bool is_tls() const noexcept { return tls_ != nullptr; }

  // Asio tries each read at once, and a read that finds nothing fails with EAGAIN before it waits:
  // that failed recv is one syscall in four on a forwarding step. It cannot be spared by taking a
  // short read for a drained socket: the peer's end of stream may already be queued behind the
  // bytes read, and the edge-triggered reactor will not report it again (stream_test).
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_)
            tls_->async_read_some(b, std::move(handler));
          else
            plain_->async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_)
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
  std::size_t available(std::error_code& ec) { return lowest_layer().available(ec); }
  void close(std::error_code& ec) { lowest_layer().close(ec); }

  // A value both ends of one TLS session compute alike and no other session shares (RFC 5705
  // keying material exporter): authentication bound to it cannot be relayed into another session.
  // Empty for a plain stream, or before the TLS handshake.
  std::optional<binding> tls_binding();

 private:
  std::optional<socket> plain_;  // exactly one of plain_ and tls_ is set
  std::unique_ptr<asio::ssl::stream<socket>> tls_;
  tls_role role_ = tls_role::client;
};

}  // namespace galaxies::transport
