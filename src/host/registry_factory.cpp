// Backend selection by URL, and the default URL. Start-up errors here throw; nothing else does.
#include "host/registry_factory.hpp"

#include <stdexcept>

#include "base/limits.hpp"
#include "base/private_directory.hpp"
#include "base/text.hpp"
#include "registry/backends.hpp"
#include "registry/offloaded_registry.hpp"
#include "registry/row_checks.hpp"

namespace galaxies::host {
namespace {

// Quoted input for an error message: bounded, escaped, one line.
std::string quoted(std::string_view text) {
  return "'" + base::printable(text) + "'";
}

void require_cluster_name(std::string_view cluster) {
  if (!registry::is_valid_cluster_name(cluster)) {
    throw std::invalid_argument("invalid cluster name " + quoted(cluster) + ": use 1.." +
                                std::to_string(limits::max_cluster_name) +
                                " characters of A-Z a-z 0-9 . _ -");
  }
}

}  // namespace

std::string default_registry_url(std::string_view cluster) {
  require_cluster_name(cluster);
  // Beside the master's socket, in the directory the master checks is private to its user. A
  // directory (one file per host), named apart from the single file ".registry.json" of the
  // format before it, so that a master of either version finds its own kind there.
  return "file:" + base::runtime_directory() + "/" + std::string(cluster) + ".registry";
}

std::unique_ptr<registry::registry> make_registry(const asio::any_io_executor& executor,
                                                  std::string_view url, std::string_view cluster,
                                                  const registry::options& opts) {
  require_cluster_name(cluster);
  if (opts.ttl.count() <= 0) throw std::invalid_argument("registry ttl must be positive");
  if (opts.refresh.count() < 0) {
    throw std::invalid_argument("registry refresh must be positive, or 0 for ttl/3");
  }
  const std::string name(cluster);
  registry::offloaded_registry::factory backend;
  if (url.starts_with("file:")) {
    backend = registry::file_backend(url, name, opts);
  } else if (url.starts_with("redis://")) {
    backend = registry::redis_backend(url, name, opts);
  } else if (url.starts_with("etcd://")) {
    backend = registry::etcd_backend(url, name, opts);
  } else {
    throw std::invalid_argument("unknown registry URL " + quoted(url) +
                                ": use file:PATH, etcd://HOST:PORT or redis://HOST:PORT");
  }
  // Every backend runs on a thread of its own (offloaded_registry.hpp): a store's stalls (the
  // file directory's lock, a DNS lookup when hiredis connects) never reach the caller's loop.
  return std::make_unique<registry::offloaded_registry>(executor, backend);
}

}  // namespace galaxies::host
