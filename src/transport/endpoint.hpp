// TCP addresses as the registry and the CLI write them: "ip:port", "[ipv6]:port".
#pragma once

#include <asio/ip/tcp.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace galaxies::transport {

// Numeric addresses only: a host name would need a resolver on the hot start-up path.
std::optional<asio::ip::tcp::endpoint> parse_endpoint(std::string_view text);
std::string format_endpoint(const asio::ip::tcp::endpoint& endpoint);

}  // namespace galaxies::transport
