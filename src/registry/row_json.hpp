// One registry row as a JSON object, the same in every backend (the file's "hosts" array, the
// value of an etcd key, the value of a Redis key): {"id","cluster","address","unix","hostname",
// "pid","expires_ms"}. Stores with their own expiry (etcd leases, Redis TTLs) omit expires_ms.
// Decoding is where a row stops being hostile: every field is checked (row_checks.hpp).
// Threading: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>

#include "registry/registry.hpp"
#include "registry/row_checks.hpp"

namespace galaxies::registry {

enum class expiry_field { required, absent };

nlohmann::json row_to_json(const host_record& row, expiry_field expiry);
// Decodes and checks one row: an empty code, or the row_error saying why it is unusable (`out`
// is then unspecified). Keys other than the row's are ignored, for rows of later versions.
std::error_code parse_row(const nlohmann::json& value, host_record& out, expiry_field expiry);

// The compact text of one row, and its parse. Text longer than limits::max_registry_row_size is
// refused before it is parsed. Invalid UTF-8 in a field is replaced when writing, never thrown: a
// write must not take down the event loop (and such a row is refused by every reader).
std::string row_to_text(const host_record& row, expiry_field expiry);
std::error_code parse_row_text(std::string_view text, host_record& out, expiry_field expiry);

}  // namespace galaxies::registry
