// Built instead of registry/redis/ when GALAXIES_WITH_REDIS is OFF.
#include "registry/backends.hpp"

namespace galaxies::registry {

offloaded_registry::factory redis_backend(std::string_view url, std::string, const options&) {
  throw left_out(url, "Redis", "GALAXIES_WITH_REDIS");
}

}  // namespace galaxies::registry
