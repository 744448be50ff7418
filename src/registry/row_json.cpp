#include "registry/row_json.hpp"

#include <cstdint>
#include <limits>

#include "base/limits.hpp"

namespace galaxies::registry {
namespace {

using json = nlohmann::json;

bool get_string(const json& row, const char* key, std::string& out, bool required) {
  const auto it = row.find(key);
  if (it == row.end()) return !required;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

}  // namespace

json row_to_json(const host_record& row, expiry_field expiry) {
  json value = {{"id", row.id.to_string()}, {"cluster", row.cluster},   {"address", row.address},
                {"unix", row.unix_path},    {"hostname", row.hostname}, {"pid", row.pid}};
  if (expiry == expiry_field::required) value["expires_ms"] = row.expires_ms;
  return value;
}

std::error_code parse_row(const json& row, host_record& out, expiry_field expiry) {
  if (!row.is_object()) return row_error::not_an_object;
  std::string id_text;
  if (!get_string(row, "id", id_text, true)) return row_error::bad_id;
  const auto id = host_id::parse(id_text);
  if (!id || id->is_nil()) return row_error::bad_id;
  out.id = *id;
  if (!get_string(row, "cluster", out.cluster, true)) return row_error::bad_cluster;
  if (!get_string(row, "address", out.address, true)) return row_error::bad_address;
  if (!get_string(row, "unix", out.unix_path, false)) return row_error::bad_unix_path;
  if (!get_string(row, "hostname", out.hostname, false)) return row_error::bad_hostname;
  if (const auto pid = row.find("pid"); pid != row.end()) {
    // Parsed text gives unsigned numbers; a row built in memory may hold a signed one.
    const bool non_negative =
        pid->is_number_unsigned() || (pid->is_number_integer() && pid->get<std::int64_t>() >= 0);
    if (!non_negative || pid->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
      return row_error::bad_pid;
    out.pid = pid->get<std::uint32_t>();
  }
  if (auto ec = check_row_fields(out)) return ec;
  if (expiry == expiry_field::absent) return {};
  const auto expires = row.find("expires_ms");
  if (expires == row.end() || !expires->is_number_integer()) return row_error::bad_expiry;
  out.expires_ms = expires->get<std::int64_t>();
  return {};
}

std::string row_to_text(const host_record& row, expiry_field expiry) {
  return row_to_json(row, expiry).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::error_code parse_row_text(std::string_view text, host_record& out, expiry_field expiry) {
  if (text.size() > limits::max_registry_row_size) return row_error::not_json;
  const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return row_error::not_json;
  return parse_row(value, out, expiry);
}

}  // namespace galaxies::registry
