// Finding the cluster's hosts through the registry, and talking to the masters on this machine.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.hpp"
#include "registry/registry.hpp"

namespace galaxies::cli {

// Every live row of the cluster. Throws std::runtime_error when the registry cannot be read.
std::vector<registry::host_record> read_rows(const client_args& args);

// True for a row of a master on this machine whose Unix socket exists.
bool is_local(const registry::host_record& row);

// The local master to use: the one whose id starts with args.host, or the only/first local one.
// Throws std::runtime_error with a clear message when there is none.
registry::host_record pick_local_master(const std::vector<registry::host_record>& rows,
                                        const client_args& args);

// Asks a master for its status over its Unix socket (as an observer).
nlohmann::json query_status(const registry::host_record& row, const std::string& cluster,
                            std::chrono::milliseconds timeout);

}  // namespace galaxies::cli
