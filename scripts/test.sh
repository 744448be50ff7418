#!/usr/bin/env bash
# Runs every test: installs missing Debian packages (as root), builds, and runs ctest.
# Labels: unit (no processes), integration (real processes on loopback), slow.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

"$here/setup.sh"
"$here/build.sh"

cd "$root"
# Two jobs: the machine has two cores; integration tests bound their own time.
ctest --test-dir build --output-on-failure -j "${GALAXIES_TEST_JOBS:-2}" --timeout 900 "$@"
