#include "transport/stream.hpp"

#include <openssl/ssl.h>

namespace galaxies::transport {

std::optional<stream::binding> stream::tls_binding() {
  if (!tls_) return std::nullopt;
  static constexpr char label[] = "EXPORTER-galaxies-host-auth";
  binding out{};
  if (SSL_export_keying_material(tls_->native_handle(),
                                 reinterpret_cast<unsigned char*>(out.data()), out.size(), label,
                                 sizeof label - 1, nullptr, 0, 0) != 1)
    return std::nullopt;
  return out;
}

bool stream::end_of_stream_waiting() {
  // A blocking socket would make the peek wait; the constructor made it non-blocking, unless that
  // failed (then try_write_some never writes either).
  if (!drain_reads_ || !plain_->non_blocking()) return false;
  std::byte first{};
  std::error_code ec;
  plain_->receive(asio::buffer(&first, 1), socket::message_peek, ec);
  return ec == asio::error::eof;
}

}  // namespace galaxies::transport
