// Built instead of registry/etcd/ and registry/http/ when GALAXIES_WITH_ETCD is OFF.
#include "registry/backends.hpp"

namespace galaxies::registry {

offloaded_registry::factory etcd_backend(std::string_view url, std::string, const options&) {
  throw left_out(url, "etcd", "GALAXIES_WITH_ETCD");
}

}  // namespace galaxies::registry
