#include "registry/redis/redis_url.hpp"

#include <charconv>
#include <limits>
#include <stdexcept>

#include "base/text.hpp"

namespace galaxies::registry::redis {
namespace {

constexpr std::string_view scheme = "redis://";

// The URL as an error message may show it: bounded, escaped, the password masked.
std::string shown(std::string_view url) {
  std::string text(url);
  if (const auto at = text.rfind('@'); at != std::string::npos) {
    const auto colon = text.find(':', scheme.size());
    if (colon != std::string::npos && colon < at) text.replace(colon + 1, at - colon - 1, "***");
  }
  return "'" + base::printable(text) + "'";
}

[[noreturn]] void fail(std::string_view url, const std::string& why) {
  throw std::invalid_argument("registry URL " + shown(url) + ": " + why +
                              "; use redis://[:PASSWORD@]HOST:PORT[/DB]");
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = hex_value(text[i + 1]);
    const int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

template <typename Int>
std::optional<Int> parse_decimal(std::string_view text, Int max) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  for (const char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  std::uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > static_cast<std::uint64_t>(max)) return std::nullopt;
  return static_cast<Int>(value);
}

bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

}  // namespace

std::string target::endpoint() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string target::describe() const {
  return "redis://" + endpoint() + (db ? "/" + std::to_string(*db) : std::string());
}

target parse_url(std::string_view url) {
  if (!url.starts_with(scheme)) fail(url, "not a redis:// URL");
  std::string_view rest = url.substr(scheme.size());
  target out;

  // The userinfo ends at the last '@': an unencoded '@' or '/' in a password still parses.
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) fail(url, "the user info needs a ':' before the password");
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!user || !password) fail(url, "bad percent-encoding in the user info");
    if (password->empty()) fail(url, "empty password");
    out.username = std::move(*user);
    out.password = std::move(*password);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    fail(url, "query strings and fragments are not supported");
  }

  std::string_view authority = rest;
  std::string_view path;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }

  std::string_view port_text;
  bool has_port = false;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) fail(url, "unclosed '[' around an IPv6 host");
    out.host = std::string(authority.substr(1, close - 1));
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) fail(url, "unexpected text after the IPv6 host");
      has_port = true;
      port_text = after.substr(1);
    }
    if (out.host.empty() ||
        out.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      fail(url, "bad IPv6 host");
    }
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (out.host.empty()) fail(url, "no host");
    for (const char c : out.host)
      if (!valid_host_char(c)) fail(url, "bad character in the host name");
  }
  if (out.host.empty()) fail(url, "no host");

  if (has_port) {
    const auto port = parse_decimal<std::uint16_t>(port_text, 65535);
    if (!port || *port == 0) fail(url, "bad port (1..65535)");
    out.port = *port;
  }

  if (!path.empty()) {
    const auto db = parse_decimal<int>(path, std::numeric_limits<int>::max());
    if (!db) fail(url, "bad database number (a decimal number after the '/')");
    out.db = *db;
  }
  return out;
}

}  // namespace galaxies::registry::redis
