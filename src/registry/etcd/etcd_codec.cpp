#include "registry/etcd/etcd_codec.hpp"

#include <array>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/text.hpp"

namespace galaxies::registry::etcd {
namespace {

using json = nlohmann::json;

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "etcd"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::malformed_reply:
        return "malformed reply from etcd";
      case errc::server_error:
        return "etcd refused the request";
      case errc::lease_not_found:
        return "etcd lease not found";
      case errc::watch_canceled:
        return "etcd canceled the watch";
    }
    return "unknown etcd error " + std::to_string(value);
  }
};

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// -1 for a byte outside both base64 alphabets.
constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  table['-'] = 62;  // URL-safe alphabet
  table['_'] = 63;
  return table;
}
constexpr auto decode_table = make_decode_table();

// A bounded, escaped, one-line sample of text from the network, for a log line.
std::string sample(std::string_view text) {
  return base::printable(text, 120);
}

std::error_code malformed(std::string& detail, std::string what) {
  detail = "malformed reply from etcd: " + std::move(what);
  return errc::malformed_reply;
}

// A 64-bit number as the gateway writes it (a decimal string), or as a JSON number; absent is 0.
bool read_int(const json& object, const char* key, std::int64_t& out) {
  out = 0;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (it->is_string()) {
    const auto& text = it->get_ref<const std::string&>();
    const char* first = text.data();
    const char* last = first + text.size();
    const auto [end, ec] = std::from_chars(first, last, out);
    return ec == std::errc() && end == last && first != last;
  }
  if (it->is_number_unsigned()) {
    const auto value = it->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    out = static_cast<std::int64_t>(value);
    return true;
  }
  if (it->is_number_integer()) {
    out = it->get<std::int64_t>();
    return true;
  }
  return false;
}

bool read_bool(const json& object, const char* key, bool& out) {
  out = false;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_boolean()) return false;
  out = it->get<bool>();
  return true;
}

