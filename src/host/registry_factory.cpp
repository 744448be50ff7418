// Backend selection by URL, and the default URL. Start-up errors here throw; nothing else does.
#include "registry/registry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "base/limits.hpp"
#include "base/private_directory.hpp"
#include "base/text.hpp"
#include "registry/etcd/etcd_registry.hpp"
#include "registry/file_registry.hpp"
#include "registry/offloaded_registry.hpp"
#include "registry/redis/redis_registry.hpp"
#include "registry/row_checks.hpp"

namespace galaxies::registry {
namespace {

// Quoted input for an error message: bounded, escaped, one line.
std::string quoted(std::string_view text) {
  return "'" + base::printable(text) + "'";
}

void require_cluster_name(std::string_view cluster) {
  if (!is_valid_cluster_name(cluster)) {
    throw std::invalid_argument("invalid cluster name " + quoted(cluster) + ": use 1.." +
                                std::to_string(limits::max_cluster_name) +
                                " characters of A-Z a-z 0-9 . _ -");
  }
}

// "file:PATH", PATH naming the registry's directory; "file:///abs" is accepted too, as people
// write file URLs that way. Trailing slashes are dropped: "file:/run/x/" is the directory x.
std::string file_path(std::string_view url) {
  std::string_view path = url.substr(std::string_view("file:").size());
  if (path.starts_with("//")) {
    path.remove_prefix(2);
    if (!path.starts_with('/')) {
      throw std::invalid_argument("registry URL " + quoted(url) +
                                  " names a remote host; use file:PATH or file:///PATH");
    }
  }
  while (path.size() > 1 && path.ends_with('/')) path.remove_suffix(1);
  const auto slash = path.rfind('/');
  const auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (path.empty() || name.empty() || name == "." || name == "..") {
    throw std::invalid_argument(
        "registry URL " + quoted(url) +
        " names no directory; use file:PATH, e.g. file:/tmp/mycluster.registry");
  }
  return std::string(path);
}

}  // namespace

bool view_filter::changed(const std::vector<host_record>& view) {
  std::vector<std::tuple<host_id, std::string, std::string>> keys;
  keys.reserve(view.size());
  for (const auto& row : view) keys.emplace_back(row.id, row.address, row.unix_path);
  if (last_ && *last_ == keys) return false;
  last_ = std::move(keys);
  return true;
}

void view_bound::apply(std::vector<host_record>& view, const host_id& self,
                       const std::string& where) {
  if (view.size() <= max_rows_) {
    if (over_)
      spdlog::info("registry {}: {} host(s) listed, within the limit again", where, view.size());
    over_ = false;
    return;
  }
  if (!over_) {
    spdlog::warn(
        "registry {}: {} hosts listed, more than the limit of {}; using ourselves and the "
        "first ones by id",
        where, view.size(), max_rows_);
  }
  over_ = true;
  const auto self_at =
      std::find_if(view.begin(), view.end(), [&](const host_record& r) { return r.id == self; });
  const bool self_listed = self_at != view.end();
  const bool self_beyond =
      self_listed && static_cast<std::size_t>(self_at - view.begin()) >= max_rows_;
  if (self_beyond) {
    // Ourselves in the last place kept, the order by id unchanged.
    std::rotate(view.begin() + static_cast<std::ptrdiff_t>(max_rows_) - 1, self_at, self_at + 1);
  }
  view.resize(max_rows_);
}

host_record own_row(const host_record& self, const std::string& cluster, const std::string& where) {
  host_record row = self;
  if (row.cluster != cluster) {
    if (!row.cluster.empty()) {
      spdlog::warn(
          "registry {}: own row names cluster '{}' but the registry serves '{}'; using '{}'", where,
          row.cluster, cluster, cluster);
    }
    row.cluster = cluster;
  }
  // Every reader checks rows the same way: a row of ours that fails would be invisible to all.
  if (const auto ec = check_row_fields(row)) {
    spdlog::error("registry {}: our own row will be skipped by other hosts: {}", where,
                  ec.message());
  }
  return row;
}

std::string default_url(std::string_view cluster) {
  require_cluster_name(cluster);
  // Beside the master's socket, in the directory the master checks is private to its user. A
  // directory (one file per host), named apart from the single file ".registry.json" of the
  // format before it, so that a master of either version finds its own kind there.
  return "file:" + base::runtime_directory() + "/" + std::string(cluster) + ".registry";
}

std::unique_ptr<registry> make_registry(const asio::any_io_executor& executor, std::string_view url,
                                        std::string_view cluster, const options& opts) {
  require_cluster_name(cluster);
  if (opts.ttl.count() <= 0) throw std::invalid_argument("registry ttl must be positive");
  if (opts.refresh.count() < 0) {
    throw std::invalid_argument("registry refresh must be positive, or 0 for ttl/3");
  }
  // Every backend runs on a thread of its own (offloaded_registry.hpp): a store's stalls (the
  // file directory's lock, a DNS lookup when hiredis connects) never reach the caller's loop.
  const auto offloaded = [&](auto make) {
    return std::make_unique<offloaded_registry>(executor, std::move(make));
  };
  const std::string name(cluster);
  if (url.starts_with("file:")) {
    return offloaded([path = file_path(url), name, opts](const asio::any_io_executor& own) {
      return std::make_unique<file_registry>(own, path, name, opts);
    });
  }
  if (url.starts_with("redis://")) {
    return offloaded([where = redis::parse_url(url), name, opts](const asio::any_io_executor& own) {
      return std::make_unique<redis_registry>(own, where, name, opts);
    });
  }
  if (url.starts_with("etcd://")) {
    return offloaded([where = etcd::parse_url(url), name, opts](const asio::any_io_executor& own) {
      return std::make_unique<etcd_registry>(own, where, name, opts);
    });
  }
  throw std::invalid_argument("unknown registry URL " + quoted(url) +
                              ": use file:PATH, etcd://HOST:PORT or redis://HOST:PORT");
}

}  // namespace galaxies::registry
