#include "transport/endpoint.hpp"

#include "base/host_port.hpp"

namespace galaxies::transport {

std::optional<asio::ip::tcp::endpoint> parse_endpoint(std::string_view text) {
  const auto split = base::split_host_port(text);
  if (!split) return std::nullopt;
  std::error_code bad;
  const auto address = asio::ip::make_address(std::string(split->host), bad);
  if (bad) return std::nullopt;
  return asio::ip::tcp::endpoint(address, split->port);
}

std::string format_endpoint(const asio::ip::tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

}  // namespace galaxies::transport
