// libFuzzer target for what a registry store hands back: a host row as JSON text (the value of
// an etcd or Redis key), the file registry's row file (the row and its format version), and the
// host ids inside them. Whatever parses must obey the row rules (a non-nil id, a cluster) and
// survive our own serialisation unchanged; a failed property traps and leaves the input behind.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "galaxies/ids.hpp"
#include "registry/file_store.hpp"
#include "registry/row_json.hpp"

namespace galaxies::registry {
namespace {

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void check_row(std::string_view text, expiry_field expiry) {
  host_record row;
  if (parse_row_text(text, row, expiry)) return;
  // What decodes has passed every row check: usable as it is, and ours to write back unchanged.
  require(!row.id.is_nil() && is_valid_cluster_name(row.cluster) && !check_row_fields(row));
  if (expiry == expiry_field::absent) require(row.expires_ms == 0);
  host_record again;
  require(!parse_row_text(row_to_text(row, expiry), again, expiry) && again == row);
}

void check_file(std::string_view text) {
  host_record row;
  if (file_store::parse(text, row)) return;
  require(!row.id.is_nil() && is_valid_cluster_name(row.cluster) && !check_row_fields(row));
  host_record again;
  require(!file_store::parse(file_store::serialize(row), again) && again == row);
}

void check_id(std::string_view text) {
  const auto id = uuid::parse(text);
  if (!id) return;
  const std::string canonical = id->to_string();
  require(canonical.size() == 36 && uuid::parse(canonical) == id);
  for (std::size_t i = 0; i < canonical.size(); ++i) {
    const char c = text[i];
    require(canonical[i] == (c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c));
  }
}

}  // namespace
}  // namespace galaxies::registry

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace galaxies::registry;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_row(text, expiry_field::absent);
  check_row(text, expiry_field::required);
  check_file(text);
  check_id(text.substr(0, 36));
  return 0;
}
