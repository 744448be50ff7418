#include "support/http_get.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "support/host_tools.hpp"

namespace galaxies::test {
namespace {

using clock = std::chrono::steady_clock;

// A reply past this is a runaway server, not one the tests mean to read.
constexpr std::size_t max_reply = 16 * 1024 * 1024;

bool equal_ci(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// "127.x.y.z:P" or "[::1]:P" as a socket address; throws for anything else.
sockaddr_storage loopback_endpoint(const std::string& address, socklen_t& length) {
  const auto colon = address.rfind(':');
  const auto bad = [&] {
    return std::invalid_argument("http_get: '" + address +
                                 "' is not a loopback ip:port; tests talk to nothing else");
  };
  if (colon == std::string::npos) throw bad();
  std::string host = address.substr(0, colon);
  unsigned port = 0;
  const auto* end = address.data() + address.size();
  if (std::from_chars(address.data() + colon + 1, end, port).ptr != end || port == 0 ||
      port > 65535)
    throw bad();
  sockaddr_storage storage{};
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6->sin6_addr) != 1 ||
        !IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
      throw bad();
    length = sizeof(sockaddr_in6);
    return storage;
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) != 1 ||
      (ntohl(v4->sin_addr.s_addr) >> 24) != 127)
    throw bad();
  length = sizeof(sockaddr_in);
  return storage;
}

// Waits for `events` on `fd` until `until`; false on timeout or error.
bool wait_for(int fd, short events, clock::time_point until) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

http_reply failure(std::string why) {
  http_reply r;
  r.error = std::move(why);
  return r;
}

// Splits a whole reply into status, headers and body; checks Content-Length when given.
http_reply parse_reply(std::string raw) {
  const auto end_of_headers = raw.find("\r\n\r\n");
  if (end_of_headers == std::string::npos) return failure("no end of headers in the reply");
  http_reply r;
  r.headers = raw.substr(0, end_of_headers + 2);
  r.body = raw.substr(end_of_headers + 4);
  int status = 0;
  if (!r.headers.starts_with("HTTP/1.") || r.headers.size() < 12 ||
      std::from_chars(r.headers.data() + 9, r.headers.data() + 12, status).ec != std::errc())
    return failure("not an HTTP status line: " + r.headers.substr(0, r.headers.find('\r')));
  if (const auto length = r.header("Content-Length"); !length.empty()) {
    std::size_t n = 0;
    std::from_chars(length.data(), length.data() + length.size(), n);
    if (n != r.body.size())
      return failure("body of " + std::to_string(r.body.size()) + " bytes, Content-Length " +
                     length);
  }
  r.status = status;
  return r;
}

}  // namespace

std::string http_reply::header(std::string_view name) const {
  std::size_t at = headers.find("\r\n");
  while (at != std::string::npos && at + 2 < headers.size()) {
    const auto line_end = headers.find("\r\n", at + 2);
    const std::string_view line(
        headers.data() + at + 2,
        (line_end == std::string::npos ? headers.size() : line_end) - at - 2);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && equal_ci(line.substr(0, colon), name)) {
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      return std::string(value);
    }
    at = line_end;
  }
  return {};
}

http_reply http_get(const std::string& address, const std::string& target,
                    std::chrono::milliseconds timeout) {
  if (!target.starts_with('/')) throw std::invalid_argument("http_get: target must start with /");
  socklen_t length = 0;
  const sockaddr_storage endpoint = loopback_endpoint(address, length);
  const auto until = clock::now() + timeout;

  tools::unique_fd fd(::socket(endpoint.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return failure(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&endpoint), length) != 0) {
    if (errno != EINPROGRESS) return failure(std::string("connect: ") + std::strerror(errno));
    if (!wait_for(fd.get(), POLLOUT, until)) return failure("connect: timed out");
    int error = 0;
    socklen_t len = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) return failure(std::string("connect: ") + std::strerror(error));
  }

  const std::string request = "GET " + target + " HTTP/1.0\r\nHost: " + address +
                              "\r\nConnection: close\r\nAccept: */*\r\n\r\n";
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      if (!wait_for(fd.get(), POLLOUT, until)) return failure("send: timed out");
    } else if (!(n < 0 && errno == EINTR)) {
      return failure(std::string("send: ") + std::strerror(errno));
    }
  }

  std::string raw;
  char buffer[16384];
  while (true) {
    if (!wait_for(fd.get(), POLLIN, until))
      return failure("timed out after " + std::to_string(raw.size()) + " bytes of the reply");
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return failure(std::string("recv: ") + std::strerror(errno));
    }
    raw.append(buffer, static_cast<std::size_t>(n));
    if (raw.size() > max_reply) return failure("reply larger than 16 MiB");
  }
  return parse_reply(std::move(raw));
}

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

}  // namespace galaxies::test
