// The Redis registry URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]. The password may be
// percent-encoded (it may hold '@' or '/'); an IPv6 host goes in brackets.
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace galaxies::registry::redis {

struct target {
  std::string host;
  std::uint16_t port = 6379;
  std::string username;   // empty: AUTH with the password alone (the "default" user)
  std::string password;   // empty: no AUTH
  std::optional<int> db;  // empty: no SELECT (the server's db 0)

  // "HOST:PORT", for messages; never the password.
  std::string endpoint() const;
  // "redis://HOST:PORT[/DB]", for logs and `galaxies status`; never the password.
  std::string describe() const;
};

// Throws std::invalid_argument with a clear message (which never repeats the password) for a
// URL that is not of the form above.
target parse_url(std::string_view url);

}  // namespace galaxies::registry::redis
