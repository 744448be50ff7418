// Who may use a master's Unix socket: its own user's processes (attached nodes, the CLI) and
// root; nobody else. The socket's mode (0600) and its private directory already keep other users
// out; this is the check that still holds when a directory or a mode was loosened by mistake.
// The identity is the kernel's (SO_PEERCRED, recorded at connect()), not anything the peer says.
// Threading: free functions, no shared state.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace galaxies::transport {

// Why the peer of the connected Unix socket `fd` must be refused, or nullopt when it may stay:
// its effective uid is `self` or root. The reason names the peer's pid, uid and program name,
// the name escaped (any process may choose it).
std::optional<std::string> refuse_local_peer(int fd, uid_t self);

// The pid of the process that connected the Unix socket `fd`, as the kernel recorded it then; 0
// when it cannot be read. What that process waits for a core explains its silences
// (protocol.md §8.1).
pid_t local_peer_pid(int fd);

}  // namespace galaxies::transport