bool read_string(const json& object, const char* key, std::string& out) {
  out.clear();
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

bool read_bytes(const json& object, const char* key, std::string& out) {
  std::string text;
  if (!read_string(object, key, text)) return false;
  return base64_decode(text, out);
}

bool read_revision(const json& object, std::int64_t& revision) {
  revision = 0;
  const auto header = object.find("header");
  if (header == object.end() || header->is_null()) return true;
  return header->is_object() && read_int(*header, "revision", revision);
}

// etcd's error body, in either shape: {"error":"text","message":"text","code":N} from a unary
// call, {"error":{"grpc_code":N,"message":"text",...}} from a stream.
std::error_code error_from(const json& error_body, std::string& detail) {
  std::string message;
  std::int64_t code = 0;
  const auto& inner = error_body.at("error");
  if (inner.is_object()) {
    read_string(inner, "message", message);
    if (!read_int(inner, "grpc_code", code) || code == 0) read_int(inner, "code", code);
  } else {
    read_string(error_body, "message", message);
    if (message.empty() && inner.is_string()) message = inner.get<std::string>();
    read_int(error_body, "code", code);
  }
  if (message.empty()) message = "error code " + std::to_string(code);
  detail = sample(message);
  // gRPC NotFound (5) answers exactly one thing in the calls we make: the lease is gone.
  if (message.find("lease not found") != std::string::npos || code == 5) {
    return errc::lease_not_found;
  }
  return errc::server_error;
}

// Parses `body` and finds the reply object: the top-level object, or the one inside "result".
// An error body becomes its error.
std::error_code open_reply(std::string_view body, const char* what, json& document,
                           const json*& reply, std::string& detail) {
  document = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return malformed(detail, std::string(what) + " is not JSON");
  if (!document.is_object()) return malformed(detail, std::string(what) + " is not an object");
  if (const auto error = document.find("error"); error != document.end() && !error->is_null()) {
    return error_from(document, detail);
  }
  reply = &document;
  if (const auto result = document.find("result"); result != document.end()) {
    if (!result->is_object())
      return malformed(detail, std::string(what) + ": result is not an object");
    if (const auto error = result->find("error"); error != result->end() && !error->is_null()) {
      return error_from(*result, detail);
    }
    reply = &*result;
  }
  return {};
}

bool read_kv(const json& value, key_value& out) {
  return value.is_object() && read_bytes(value, "key", out.key) &&
         read_bytes(value, "value", out.value) &&
         read_int(value, "create_revision", out.create_revision) &&
         read_int(value, "mod_revision", out.mod_revision) &&
         read_int(value, "version", out.version) && read_int(value, "lease", out.lease);
}

std::string dump(const json& value) {
  return value.dump();
}

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

std::string base64_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16 |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1]))
                                << 8 |
                            static_cast<unsigned char>(data[i + 2]);
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += alphabet[n >> 6 & 63];
    out += alphabet[n & 63];
  }
  if (const auto rest = data.size() - i; rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += rest == 2 ? alphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  // One leftover character cannot carry a whole byte: that is truncation, not missing padding.
  if (text.size() % 4 == 1) return false;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (const char c : text) {
    const auto v = decode_table[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    bits = bits << 6 | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out += static_cast<char>(bits >> 16 & 0xff);
      out += static_cast<char>(bits >> 8 & 0xff);
      out += static_cast<char>(bits & 0xff);
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out += static_cast<char>(bits >> 4 & 0xff);
  if (count == 3) {
    out += static_cast<char>(bits >> 10 & 0xff);
    out += static_cast<char>(bits >> 2 & 0xff);
  }
  return true;
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::string lease_grant_request(std::int64_t ttl_seconds) {
  return dump({{"TTL", std::to_string(ttl_seconds)}});
}

std::string lease_keepalive_request(std::int64_t lease) {
  return dump({{"ID", std::to_string(lease)}});
}

std::string lease_revoke_request(std::int64_t lease) {
  return dump({{"ID", std::to_string(lease)}});
}

std::string put_request(std::string_view key, std::string_view value, std::int64_t lease) {
  return dump({{"key", base64_encode(key)},
               {"value", base64_encode(value)},
               {"lease", std::to_string(lease)}});
}

std::string range_key_request(std::string_view key) {
  return dump({{"key", base64_encode(key)}});
}

std::string range_prefix_request(std::string_view prefix) {
  return dump(
      {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_range_end(prefix))}});
}

std::string delete_if_unchanged_request(std::string_view key, std::int64_t mod_revision) {
  const auto key64 = base64_encode(key);
  json compare = {{"key", key64},
                  {"target", "MOD"},
                  {"result", "EQUAL"},
                  {"mod_revision", std::to_string(mod_revision)}};
  json remove = {{"request_delete_range", {{"key", key64}}}};
  return dump({{"compare", json::array({compare})}, {"success", json::array({remove})}});
}

std::string watch_prefix_request(std::string_view prefix, std::int64_t start_revision) {
  return dump({{"create_request",
                {{"key", base64_encode(prefix)},
                 {"range_end", base64_encode(prefix_range_end(prefix))},
                 {"start_revision", std::to_string(start_revision)}}}});
}

std::error_code parse_lease_grant(std::string_view body, lease_grant_reply& out,
                                  std::string& detail) {
  json document;
  const json* reply = nullptr;
  if (auto ec = open_reply(body, "lease grant reply", document, reply, detail)) return ec;
  if (!read_int(*reply, "ID", out.id) || !read_int(*reply, "TTL", out.ttl)) {
    return malformed(detail, "lease grant reply: bad ID or TTL");
  }
  if (out.id == 0 || out.ttl <= 0) return malformed(detail, "lease grant reply: no lease");
  return {};
}

std::error_code parse_keepalive(std::string_view body, keepalive_reply& out, std::string& detail) {
  json document;
  const json* reply = nullptr;
  if (auto ec = open_reply(body, "keepalive reply", document, reply, detail)) return ec;
  if (!read_int(*reply, "ID", out.id) || !read_int(*reply, "TTL", out.ttl)) {
    return malformed(detail, "keepalive reply: bad ID or TTL");
  }
  return {};
}

std::error_code parse_revoke(std::string_view body, std::string& detail) {
  json document;
  const json* reply = nullptr;
  return open_reply(body, "lease revoke reply", document, reply, detail);
}

std::error_code parse_put(std::string_view body, put_reply& out, std::string& detail) {
  json document;
  const json* reply = nullptr;
  if (auto ec = open_reply(body, "put reply", document, reply, detail)) return ec;
  if (!read_revision(*reply, out.revision)) return malformed(detail, "put reply: bad header");
  return {};
}

std::error_code parse_range(std::string_view body, range_reply& out, std::string& detail) {
  json document;
  const json* reply = nullptr;
  if (auto ec = open_reply(body, "range reply", document, reply, detail)) return ec;
  if (!read_revision(*reply, out.revision)) return malformed(detail, "range reply: bad header");
  out.kvs.clear();
  const auto kvs = reply->find("kvs");
  if (kvs == reply->end() || kvs->is_null()) return {};
  if (!kvs->is_array()) return malformed(detail, "range reply: kvs is not an array");
  out.kvs.reserve(kvs->size());
  for (const auto& item : *kvs) {
    key_value kv;
    if (!read_kv(item, kv)) {
      return malformed(detail, "range reply: bad entry #" + std::to_string(out.kvs.size()));
    }
    out.kvs.push_back(std::move(kv));
  }
  return {};
}

std::error_code parse_txn(std::string_view body, txn_reply& out, std::string& detail) {
  json document;
  const json* reply = nullptr;
  if (auto ec = open_reply(body, "txn reply", document, reply, detail)) return ec;
  if (!read_revision(*reply, out.revision) || !read_bool(*reply, "succeeded", out.succeeded)) {
    return malformed(detail, "txn reply: bad header or succeeded");
  }
  return {};
}

std::error_code parse_watch(std::string_view line, watch_reply& out, std::string& detail) {
  json document;
  const json* reply = nullptr;
  if (auto ec = open_reply(line, "watch message", document, reply, detail)) return ec;
  if (!read_revision(*reply, out.revision) || !read_int(*reply, "watch_id", out.watch_id) ||
      !read_bool(*reply, "created", out.created) || !read_bool(*reply, "canceled", out.canceled) ||
      !read_int(*reply, "compact_revision", out.compact_revision) ||
      !read_string(*reply, "cancel_reason", out.cancel_reason)) {
    return malformed(detail, "watch message: bad header or flags");
  }
  out.events.clear();
  const auto events = reply->find("events");
  if (events == reply->end() || events->is_null()) return {};
  if (!events->is_array()) return malformed(detail, "watch message: events is not an array");
  for (const auto& item : *events) {
    watch_event event;
    std::string type;
    const auto kv = item.is_object() ? item.find("kv") : item.end();
    if (!item.is_object() || !read_string(item, "type", type) || kv == item.end() ||
        !read_kv(*kv, event.kv)) {
      return malformed(detail, "watch message: bad event #" + std::to_string(out.events.size()));
    }
    // PUT is the enum's zero value, so the gateway omits it.
    if (type.empty() || type == "PUT") {
      event.type = watch_event::kind::put;
    } else if (type == "DELETE") {
      event.type = watch_event::kind::del;
    } else {
      return malformed(detail, "watch message: unknown event type '" + sample(type) + "'");
    }
    out.events.push_back(std::move(event));
  }
  return {};
}

std::error_code parse_http_error(long status, std::string_view body, std::string& detail) {
  const json document = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!document.is_discarded() && document.is_object()) {
    if (const auto error = document.find("error"); error != document.end() && !error->is_null()) {
      return error_from(document, detail);
    }
  }
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  detail = "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + sample(body));
  return errc::malformed_reply;
}

void line_splitter::feed(std::string_view bytes) {
  if (overflowed_) return;
  // Drop what was already returned before growing: the buffer holds at most one partial line
  // plus one chunk.
  if (start_ > 0 && start_ >= buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
}

bool line_splitter::next(std::string& line) {
  while (!overflowed_) {
    const auto end = buffer_.find('\n', start_);
    if (end == std::string::npos) {
      if (buffer_.size() - start_ > limit_) overflowed_ = true;
      return false;
    }
    std::string_view found(buffer_.data() + start_, end - start_);
    start_ = end + 1;
    if (!found.empty() && found.back() == '\r') found.remove_suffix(1);
    if (found.size() > limit_) {
      overflowed_ = true;
      return false;
    }
    if (found.empty()) continue;
    line.assign(found);
    return true;
  }
  return false;
}

}  // namespace galaxies::registry::etcd
