#!/usr/bin/env bash
# Set up, build (warnings as errors) and run the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh" -DSC_WERROR=ON
cd "$ROOT/build"
ctest --output-on-failure -j"$(nproc)" "$@"
