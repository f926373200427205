#!/usr/bin/env bash
# The test command: installs missing packages, builds in build/ and runs every
# test with CTest. With TCPACTOR_CI_SANITIZE != 0 (the default when CI=true) it
# then builds build-asan/ with AddressSanitizer + UBSan and runs them again.
#
# Environment: BUILD_DIR (build), BUILD_TYPE (RelWithDebInfo), JOBS (2),
# TCPACTOR_CI_SANITIZE (1 if CI=true, else 0), ASAN_DIR (build-asan).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-2}
ASAN_DIR=${ASAN_DIR:-build-asan}
if [[ ${CI:-} == true ]]; then
  SANITIZE=${TCPACTOR_CI_SANITIZE:-1}
else
  SANITIZE=${TCPACTOR_CI_SANITIZE:-0}
fi

t0=$SECONDS
phase() { echo "== test.sh: $* ($((SECONDS - t0)) s elapsed)"; }

phase "dependencies"
bash scripts/install-deps.sh --test

# Runs one configure + build + ctest pass; extra arguments go to cmake.
run_pass() {
  local dir=$1
  shift
  phase "configure $dir"
  cmake -S . -B "$dir" "$@"
  phase "build $dir"
  cmake --build "$dir" -j "$JOBS"
  phase "ctest $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 300)
}

run_pass "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"

# The frame codec fuzzers (CI=true or FUZZ=1): 10 s per target in CI.
if [[ ${CI:-} == true || ${FUZZ:-0} == 1 ]]; then
  phase "fuzz the frame codecs"
  FUZZ_SECONDS=${FUZZ_SECONDS:-10} bash scripts/fuzz.sh
fi

if [[ $SANITIZE != 0 ]]; then
  # -O1 keeps the sanitizer build quick to compile and the tests quick to run.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  run_pass "$ASAN_DIR" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
    -DTCPACTOR_ASAN=ON
fi
phase "all passes green"
