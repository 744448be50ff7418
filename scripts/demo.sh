#!/usr/bin/env bash
# The demo: 3 hosts x 3 workers of examples/game_server on 127.0.0.1, about 30 s, narrated and
# checked by examples/demo_director (exit 0 only if every event was seen by every worker).
# Installs missing Debian packages (as root) and builds first.
# Usage: scripts/demo.sh [demo_director options, e.g. --verbose, --keep, --help]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${BUILD_DIR:-$root/build}"

"$here/setup.sh"
"$here/build.sh" game_server demo_director

exec "$build_dir/examples/demo_director/demo_director" \
  --game-server "$build_dir/examples/game_server/game_server" "$@"
