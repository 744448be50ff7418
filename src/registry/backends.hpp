// The backends that make a registry of a store URL, one function each, for the host's factory
// (host/registry_factory.hpp). The etcd and Redis ones may be left out of a build
// (GALAXIES_WITH_ETCD, GALAXIES_WITH_REDIS: no libcurl headers, no hiredis): their function is
// then the one in registry/absent/, which refuses every URL with a message naming the option.
// Each parses the URL at once, on the caller's thread (a malformed one throws
// std::invalid_argument there), and returns what builds the backend on the thread of an
// offloaded_registry. `cluster` and `opts` are already validated.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "registry/offloaded_registry.hpp"
#include "registry/registry.hpp"

namespace galaxies::registry {

// "file:PATH", PATH naming the registry's directory; "file:///abs" as well.
offloaded_registry::factory file_backend(std::string_view url, std::string cluster,
                                         const options& opts);
// "etcd://HOST:PORT[,HOST:PORT...]" (registry/etcd/etcd_registry.hpp).
offloaded_registry::factory etcd_backend(std::string_view url, std::string cluster,
                                         const options& opts);
// "redis://[:PASSWORD@]HOST:PORT[/DB]" (registry/redis/redis_registry.hpp).
offloaded_registry::factory redis_backend(std::string_view url, std::string cluster,
                                          const options& opts);

// What a left-out backend throws: `url` (escaped) needs `backend`, which this build leaves out;
// rebuild with `option`=ON.
std::invalid_argument left_out(std::string_view url, std::string_view backend,
                               std::string_view option);

}  // namespace galaxies::registry
