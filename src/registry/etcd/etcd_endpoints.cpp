#include "registry/etcd/etcd_endpoints.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "base/text.hpp"

namespace galaxies::registry::etcd {
namespace {

constexpr std::string_view scheme = "etcd://";

// Quoted input for an error message: bounded, escaped, one line.
std::string quoted(std::string_view text) {
  return "'" + base::printable(text) + "'";
}

[[noreturn]] void reject(std::string_view url, const std::string& why) {
  throw std::invalid_argument("registry URL " + quoted(url) + ": " + why +
                              "; use etcd://HOST:PORT[,HOST:PORT...]");
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool is_v6_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

endpoint parse_one(std::string_view url, std::string_view text) {
  if (text.empty()) reject(url, "an endpoint is empty");
  endpoint out;
  std::string_view rest;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) reject(url, "unclosed '[' in " + quoted(text));
    const auto host = text.substr(1, close - 1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), is_v6_char)) {
      reject(url, "bad IPv6 address in " + quoted(text));
    }
    out.host = std::string(host);
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      reject(url, "unexpected text after ']' in " + quoted(text));
  } else {
    const auto colon = text.find(':');
    const auto host = text.substr(0, colon);
    if (host.empty()) reject(url, "no host in " + quoted(text));
    if (!std::all_of(host.begin(), host.end(), is_name_char)) {
      reject(url, "bad host name " + quoted(host));
    }
    out.host = std::string(host);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
  }
  if (!rest.empty()) {
    const auto port = rest.substr(1);  // after ':'
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535) {
      reject(url, "bad port " + quoted(port) + " (1..65535)");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  return out;
}

}  // namespace

std::string endpoint::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string endpoint::base_url() const {
  return "http://" + to_string();
}

std::vector<endpoint> parse_url(std::string_view url) {
  if (!url.starts_with(scheme)) reject(url, "not an etcd URL");
  const auto body = url.substr(scheme.size());
  if (body.empty()) reject(url, "no host");
  if (const auto at = body.find_first_of("/?#@"); at != std::string_view::npos) {
    const char c = body[at];
    reject(url, c == '@'   ? "user names and passwords are not supported"
                : c == '/' ? "a path is not supported"
                           : "a query or fragment is not supported");
  }
  std::vector<endpoint> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = body.find(',', start);
    out.push_back(parse_one(url, body.substr(start, comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (out[i] == out[j]) reject(url, "endpoint " + out[i].to_string() + " is listed twice");
    }
  }
  return out;
}

std::string to_url(const std::vector<endpoint>& endpoints) {
  std::string out(scheme);
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    if (i > 0) out += ',';
    out += endpoints[i].to_string();
  }
  return out;
}

}  // namespace galaxies::registry::etcd
