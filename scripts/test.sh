#!/usr/bin/env bash
# Runs every test: installs missing Debian packages (as root), then four stages, each announced
# and timed, each in a build directory of its own:
#   plain  build/       the normal build (scripts/build.sh, BUILD_DIR); ctest, every label (unit,
#                       integration, slow) but `manual`. Arguments to this script go to this ctest.
#   asan   build-asan/  clang++-14 with AddressSanitizer + UndefinedBehaviorSanitizer (-O1, tests
#                       only, no examples/fault tests); ctest -L 'unit|integration'. clang, not
#                       g++: it compiles this build in ~16 minutes instead of ~23, and its
#                       programs run the tests in 2/3 of the time (bench/RESULTS.md).
#   fuzz   build-fuzz/  clang++-14 libFuzzer targets (tests/fuzz), each run on its seed corpus
#                       and then for GALAXIES_FUZZ_SECONDS (default 25) seconds.
#   minimal build-min/  the library without the etcd and Redis backends (GALAXIES_WITH_ETCD=OFF,
#                       GALAXIES_WITH_REDIS=OFF), and the registry unit tests, which then check
#                       that those URLs are refused naming the option.
# The builds this script configures carry line tables only (-g1: file:line in every stack trace, a
# quarter less compile time than -g) and compile through ccache when it is installed, so that the
# minimal stage reuses the plain stage's objects (all but the registry's) and a second run reuses
# the first's. A build/ configured before is built as it is.
# GALAXIES_TEST_STAGES (default plain,asan,fuzz,minimal) picks stages. A failed stage does not stop the
# next ones; the command fails if any stage failed. BUILD_JOBS sets the build's -j (default: all
# cores), GALAXIES_TEST_JOBS ctest's -j (default 2).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
jobs="${BUILD_JOBS:-$(nproc)}"
test_jobs="${GALAXIES_TEST_JOBS:-2}"
fuzz_seconds="${GALAXIES_FUZZ_SECONDS:-25}"
IFS=, read -r -a stages <<<"${GALAXIES_TEST_STAGES:-plain,asan,fuzz,minimal}"

for stage in "${stages[@]}"; do
  case "$stage" in
    plain | asan | fuzz | minimal) ;;
    *)
      echo "test.sh: unknown stage '$stage' in GALAXIES_TEST_STAGES (plain, asan, fuzz, minimal)" >&2
      exit 2
      ;;
  esac
done

"$here/setup.sh"
cd "$root"

# Configure arguments of every build here (the asan and fuzz builds compile with clang): the
# minimal build's objects hit the plain build's in the cache only if their flags are the same.
common_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
optimised_flags="-O2 -g1 -DNDEBUG"
if command -v ccache >/dev/null; then
  common_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Paths under the checkout hash as relative ones, whatever the build directory (and the clone);
  # depend mode takes the headers from the compiler's own dependency file instead of running the
  # preprocessor a second time.
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true CCACHE_DEPEND=true
fi

stage_plain() {
  local build_dir="${BUILD_DIR:-$root/build}"
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build_dir" "${common_args[@]}" \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$optimised_flags"
  fi
  "$here/build.sh"
  # `manual`: tests that cannot gate the build yet (none today; saturation_test was one, its
  # CMakeLists.txt says why).
  ctest --test-dir "${BUILD_DIR:-$root/build}" --output-on-failure -j "$test_jobs" --timeout 900 \
    -LE manual "$@"
}

# clang's runtimes symbolize stack traces only with an llvm-symbolizer they can find.
find_symbolizer() {
  if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" ]] && command -v llvm-symbolizer-14 >/dev/null; then
    ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer-14)"
    export ASAN_SYMBOLIZER_PATH
  fi
}

clang_compiler() { command -v clang++-14 || command -v clang++; }

stage_asan() {
  # -O1: quicker to build than -O2, still fast enough to keep the integration tests' timing, and
  # stack traces stay readable. Only what unit and integration tests need is configured.
  cmake -S "$root" -B "$root/build-asan" "${common_args[@]}" \
    -DCMAKE_CXX_COMPILER="$(clang_compiler)" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DGALAXIES_SANITIZE=address,undefined -DGALAXIES_BUILD_EXAMPLES=OFF \
    -DGALAXIES_BUILD_SLOW_TESTS=OFF
  cmake --build "$root/build-asan" -j "$jobs"
  # Every process inherits these: the test binaries, the `galaxies` CLI they start and the
  # workers those exec. Reports go to stderr: ctest sees the test's own and its direct children's,
  # the harness copies those of its hosts (and their workers) out of their log files, and a test
  # whose output holds a report fails (tests/CMakeLists.txt). Leak checks run wherever a process
  # exits normally (a SIGTERMed host, a worker whose master left); a SIGKILLed one has no exit to
  # check.
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  find_symbolizer
  ctest --test-dir "$root/build-asan" --output-on-failure -j "$test_jobs" --timeout 900 \
    -L 'unit|integration'
}

stage_fuzz() {
  cmake -S "$root" -B "$root/build-fuzz" "${common_args[@]}" \
    -DCMAKE_CXX_COMPILER="$(clang_compiler)" \
    -DGALAXIES_BUILD_TESTS=OFF -DGALAXIES_BUILD_EXAMPLES=OFF -DGALAXIES_BUILD_FUZZERS=ON
  cmake --build "$root/build-fuzz" -j "$jobs" --target galaxies_fuzzers
  find_symbolizer
  "$root/tests/fuzz/run_fuzzers.sh" "$root/build-fuzz" "$fuzz_seconds"
}

stage_minimal() {
  # A user who needs only the embedded registry builds without libcurl and hiredis: the build
  # must hold without them, and the registry's URL rules must say what is missing.
  cmake -S "$root" -B "$root/build-min" "${common_args[@]}" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$optimised_flags" \
    -DGALAXIES_WITH_ETCD=OFF -DGALAXIES_WITH_REDIS=OFF -DGALAXIES_BUILD_EXAMPLES=OFF \
    -DGALAXIES_BUILD_SLOW_TESTS=OFF
  cmake --build "$root/build-min" -j "$jobs" --target galaxies file_registry_test
  ctest --test-dir "$root/build-min" --output-on-failure -j "$test_jobs" --timeout 300 \
    -R '^(FileRegistry|RegistryUrl)'
}

declare -A took=() result=()
failed=0
for stage in "${stages[@]}"; do
  echo
  echo "==== test.sh: stage $stage ($(date +%H:%M:%S))"
  start=$SECONDS
  # A subshell, so that a failing command ends that stage only. Not inside `if` or `||`: bash
  # ignores `set -e` in a command whose status is being tested.
  set +e
  (
    set -e
    case "$stage" in
      plain) stage_plain "$@" ;;
      asan) stage_asan ;;
      fuzz) stage_fuzz ;;
      minimal) stage_minimal ;;
    esac
  )
  status=$?
  set -e
  if ((status == 0)); then result[$stage]=passed; else
    result[$stage]=FAILED
    failed=1
  fi
  took[$stage]=$((SECONDS - start))
  printf '==== test.sh: stage %s %s in %dm%02ds\n' "$stage" "${result[$stage]}" \
    $((took[$stage] / 60)) $((took[$stage] % 60))
done

echo
echo "==== test.sh: summary"
for stage in "${stages[@]}"; do
  printf '  %-6s %-7s %dm%02ds\n' "$stage" "${result[$stage]}" $((took[$stage] / 60)) \
    $((took[$stage] % 60))
done
exit "$failed"
