#!/usr/bin/env bash
# The embedded default, one command on a fresh Debian machine: set up, build, and run the whole
# study (search -> extract -> evaluate -> judge -> score -> quantify -> report) from
# configs/tiny.json — a tiny random model made on first use, the offline lexical judge. Ends by
# printing where report.md is and the table of Linearity Scores. Run again, it resumes (finished
# stages are skipped). Usage: scripts/demo.sh [RUN_DIR]   (default: results/tiny)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${1:-$ROOT/results/tiny}"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh"
RESUME=()
[ -f "$RUN/stages.json" ] && RESUME=(--resume)
"$ROOT/build/steerclear" run --config "$ROOT/configs/tiny.json" --out "$RUN" "${RESUME[@]}"
