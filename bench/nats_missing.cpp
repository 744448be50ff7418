// The NATS peer of a build without libnats (bench/CMakeLists.txt picks this file then).
#include <stdexcept>

#include "nats_system.hpp"

namespace galaxies::bench {

bool nats_built_in() {
  return false;
}

std::unique_ptr<nats_system> start_nats(const std::string&) {
  throw std::runtime_error(
      "--peer nats: this galaxies was built without libnats (install libnats-dev and "
      "reconfigure)");
}

}  // namespace galaxies::bench
