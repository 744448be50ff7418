// What the workers of `galaxies host` do: answer a few commands and, optionally, print every event
// they see as one JSON object per line on stdout.
#pragma once

#include "galaxies/node.hpp"

namespace galaxies::cli {

// Commands: `echo` (replies with the payload), `delay` (replies after the payload's number of
// milliseconds), `hold` (never replies until the worker goes: for node_left tests), `whoami`.
void install_builtin_service(node& n, bool json_events);

}  // namespace galaxies::cli
