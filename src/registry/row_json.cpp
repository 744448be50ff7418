#include "registry/row_json.hpp"

#include <cstdint>
#include <limits>

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

bool row_from_json(const json& row, host_record& out, expiry_field expiry) {
  if (!row.is_object()) return false;
  std::string id_text;
  if (!get_string(row, "id", id_text, true)) return false;
  const auto id = host_id::parse(id_text);
  if (!id || id->is_nil()) return false;
  out.id = *id;
  if (!get_string(row, "cluster", out.cluster, true) || out.cluster.empty()) return false;
  if (!get_string(row, "address", out.address, true)) return false;
  if (!get_string(row, "unix", out.unix_path, false)) return false;
  if (!get_string(row, "hostname", out.hostname, false)) return false;
  if (const auto pid = row.find("pid"); pid != row.end()) {
    if (!pid->is_number_unsigned() ||
        pid->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
      return false;
    out.pid = pid->get<std::uint32_t>();
  }
  if (expiry == expiry_field::absent) return true;
  const auto expires = row.find("expires_ms");
  if (expires == row.end() || !expires->is_number_integer()) return false;
  out.expires_ms = expires->get<std::int64_t>();
  return true;
}

std::string row_to_text(const host_record& row, expiry_field expiry) {
  return row_to_json(row, expiry).dump(-1, ' ', false, json::error_handler_t::replace);
}

bool row_from_text(std::string_view text, host_record& out, expiry_field expiry) {
  const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return !value.is_discarded() && row_from_json(value, out, expiry);
}

}  // namespace galaxies::registry
