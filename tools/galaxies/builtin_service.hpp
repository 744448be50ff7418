// What the workers of `galaxies host` do: answer a few commands and, optionally, print every event
// they see as one JSON object per line on stdout.
#pragma once

#include "galaxies/node.hpp"

namespace galaxies::cli {

// Commands: `echo` (replies with the payload), `delay` (replies after the payload's number of
// milliseconds), `hold` (never replies until the worker goes: for node_left tests), `whoami`
// (node, host, pid, slot). With `drain`, a worker told that its master stops answers every delay
// it holds before it leaves, and never leaves while it holds a `hold` (its master kills it after
// the stop grace).
void install_builtin_service(node& n, bool json_events, bool drain = false);

}  // namespace galaxies::cli
