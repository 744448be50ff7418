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

}  // namespace galaxies::transport
