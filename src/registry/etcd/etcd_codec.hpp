// etcd's v3 JSON gateway, as bytes: request bodies and reply parsers, with no I/O.
//
// The gateway is grpc-gateway over etcd's protobufs, which gives it habits a JSON reader must
// expect: keys and values travel as base64; 64-bit numbers travel as strings ("revision":"5");
// fields at their zero value (false, 0, empty, the PUT event type) are omitted; server-streaming
// calls (keepalive, watch) wrap each message in {"result":...}, one JSON object per line; and a
// failed call answers {"error":"...","message":"...","code":N} (or, in a stream,
// {"error":{"grpc_code":N,"message":"..."}}). Every parser here accepts numbers as strings or as
// JSON numbers, treats a missing field as its zero value, and returns an error for anything else:
// a malformed reply is an error_code with a readable detail, never an exception or a crash.
//
// Threading: pure functions and plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace galaxies::registry::etcd {

enum class errc {
  malformed_reply = 1,  // not the JSON the gateway sends for this call
  server_error,         // etcd refused the call ({"error":...}); the detail carries its message
  lease_not_found,      // the lease expired or was revoked
  watch_canceled,       // the server ended a watch (compacted start revision, or another reason)
};

const std::error_category& error_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// Standard base64 with padding, as protobuf's JSON mapping writes bytes. decode accepts the
// URL-safe alphabet and missing padding too (the JSON mapping allows both) and fails on anything
// else.
std::string base64_encode(std::string_view data);
bool base64_decode(std::string_view text, std::string& out);

// The range_end that selects every key starting with `prefix`: the prefix with its last byte
// incremented, after dropping trailing 0xff bytes. A prefix of only 0xff bytes (or an empty one)
// has no such bound: etcd's "\0" means "to the end of the key space".
std::string prefix_range_end(std::string_view prefix);

// Request bodies, one per call. 64-bit numbers are written as strings: a lease id does not
// survive a trip through a JSON double.
std::string lease_grant_request(std::int64_t ttl_seconds);
std::string lease_keepalive_request(std::int64_t lease);
std::string lease_revoke_request(std::int64_t lease);
std::string put_request(std::string_view key, std::string_view value, std::int64_t lease);
std::string range_key_request(std::string_view key);
std::string range_prefix_request(std::string_view prefix);
// Deletes `key` only if its mod_revision still equals `mod_revision`: a compare-and-swap.
std::string delete_if_unchanged_request(std::string_view key, std::int64_t mod_revision);
std::string watch_prefix_request(std::string_view prefix, std::int64_t start_revision);

struct lease_grant_reply {
  std::int64_t id = 0;
  std::int64_t ttl = 0;
};

struct keepalive_reply {
  std::int64_t id = 0;
  std::int64_t ttl = 0;  // 0 or less: the lease is gone (etcd omits TTL for an unknown lease)
};

struct key_value {
  std::string key;  // decoded
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
};

struct put_reply {
  std::int64_t revision = 0;
};

struct range_reply {
  std::int64_t revision = 0;  // the store's revision the range was read at
  std::vector<key_value> kvs;
};

struct txn_reply {
  std::int64_t revision = 0;
  bool succeeded = false;
};

struct watch_event {
  enum class kind { put, del };
  kind type = kind::put;
  key_value kv;  // a DELETE carries only key and mod_revision
};

struct watch_reply {
  std::int64_t revision = 0;  // header.revision
  std::int64_t watch_id = 0;
  bool created = false;
  bool canceled = false;
  std::int64_t compact_revision = 0;  // set when canceled because the start revision is compacted
  std::string cancel_reason;
  std::vector<watch_event> events;
};

// Each parser reads one complete reply body (a 200 answer). On failure it returns the error and
// sets `detail` to a short readable reason; `out` is then unspecified.
std::error_code parse_lease_grant(std::string_view body, lease_grant_reply& out,
                                  std::string& detail);
std::error_code parse_keepalive(std::string_view body, keepalive_reply& out, std::string& detail);
std::error_code parse_revoke(std::string_view body, std::string& detail);
std::error_code parse_put(std::string_view body, put_reply& out, std::string& detail);
std::error_code parse_range(std::string_view body, range_reply& out, std::string& detail);
std::error_code parse_txn(std::string_view body, txn_reply& out, std::string& detail);
// One line of the watch stream. A canceled watch is parsed successfully (canceled = true): the
// caller decides what a cancel means.
std::error_code parse_watch(std::string_view line, watch_reply& out, std::string& detail);

// The error a non-200 answer stands for: etcd's own {"error":...} body (server_error, or
// lease_not_found), or malformed_reply with the status and a bounded, printable sample of the
// body (a proxy's HTML page, a plain "Not Found"). Never returns an empty code.
std::error_code parse_http_error(long status, std::string_view body, std::string& detail);

// Splits a byte stream into lines ('\n'; a '\r' before it is dropped). A line longer than `limit`
// bytes stops the splitter for good: overflowed() turns true and next() returns false.
class line_splitter {
 public:
  explicit line_splitter(std::size_t limit = 16u << 20) : limit_(limit) {}

  void feed(std::string_view bytes);
  // The next complete, non-empty line, if there is one.
  bool next(std::string& line);
  bool overflowed() const noexcept { return overflowed_; }

 private:
  std::string buffer_;
  std::size_t start_ = 0;  // bytes before it were already returned
  std::size_t limit_;
  bool overflowed_ = false;
};

}  // namespace galaxies::registry::etcd

template <>
struct std::is_error_code_enum<galaxies::registry::etcd::errc> : std::true_type {};
