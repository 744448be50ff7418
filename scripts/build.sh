#!/usr/bin/env bash
# Configures (once) and builds the project into build/ with Ninja, RelWithDebInfo.
# Usage: scripts/build.sh [TARGET...]   (no target: everything)
# An existing build/ is reused; BUILD_DIR and BUILD_JOBS override the directory and -j.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${BUILD_DIR:-$root/build}"
jobs="${BUILD_JOBS:-$(nproc)}"

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi

targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
