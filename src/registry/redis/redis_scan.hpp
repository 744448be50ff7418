// Reads the rows of one cluster over a ready connection: SCAN MATCH <prefix>* COUNT 100 over all
// pages, then MGET of the keys found, in key (id) order, in batches, until one row more than
// limits::max_registry_hosts is read: a view holds no more, and the one extra row tells the
// caller that the store lists more than the limit. Not atomic (nothing in Redis makes SCAN so): a
// key that appears or expires meanwhile may be missed or read as nil; the callers rescan on every
// join/leave message and periodically, so the view converges.
// Threading: on the connection's executor; `done` runs once, posted by the connection, unless
// the connection is closed or destroyed first (then never).
#pragma once

#include <functional>
#include <string>
#include <system_error>

#include "registry/redis/redis_connection.hpp"
#include "registry/redis/redis_layout.hpp"

namespace galaxies::registry::redis {

using scan_handler =
    std::function<void(std::error_code, const std::string& detail, parsed_rows rows)>;

void scan_rows(connection& conn, const layout& where, scan_handler done);

}  // namespace galaxies::registry::redis
