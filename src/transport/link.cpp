#include "transport/link.hpp"

namespace galaxies::transport {

// The one instantiation the library uses; tests instantiate their own over an in-memory stream.
template class basic_link<stream>;

}  // namespace galaxies::transport
