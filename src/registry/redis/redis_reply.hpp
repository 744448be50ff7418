// A Redis reply copied out of hiredis, and this backend's error codes. hiredis frees its reply as
// soon as the callback returns, and our handlers run later (posted), so they get an owned copy;
// it also lets the parsing of replies be tested without a server.
// Threading: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

struct redisReply;  // hiredis
struct redisReader;

namespace galaxies::registry::redis {

struct reply {
  enum class kind { nil, string, status, error, integer, array };
  kind type = kind::nil;
  std::string text;             // string, status and error
  std::int64_t integer = 0;     // integer
  std::vector<reply> elements;  // array

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_string() const noexcept { return type == kind::string; }
  bool is_array() const noexcept { return type == kind::array; }
  // "+OK"-style status whose text is `word` (case-sensitive, as Redis sends it).
  bool is_status(std::string_view word) const { return type == kind::status && text == word; }
};

// The owned copy of a reply hiredis parsed from the server's bytes; an unknown type (a newer
// protocol's) or a null element is nil.
reply copy_reply(const redisReply& from);

// The most elements one reply may announce. hiredis allocates an array's element pointers when it
// reads the array's header, before any element has arrived: unbounded, the 13 bytes
// "*2000000000\r\n" from whatever answers on the store's address cost 16 GB. This backend asks
// for far less (SCAN pages of COUNT 100, MGETs of 500 keys, pub/sub messages of 3 or 4), and
// scan_rows gives up past 100000 keys in all.
inline constexpr int max_reply_elements = 100000;

// Makes `reader` refuse, before allocating, a reply announcing more than max_reply_elements
// elements (or a negative count): the reader then fails as hiredis fails on an allocation,
// "Out of memory", and the connection with it. Every reader of this backend gets it.
void limit_reply_elements(redisReader& reader);

// Failures that the standard error codes do not name. Connection and socket failures use the
// system category (Connection refused, Connection timed out), so that a message built from the
// code alone, as `galaxies status` prints it, still says what happened.
enum class errc {
  server_error = 1,   // the server answered with an error reply (NOAUTH, WRONGPASS, OOM, ...)
  unexpected_reply,   // a reply of a shape this backend does not expect
  connection_closed,  // the server closed the connection
  not_connected,      // a command on a connection that is not (or no longer) usable
  connect_failed,     // no connection could be made, for a reason other than a socket error
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace galaxies::registry::redis

template <>
struct std::is_error_code_enum<galaxies::registry::redis::errc> : std::true_type {};
