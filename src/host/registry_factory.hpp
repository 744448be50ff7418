// The host picks its registry: the backend a URL names, made here, so that the registry layer
// knows no list of its backends and a build may leave the etcd and Redis ones out
// (GALAXIES_WITH_ETCD, GALAXIES_WITH_REDIS; registry/backends.hpp). Used by the master and the
// CLI. Start-up errors here throw std::invalid_argument with a clear message; nothing else does.
#pragma once

#include <asio/any_io_executor.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "registry/registry.hpp"

namespace galaxies::host {

// The default registry URL for a cluster: an embedded file, per user and per cluster name.
std::string default_registry_url(std::string_view cluster);

// Makes the backend the URL names ("file:PATH", "etcd://HOST:PORT[,...]",
// "redis://[:PASSWORD@]HOST:PORT[/DB]"), on a thread of its own (registry/offloaded_registry.hpp).
// Throws std::invalid_argument for an invalid cluster name or options, an unknown scheme, a
// malformed URL, or a backend this build leaves out (the message names the build option).
std::unique_ptr<registry::registry> make_registry(const asio::any_io_executor& executor,
                                                  std::string_view url, std::string_view cluster,
                                                  const registry::options& opts = {});

}  // namespace galaxies::host
