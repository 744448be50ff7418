// libFuzzer target for what a Redis server sends back and for the redis:// URL. The first byte
// picks a mode; the rest is the input:
//   0  protocol bytes, fed in chunks to hiredis's reader, limited as the connection's; every reply
//   is
//      copied (copy_reply) and goes through the registry's parsing: a SCAN page, an MGET of the
//      last page's keys, a pub/sub message, a key, a keyspace channel;
//   1  a redis:// URL.
// Properties, which trap when they fail: the copy is the reply hiredis parsed; parsed rows belong
// to the cluster and to the keys asked for, sorted; ids and keys read back as written; a URL that
// parses re-parses the same from its parts, and an error message is printable and bounded.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/text.hpp"
#include "registry/redis/redis_layout.hpp"
#include "registry/redis/redis_reply.hpp"
#include "registry/redis/redis_url.hpp"
#include "registry/row_checks.hpp"

namespace galaxies::registry::redis {
namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// copy_reply keeps the type, the bytes, the number and every element.
void require_copy(const redisReply& from, const reply& to) {
  switch (from.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      require(to.type == (from.type == REDIS_REPLY_STRING   ? reply::kind::string
                          : from.type == REDIS_REPLY_STATUS ? reply::kind::status
                                                            : reply::kind::error));
      require(to.text == std::string_view(from.str, from.len));
      return;
    case REDIS_REPLY_INTEGER:
      require(to.type == reply::kind::integer && to.integer == from.integer);
      return;
    case REDIS_REPLY_ARRAY:
      require(to.type == reply::kind::array && to.elements.size() == from.elements);
      for (std::size_t i = 0; i < from.elements; ++i) {
        if (from.element[i] == nullptr)
          require(to.elements[i].is_nil());
        else
          require_copy(*from.element[i], to.elements[i]);
      }
      return;
    default:
      require(to.is_nil());
  }
}

void examine_text(const layout& where, std::string_view text) {
  if (const auto id = host_of_message(text)) {
    const std::string lower = lowercase(text);
    require(lower == join_message(*id) || lower == leave_message(*id));
  }
  if (const auto id = where.id_of_key(text)) {
    require(!id->is_nil() &&
            where.key(*id) ==
                where.key_prefix() + lowercase(text.substr(where.key_prefix().size())));
  }
  if (const auto key = where.key_of_keyspace_channel(text)) {
    require(text.ends_with(*key) && text.size() > key->size());
  }
}

void examine(const layout& where, const reply& r, std::vector<std::string>& keys) {
  if (r.is_string() || r.type == reply::kind::status) examine_text(where, r.text);
  for (const auto& e : r.elements)
    if (e.is_string()) examine_text(where, e.text);

  if (const auto page = parse_scan_page(r)) {
    require(!page->cursor.empty() &&
            page->cursor.find_first_not_of("0123456789") == std::string::npos);
    // As scan_rows does: each key once.
    const std::set<std::string> unique(page->keys.begin(), page->keys.end());
    keys.assign(unique.begin(), unique.end());
    return;
  }

  parsed_rows out;
  if (!parse_rows(where, keys, r, out)) return;
  require(r.is_array() && r.elements.size() == keys.size());
  require(out.rows.size() + out.malformed.size() <= keys.size());
  for (std::size_t i = 0; i < out.rows.size(); ++i) {
    const auto& row = out.rows[i];
    require(row.cluster == where.cluster() && row.expires_ms == 0 && !row.id.is_nil());
    require(i == 0 || out.rows[i - 1].id < row.id);
    const bool asked = std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
      return where.id_of_key(k) == row.id;
    });
    require(asked);
  }
  for (const auto& skipped : out.malformed)
    require(skipped.why && std::find(keys.begin(), keys.end(), skipped.key) != keys.end());
  for (const auto& row : out.rows) require(!check_row_fields(row));
}

void protocol(std::string_view bytes) {
  const layout where("prod", 0);
  std::unique_ptr<redisReader, decltype(&redisReaderFree)> reader(redisReaderCreate(),
                                                                  redisReaderFree);
  require(reader != nullptr);
  limit_reply_elements(*reader);  // as the connection does
  std::vector<std::string> keys;
  // Chunks as reads would deliver them; the size comes from the input's length.
  const std::size_t chunk = 1 + bytes.size() % 13;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    const auto part = bytes.substr(at, chunk);
    if (redisReaderFeed(reader.get(), part.data(), part.size()) != REDIS_OK) return;
    for (;;) {
      void* raw = nullptr;
      // A protocol error leaves the reader unusable, as the connection then is.
      if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) return;
      if (raw == nullptr) break;
      std::unique_ptr<redisReply, decltype(&freeReplyObject)> owned(static_cast<redisReply*>(raw),
                                                                    freeReplyObject);
      const reply copy = copy_reply(*owned);
      require_copy(*owned, copy);
      examine(where, copy, keys);
    }
  }
}

std::string percent_encoded(std::string_view text) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')) {
      out += c;
    } else {
      out += '%';
      out += digits[u >> 4];
      out += digits[u & 15];
    }
  }
  return out;
}

void url(std::string_view text) {
  target t;
  try {
    t = parse_url(text);
  } catch (const std::invalid_argument& e) {
    const std::string_view message = e.what();
    // The URL is shown escaped, at most 4 * 80 + 3 bytes of it (base::printable), in one line.
    require(message.size() < 600);
    require(base::is_plain_text(message));
    return;
  }
  require(!t.host.empty() && t.port != 0 && (!t.db || *t.db >= 0));
  // The same target, written from its parts.
  std::string again = "redis://";
  if (!t.password.empty())
    again += percent_encoded(t.username) + ":" + percent_encoded(t.password) + "@";
  else
    require(t.username.empty());
  again += t.endpoint();
  if (t.db) again += "/" + std::to_string(*t.db);
  const target back = parse_url(again);
  require(back.host == t.host && back.port == t.port && back.username == t.username &&
          back.password == t.password && back.db == t.db);
  require(back.describe() == t.describe());
}

}  // namespace
}  // namespace galaxies::registry::redis

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace galaxies::registry::redis;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    protocol(input);
  else
    url(input);
  return 0;
}
