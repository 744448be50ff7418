// How the hosts of a cluster are laid out in Redis, and the parsing of what comes back:
//   key      galaxies:<cluster>:host:<uuid>  = the row's JSON (row_json.hpp, no expires_ms), with
//                                              a TTL refreshed by its host's heartbeat
//   channel  galaxies:<cluster>:hosts        "join <uuid>" / "leave <uuid>": others rescan
//   channels __keyevent@<db>__:expired, :del  when the server emits them (notify-keyspace-events
//   pattern  __keyspace@<db>__:<key prefix>*   with E or K, and x / g); never required
// Cluster names are [A-Za-z0-9._-] (checked by make_registry), so they need no escaping in a SCAN
// MATCH pattern. Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/redis/redis_reply.hpp"
#include "registry/registry.hpp"

namespace galaxies::registry::redis {

class layout {
 public:
  layout(std::string cluster, int db);

  const std::string& cluster() const { return cluster_; }
  const std::string& key_prefix() const { return prefix_; }  // "galaxies:<cluster>:host:"
  std::string key(const host_id& id) const { return prefix_ + id.to_string(); }
  std::string scan_pattern() const { return prefix_ + "*"; }
  std::string hosts_channel() const { return "galaxies:" + cluster_ + ":hosts"; }
  std::string expired_channel() const { return keyevent_ + "expired"; }
  std::string deleted_channel() const { return keyevent_ + "del"; }
  std::string keyspace_pattern() const { return keyspace_ + prefix_ + "*"; }

  // The key a keyspace channel ("__keyspace@<db>__:<key>") is about; nullopt for other channels.
  std::optional<std::string_view> key_of_keyspace_channel(std::string_view channel) const;

  // The id a key of this cluster names; nullopt for any other key.
  std::optional<host_id> id_of_key(std::string_view key) const;

 private:
  std::string cluster_;
  std::string prefix_;
  std::string keyevent_;
  std::string keyspace_;
};

std::string join_message(const host_id& id);
std::string leave_message(const host_id& id);
// The host a message on the hosts channel names; nullopt for anything else.
std::optional<host_id> host_of_message(std::string_view payload);

// EVAL body: deletes KEYS[1] only if its row still names ARGV[1] (id) at ARGV[2] (address).
// Returns 1 if deleted, 0 otherwise. Atomic on the server, hence a real compare-and-delete.
extern const char* const compare_and_delete_script;

// One SCAN reply: [cursor, [key...]]. nullopt for any other shape.
struct scan_page {
  std::string cursor;
  std::vector<std::string> keys;
};
std::optional<scan_page> parse_scan_page(const reply& value);

// The rows an MGET of `keys` returned, added to `out`. A nil value (the key expired between SCAN
// and MGET) is skipped silently; a value that is not a valid row of this cluster (row_checks.hpp),
// or whose id differs from its key's, is skipped and listed in `malformed` with the reason (the
// first limits::max_registry_hosts of them). False
// if the reply is not an array of keys.size() elements. Rows are sorted by id; expires_ms stays 0
// (Redis keeps the TTL).
struct malformed_row {
  std::string key;
  std::error_code why;
};
struct parsed_rows {
  std::vector<host_record> rows;
  std::vector<malformed_row> malformed;
};
bool parse_rows(const layout& where, const std::vector<std::string>& keys, const reply& values,
                parsed_rows& out);

}  // namespace galaxies::registry::redis
