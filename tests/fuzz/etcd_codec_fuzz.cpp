// libFuzzer target for what etcd's JSON gateway sends back (src/registry/etcd/etcd_codec.hpp) and
// for the etcd:// URL. The first byte picks a mode; the rest is the input:
//   0  a reply body, through every reply parser and the non-200 error parser;
//   1  a watch stream, split into lines (in chunks the input chooses) and parsed line by line;
//   2  bytes for base64 and prefix_range_end;
//   3  an etcd:// URL.
// Properties, which trap when they fail: no parser throws; an error always comes with a
// printable detail (it is logged); what parses survives being written again as the gateway
// would write it; base64 round-trips; the line splitter returns exactly the input's lines.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/text.hpp"
#include "registry/etcd/etcd_codec.hpp"
#include "registry/etcd/etcd_endpoints.hpp"

namespace galaxies::registry::etcd {
namespace {

using json = nlohmann::json;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

// A parser's verdict: success, or an etcd error with a detail that is safe to log.
bool ok(std::error_code ec, const std::string& detail) {
  if (!ec) return true;
  require(ec.category() == error_category() && !detail.empty());
  require(base::is_plain_text(detail));  // escaped: shows as itself, on one line
  return false;
}

bool same(const key_value& a, const key_value& b) {
  return a.key == b.key && a.value == b.value && a.create_revision == b.create_revision &&
         a.mod_revision == b.mod_revision && a.version == b.version && a.lease == b.lease;
}

// As the gateway writes it: bytes in base64, 64-bit numbers as strings, zero values left out.
json gateway_kv(const key_value& kv) {
  json out = json::object();
  if (!kv.key.empty()) out["key"] = base64_encode(kv.key);
  if (!kv.value.empty()) out["value"] = base64_encode(kv.value);
  const std::pair<const char*, std::int64_t> numbers[] = {{"create_revision", kv.create_revision},
                                                          {"mod_revision", kv.mod_revision},
                                                          {"version", kv.version},
                                                          {"lease", kv.lease}};
  for (const auto& [name, value] : numbers)
    if (value != 0) out[name] = std::to_string(value);
  return out;
}

json gateway_header(std::int64_t revision) {
  return {{"revision", std::to_string(revision)}};
}

void check_range(std::string_view body) {
  range_reply r;
  std::string detail;
  if (!ok(parse_range(body, r, detail), detail)) return;
  json again = {{"header", gateway_header(r.revision)}, {"kvs", json::array()}};
  for (const auto& kv : r.kvs) again["kvs"].push_back(gateway_kv(kv));
  range_reply r2;
  require(ok(parse_range(again.dump(), r2, detail), detail));
  require(r2.revision == r.revision && r2.kvs.size() == r.kvs.size());
  for (std::size_t i = 0; i < r.kvs.size(); ++i) require(same(r.kvs[i], r2.kvs[i]));
}

void check_watch(std::string_view line) {
  watch_reply w;
  std::string detail;
  if (!ok(parse_watch(line, w, detail), detail)) return;
  json result = {{"header", gateway_header(w.revision)},
                 {"watch_id", std::to_string(w.watch_id)},
                 {"created", w.created},
                 {"canceled", w.canceled},
                 {"compact_revision", std::to_string(w.compact_revision)},
                 {"cancel_reason", w.cancel_reason},
                 {"events", json::array()}};
  for (const auto& e : w.events) {
    json event = {{"kv", gateway_kv(e.kv)}};
    if (e.type == watch_event::kind::del) event["type"] = "DELETE";
    result["events"].push_back(std::move(event));
  }
  watch_reply w2;
  // Strings came out of a JSON parse, so they are valid UTF-8 and the dump cannot throw.
  const std::string again = json{{"result", result}}.dump();
  require(ok(parse_watch(again, w2, detail), detail));
  require(w2.revision == w.revision && w2.watch_id == w.watch_id && w2.created == w.created &&
          w2.canceled == w.canceled && w2.compact_revision == w.compact_revision &&
          w2.events.size() == w.events.size());
  for (std::size_t i = 0; i < w.events.size(); ++i) {
    require(w2.events[i].type == w.events[i].type && same(w2.events[i].kv, w.events[i].kv));
  }
}

void replies(std::string_view body) {
  std::string detail;
  lease_grant_reply grant;
  if (ok(parse_lease_grant(body, grant, detail), detail)) require(grant.id != 0 && grant.ttl > 0);
  keepalive_reply keepalive;
  ok(parse_keepalive(body, keepalive, detail), detail);
  ok(parse_revoke(body, detail), detail);
  put_reply put;
  ok(parse_put(body, put, detail), detail);
  txn_reply txn;
  ok(parse_txn(body, txn, detail), detail);
  check_range(body);
  check_watch(body);
  const std::error_code ec = parse_http_error(404, body, detail);
  require(ec && !ok(ec, detail));
}

// The lines of `input` as line_splitter defines them, each with its raw length ('\r' included):
// a splitter may overflow only on a line whose raw length is over its limit.
struct reference_lines {
  std::vector<std::string> complete;  // non-empty, '\n' and one '\r' before it dropped
  std::size_t longest_raw = 0;        // of every line, the unterminated tail included
  std::size_t tail = 0;               // bytes after the last '\n'
};

reference_lines lines_of(std::string_view input) {
  reference_lines out;
  std::size_t start = 0;
  for (auto end = input.find('\n'); end != std::string_view::npos; end = input.find('\n', start)) {
    std::string_view line = input.substr(start, end - start);
    out.longest_raw = std::max(out.longest_raw, line.size());
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) out.complete.emplace_back(line);
  }
  out.tail = input.size() - start;
  out.longest_raw = std::max(out.longest_raw, out.tail);
  return out;
}

void watch_stream(std::string_view input) {
  // Small, so that the overflow paths are reached; the chunking comes from the input's length.
  constexpr std::size_t limit = 200;
  line_splitter splitter(limit);
  const auto expected = lines_of(input);
  std::size_t got = 0;
  const std::size_t chunk = 1 + input.size() % 17;
  std::string line;
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    splitter.feed(input.substr(at, chunk));
    while (splitter.next(line)) {
      require(!line.empty() && line.size() <= limit);
      require(got < expected.complete.size() && expected.complete[got] == line);
      ++got;
      check_watch(line);
    }
  }
  if (splitter.overflowed()) {
    require(expected.longest_raw > limit && !splitter.next(line));
    return;
  }
  // Every line came out, and none could have overflowed it.
  require(got == expected.complete.size() && expected.tail <= limit);
  for (const auto& text : expected.complete) require(text.size() <= limit);
}

