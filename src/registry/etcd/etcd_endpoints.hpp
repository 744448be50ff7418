// The etcd registry URL: "etcd://HOST[:PORT][,HOST[:PORT]...]", the client endpoints of one etcd
// cluster. HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT defaults to 2379,
// etcd's client port. Nothing else is accepted (no path, query, user or scheme per endpoint):
// a URL that asks for something this backend does not do fails loudly instead of being ignored.
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace galaxies::registry::etcd {

struct endpoint {
  std::string host;  // without brackets
  std::uint16_t port = 2379;

  // "host:port", "[v6]:port": for URLs, logs and describe().
  std::string to_string() const;
  // "http://host:port", to which the gateway's paths are appended.
  std::string base_url() const;

  friend bool operator==(const endpoint&, const endpoint&) = default;
};

// Throws std::invalid_argument with a message naming the URL and what is wrong with it.
std::vector<endpoint> parse_url(std::string_view url);

// "etcd://a:1,b:2".
std::string to_url(const std::vector<endpoint>& endpoints);

}  // namespace galaxies::registry::etcd
