#!/usr/bin/env bash
# Runs the libFuzzer targets of a fuzz build (scripts/test.sh's fuzz stage), FUZZ_JOBS at a time
# (default: one per core; each target runs on one thread), each for a bounded time: first over its
# committed seeds (tests/fuzz/corpus/TARGET/, so every past finding kept there is replayed), then
# mutating for SECONDS seconds. Inputs it finds go to
# BUILD_DIR/fuzz-corpus/TARGET/ (kept between runs, never written into the repository); a crash,
# a timeout or a leak stops the target, keeps the input as BUILD_DIR/fuzz-findings/TARGET/<kind>-<sha1>
# and fails the run. libFuzzer's own output is in BUILD_DIR/fuzz-logs/TARGET.log.
# Usage: tests/fuzz/run_fuzzers.sh BUILD_DIR [SECONDS [TARGET...]]   (default: 25 s, every target)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:?usage: run_fuzzers.sh BUILD_DIR [SECONDS [TARGET...]]}" && pwd)"
seconds="${2:-25}"
shift $(($# < 2 ? $# : 2))

if (($# > 0)); then
  targets=("$@")
else
  # Written by tests/fuzz/CMakeLists.txt: one target name per line.
  mapfile -t targets <"$build/tests/fuzz/fuzzers.txt"
fi

jobs="${FUZZ_JOBS:-$(nproc)}"
reports="$build/fuzz-logs/reports"
rm -rf "$reports"
mkdir -p "$reports"

# One target: its lines go to $reports/TARGET.out and its outcome to $reports/TARGET.status, so
# that targets running side by side do not interleave what they print.
run_target() {
  local target="$1"
  local binary="$build/tests/fuzz/$target"
  local seeds="$here/corpus/$target"
  local corpus="$build/fuzz-corpus/$target"
  local findings="$build/fuzz-findings/$target"
  local log="$build/fuzz-logs/$target.log"
  if [[ ! -x "$binary" || ! -d "$seeds" ]]; then
    echo "run_fuzzers: $target: no binary ($binary) or no seed corpus ($seeds)"
    return 1
  fi
  mkdir -p "$corpus" "$findings"
  echo "run_fuzzers: $target: $(find "$seeds" -type f | wc -l) seeds, ${seconds} s"
  # -timeout: one input running for 10 s is a hang, and a finding. The first corpus directory
  # receives new inputs; the seed directory is only read.
  if "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "$seeds" >"$log" 2>&1; then
    local runs coverage
    runs="$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" || true)"
    coverage="$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)"
    echo "run_fuzzers: $target: ok: ${runs:-finished}; ${coverage}"
  else
    echo "run_fuzzers: $target: FAILED; the end of its log ($log):"
    tail -n 80 "$log"
    echo "run_fuzzers: $target: the input is kept in $findings/:"
    ls -l "$findings"
    return 1
  fi
}

for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  (
    status=0
    run_target "$target" >"$reports/$target.out" 2>&1 || status=$?
    echo "$status" >"$reports/$target.status"
  ) &
done
wait

failed=()
for target in "${targets[@]}"; do
  cat "$reports/$target.out"
  [[ "$(cat "$reports/$target.status" 2>/dev/null)" == 0 ]] || failed+=("$target")
done

if ((${#failed[@]} > 0)); then
  echo "run_fuzzers: failed: ${failed[*]} (see tests/fuzz/README.md: a finding becomes a test)" >&2
  exit 1
fi
echo "run_fuzzers: all ${#targets[@]} targets ok"
