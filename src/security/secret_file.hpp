// The cluster secret, read from a file that only its owner may read (docs/security.md).
#pragma once

#include <string>

namespace galaxies::security {

// Shortest and longest secrets accepted, in bytes (after a trailing newline is dropped). 16 bytes
// of randomness are out of reach of guessing; the cap keeps a wrong path (a log file) from being
// read whole.
inline constexpr std::size_t min_secret_size = 16;
inline constexpr std::size_t max_secret_size = 4096;

// The secret's bytes. Throws std::runtime_error with a message that names the file and says how to
// fix it: missing, not a regular file, readable or writable by group or others, owned by another
// user, empty or too short.
std::string load_secret_file(const std::string& path);

}  // namespace galaxies::security
