// One registry row as a JSON object, the same in every backend (the file's "hosts" array, the
// value of an etcd key, the value of a Redis key): {"id","cluster","address","unix","hostname",
// "pid","expires_ms"}. Stores with their own expiry (etcd leases, Redis TTLs) omit expires_ms.
// Threading: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "registry/registry.hpp"

namespace galaxies::registry {

enum class expiry_field { required, absent };

nlohmann::json row_to_json(const host_record& row, expiry_field expiry);
// False for anything but a well-formed row: a wrong type, a missing required key, a nil or
// malformed id, an empty cluster.
bool row_from_json(const nlohmann::json& value, host_record& out, expiry_field expiry);

// The compact text of one row, and its parse (false for invalid JSON or a bad row). Invalid UTF-8
// in a hostname or a path is replaced, never thrown: a write must not take down the event loop.
std::string row_to_text(const host_record& row, expiry_field expiry);
bool row_from_text(std::string_view text, host_record& out, expiry_field expiry);

}  // namespace galaxies::registry
