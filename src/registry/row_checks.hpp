// What a registry row must be before anything uses it. Rows come from a store that others can
// write (a file any process of the user can edit, an etcd or Redis shared by many), so a row is
// hostile until these checks pass; a row that fails one is skipped, never half-used.
// Threading: pure functions.
#pragma once

#include <string_view>
#include <system_error>
#include <type_traits>

#include "registry/registry.hpp"

namespace galaxies::registry {

// Why a row was skipped.
enum class row_error {
  not_json = 1,   // the text is not JSON, or is longer than limits::max_registry_row_size
  not_an_object,  // the JSON is not an object
  bad_id,         // missing, not a string, not a UUID, or the nil UUID
  bad_cluster,    // not 1..max_cluster_name characters of A-Z a-z 0-9 . _ -
  bad_address,    // not a numeric ip:port of at most max_registry_address bytes
  bad_unix_path,  // longer than max_unix_path, not UTF-8, or holding a control character
  bad_hostname,   // longer than max_hostname, not UTF-8, or holding a control character
  bad_pid,        // not an unsigned 32-bit number
  bad_expiry,     // expires_ms missing (where the store has no expiry of its own) or not an integer
  foreign_key,    // filed under another host's key, or under another cluster's
  bad_format,     // a file registry row file of another format version, or of none
  not_a_file,     // a file registry row file that is not a regular file (a FIFO, a link, ...)
};

const std::error_category& row_category() noexcept;
std::error_code make_error_code(row_error e) noexcept;

// The cluster name rule: it becomes part of file names and store keys, hence the small alphabet.
bool is_valid_cluster_name(std::string_view name) noexcept;
// "ip:port" or "[ipv6]:port" with a numeric address, at most limits::max_registry_address bytes.
bool is_numeric_endpoint(std::string_view text);

// Checks every text field of a row already decoded (the id is checked by the decoder).
std::error_code check_row_fields(const host_record& row);

}  // namespace galaxies::registry

template <>
struct std::is_error_code_enum<galaxies::registry::row_error> : std::true_type {};
