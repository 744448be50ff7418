// Finding the cluster's hosts through the registry, and talking to the masters on this machine.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "registry/registry.hpp"
#include "wire/frame.hpp"

namespace galaxies::cli {

// Every live row of the cluster. Throws std::runtime_error when the registry cannot be read.
std::vector<registry::host_record> read_rows(const client_args& args);

// True for a row of a master on this machine whose Unix socket exists.
bool is_local(const registry::host_record& row);

// The local master to use: the one whose id starts with args.host, or the only/first local one.
// Throws std::runtime_error with a clear message when there is none.
registry::host_record pick_local_master(const std::vector<registry::host_record>& rows,
                                        const client_args& args);

// Connects to a master's Unix socket as an observer, sends what `ask` appends after the hello,
// and hands each frame it sends back to `on_frame` until that returns false. Bounded by
// `timeout` when given (else until the master closes). Throws std::runtime_error when it cannot
// connect, is refused, the master closes first, or the time runs out.
using frame_handler = std::function<bool(const wire::frame_view&)>;
void observe(const registry::host_record& row, const std::string& cluster,
             const std::function<void(std::vector<std::byte>&)>& ask, const frame_handler& on_frame,
             std::optional<std::chrono::milliseconds> timeout);

// Asks a master for its status over its Unix socket (as an observer).
nlohmann::json query_status(const registry::host_record& row, const std::string& cluster,
                            std::chrono::milliseconds timeout);

}  // namespace galaxies::cli
