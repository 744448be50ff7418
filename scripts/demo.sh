#!/usr/bin/env bash
# The demo: 3 hosts x 3 workers of examples/game_server on 127.0.0.1, about 30 s, narrated and
# checked by examples/demo_director (exit 0 only if every event was seen by every worker).
# The hosts register in a file by default; with --registry etcd or --registry redis the director
# first starts a private etcd or redis-server on free ports of 127.0.0.1 (its data in a temporary
# directory, removed at the end unless --keep) and stops it by its pid after the hosts, also when
# the demo fails or is interrupted. Installs missing Debian packages (as root) and builds first,
# into $BUILD_DIR (default: build/).
# Usage: scripts/demo.sh [--registry file|etcd|redis] [other demo_director options, e.g. --verbose,
#        --keep, --registry-url URL, --help]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${BUILD_DIR:-$root/build}"

"$here/setup.sh"
"$here/build.sh" game_server demo_director

exec "$build_dir/examples/demo_director/demo_director" \
  --game-server "$build_dir/examples/game_server/game_server" "$@"