void bytes(std::string_view input) {
  std::string decoded;
  require(base64_decode(base64_encode(input), decoded) && decoded == input);
  if (base64_decode(input, decoded)) {
    std::string again;
    require(base64_decode(base64_encode(decoded), again) && again == decoded);
  }
  // Every key starting with the prefix sorts below its range end (unsigned bytes, as etcd).
  const std::string end = prefix_range_end(input);
  if (end == std::string(1, '\0')) {
    for (const char c : input) require(static_cast<unsigned char>(c) == 0xff);
    return;
  }
  require(!end.empty() && end.size() <= input.size());
  const std::size_t last = end.size() - 1;
  require(input.substr(0, last) == std::string_view(end).substr(0, last));
  require(static_cast<unsigned char>(end[last]) == static_cast<unsigned char>(input[last]) + 1);
  for (std::size_t i = end.size(); i < input.size(); ++i)
    require(static_cast<unsigned char>(input[i]) == 0xff);
}

void url(std::string_view text) {
  std::vector<endpoint> endpoints;
  try {
    endpoints = parse_url(text);
  } catch (const std::invalid_argument& e) {
    require(base::is_plain_text(e.what()));
    return;
  }
  require(!endpoints.empty());
  for (const auto& e : endpoints) require(!e.host.empty() && e.port != 0);
  require(parse_url(to_url(endpoints)) == endpoints);
}

}  // namespace
}  // namespace galaxies::registry::etcd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace galaxies::registry::etcd;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      replies(input);
      break;
    case 1:
      watch_stream(input);
      break;
    case 2:
      bytes(input);
      break;
    case 3:
      url(input);
      break;
  }
  return 0;
}
