#!/usr/bin/env bash
# Set up, build (warnings as errors) and run the whole test suite.
#   scripts/test.sh            the suite (ctest) on the Release build in build/
#   scripts/test.sh --full     also: the suite again under AddressSanitizer + UBSan (build-asan/)
#                              and every fuzz target for a bounded time (scripts/fuzz.sh)
# CI (CI=true, .ci/run) runs --full. Extra arguments go to ctest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FULL=0
[ "${CI:-}" = true ] && FULL=1
if [ "${1:-}" = --full ]; then FULL=1; shift; fi
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh" -DSC_WERROR=ON
cd "$ROOT/build"
ctest --output-on-failure -j"$(nproc)" "$@"
if [ "$FULL" = 1 ]; then
  echo "== the suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
  cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Release -DSC_WERROR=ON -DSC_SANITIZE=address,undefined -DSC_CUDA=OFF >/dev/null
  cmake --build "$ROOT/build-asan" -j"$(nproc)"
  cd "$ROOT/build-asan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$(nproc)" "$@"
  echo "== fuzzing the parsers (scripts/fuzz.sh)"
  bash "$ROOT/scripts/fuzz.sh"
fi
