#include "registry/redis/redis_layout.hpp"

#include <algorithm>

#include "base/limits.hpp"
#include "registry/row_json.hpp"

namespace galaxies::registry::redis {

layout::layout(std::string cluster, int db)
    : cluster_(std::move(cluster)),
      prefix_("galaxies:" + cluster_ + ":host:"),
      keyevent_("__keyevent@" + std::to_string(db) + "__:"),
      keyspace_("__keyspace@" + std::to_string(db) + "__:") {}

std::optional<std::string_view> layout::key_of_keyspace_channel(std::string_view channel) const {
  if (!channel.starts_with(keyspace_)) return std::nullopt;
  return channel.substr(keyspace_.size());
}

std::optional<host_id> layout::id_of_key(std::string_view key) const {
  if (!key.starts_with(prefix_)) return std::nullopt;
  auto id = host_id::parse(key.substr(prefix_.size()));
  if (!id || id->is_nil()) return std::nullopt;
  return id;
}

std::string join_message(const host_id& id) {
  return "join " + id.to_string();
}

std::string leave_message(const host_id& id) {
  return "leave " + id.to_string();
}

std::optional<host_id> host_of_message(std::string_view payload) {
  const auto space = payload.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto verb = payload.substr(0, space);
  if (verb != "join" && verb != "leave") return std::nullopt;
  return host_id::parse(payload.substr(space + 1));
}

// cjson is part of Redis's Lua environment in every version that has EVAL. A value that is not
// JSON (pcall fails) is not ours to delete.
const char* const compare_and_delete_script = R"lua(
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ok, row = pcall(cjson.decode, value)
if ok and type(row) == 'table' and type(row['id']) == 'string'
   and string.lower(row['id']) == string.lower(ARGV[1]) and row['address'] == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

std::optional<scan_page> parse_scan_page(const reply& value) {
  if (!value.is_array() || value.elements.size() != 2) return std::nullopt;
  const auto& cursor = value.elements[0];
  const auto& keys = value.elements[1];
  if (!cursor.is_string() || cursor.text.empty() || !keys.is_array()) return std::nullopt;
  if (cursor.text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  scan_page page;
  page.cursor = cursor.text;
  page.keys.reserve(keys.elements.size());
  for (const auto& key : keys.elements) {
    if (!key.is_string()) return std::nullopt;
    page.keys.push_back(key.text);
  }
  return page;
}

bool parse_rows(const layout& where, const std::vector<std::string>& keys, const reply& values,
                parsed_rows& out) {
  if (!values.is_array() || values.elements.size() != keys.size()) return false;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto& value = values.elements[i];
    if (value.is_nil()) continue;
    host_record row;
    const auto key_id = where.id_of_key(keys[i]);
    std::error_code why = value.is_string() ? parse_row_text(value.text, row, expiry_field::absent)
                                            : make_error_code(row_error::not_json);
    if (!why && (!key_id || row.id != *key_id || row.cluster != where.cluster()))
      why = row_error::foreign_key;
    if (why) {
      if (out.malformed.size() < limits::max_registry_hosts)
        out.malformed.push_back({keys[i], why});
      continue;
    }
    out.rows.push_back(std::move(row));
  }
  std::sort(out.rows.begin(), out.rows.end(),
            [](const host_record& a, const host_record& b) { return a.id < b.id; });
  return true;
}

}  // namespace galaxies::registry::redis
