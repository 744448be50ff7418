// TCP addresses as the registry and the command line write them: "ip:port" or "[ipv6]:port".
// Only the shape is judged here (brackets, one port of 0..65535); whether the host part is a
// numeric address is for the layer that has an address parser (transport, registry).
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace galaxies::base {

struct host_port {
  std::string_view host;  // without the brackets of an IPv6 address
  std::uint16_t port = 0;
};

// nullopt for a missing or malformed port, an empty host, or an IPv6 address without brackets.
std::optional<host_port> split_host_port(std::string_view text) noexcept;

}  // namespace galaxies::base
