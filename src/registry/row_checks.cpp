#include "registry/row_checks.hpp"

#include <algorithm>
#include <asio/ip/address.hpp>
#include <string>

#include "base/host_port.hpp"
#include "base/limits.hpp"
#include "base/text.hpp"

namespace galaxies::registry {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "registry row"; }
  std::string message(int value) const override {
    switch (static_cast<row_error>(value)) {
      case row_error::not_json:
        return "not a JSON row of at most " + std::to_string(limits::max_registry_row_size) +
               " bytes";
      case row_error::not_an_object:
        return "not a JSON object";
      case row_error::bad_id:
        return "no valid host id";
      case row_error::bad_cluster:
        return "bad cluster name";
      case row_error::bad_address:
        return "address is not a numeric ip:port";
      case row_error::bad_unix_path:
        return "bad unix path (too long, not UTF-8, or control characters)";
      case row_error::bad_hostname:
        return "bad hostname (too long, not UTF-8, or control characters)";
      case row_error::bad_pid:
        return "bad pid";
      case row_error::bad_expiry:
        return "bad or missing expires_ms";
      case row_error::foreign_key:
        return "row filed under another host's key or another cluster";
      case row_error::bad_format:
        return "not a row file of this version's format";
      case row_error::not_a_file:
        return "not a regular file";
    }
    return "registry row error " + std::to_string(value);
  }
};

bool is_bounded_plain_text(std::string_view text, std::size_t max) {
  return text.size() <= max && base::is_plain_text(text);
}

}  // namespace

const std::error_category& row_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(row_error e) noexcept {
  return {static_cast<int>(e), row_category()};
}

bool is_valid_cluster_name(std::string_view name) noexcept {
  return !name.empty() && name.size() <= limits::max_cluster_name &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

bool is_numeric_endpoint(std::string_view text) {
  if (text.size() > limits::max_registry_address) return false;
  const auto split = base::split_host_port(text);
  if (!split) return false;
  std::error_code bad;
  asio::ip::make_address(std::string(split->host), bad);
  return !bad;
}

std::error_code check_row_fields(const host_record& row) {
  if (!is_valid_cluster_name(row.cluster)) return row_error::bad_cluster;
  if (!is_numeric_endpoint(row.address)) return row_error::bad_address;
  if (!is_bounded_plain_text(row.unix_path, limits::max_unix_path)) return row_error::bad_unix_path;
  if (!is_bounded_plain_text(row.hostname, limits::max_hostname)) return row_error::bad_hostname;
  return {};
}

}  // namespace galaxies::registry
