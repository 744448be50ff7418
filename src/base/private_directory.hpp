// The directories that hold what only this user may touch: the master's Unix socket and the
// embedded registry file. Another local user who can write such a directory can put their own
// socket in place of the master's and take every connection meant for it (workers attaching,
// the CLI), or edit the hosts this master dials.
// Threading: free functions over the file system; no shared state.
#pragma once

#include <string>
#include <system_error>

namespace galaxies::base {

// The per-user directory for sockets and the embedded registry: $XDG_RUNTIME_DIR/galaxies when
// XDG_RUNTIME_DIR names an existing absolute directory (a relative one is ignored, as the XDG
// spec says), else /tmp/galaxies-<effective uid>.
std::string runtime_directory();

// Makes sure `path` is a directory only this user can change, creating it (mode 0700) if it is
// missing; its parent must exist. Refused, with an error and `problem` saying what was found and
// how to fix it: a symbolic link or anything but a directory; an owner other than our effective
// uid; group or world write permission; a parent that someone else can write (then they could
// rename our directory away and put theirs in its place), unless it is sticky and owned by us or
// root, like /tmp.
std::error_code ensure_private_directory(const std::string& path, std::string& problem);

// For a directory the user chose (the parent of an explicit --unix path): refused, with an error
// and `problem`, when it is not a directory or when others may replace what is in it (group or
// world write permission without the sticky bit). A directory that is acceptable but owned by
// another user (not root) comes back without an error and with `problem` set: a warning.
std::error_code check_chosen_directory(const std::string& path, std::string& problem);

}  // namespace galaxies::base
