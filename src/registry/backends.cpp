// The backends every build has (the file one) and the refusal of those a build leaves out.
#include "registry/backends.hpp"

#include <memory>

#include "base/text.hpp"
#include "registry/file_registry.hpp"

namespace galaxies::registry {
namespace {

// Quoted input for an error message: bounded, escaped, one line.
std::string quoted(std::string_view text) {
  return "'" + base::printable(text) + "'";
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

offloaded_registry::factory file_backend(std::string_view url, std::string cluster,
                                         const options& opts) {
  return [path = file_path(url), cluster = std::move(cluster),
          opts](const asio::any_io_executor& own) -> std::unique_ptr<registry> {
    return std::make_unique<file_registry>(own, path, cluster, opts);
  };
}

std::invalid_argument left_out(std::string_view url, std::string_view backend,
                               std::string_view option) {
  return std::invalid_argument(
      "registry URL " + quoted(url) + " needs the " + std::string(backend) +
      " backend, which is not available in this build (configured with " + std::string(option) +
      "=OFF); rebuild with -D" + std::string(option) + "=ON, or use file:PATH");
}

}  // namespace galaxies::registry
