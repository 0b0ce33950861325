#!/usr/bin/env bash
# The embedded default: set up, build, make a tiny random model locally, and run the pipeline
# on it (search -> extract -> evaluate -> judge -> score -> quantify -> report) with the offline
# lexical judge, then a steered generation. Usage: scripts/demo.sh [RUN_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${1:-$ROOT/results/demo}"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh"
BIN="$ROOT/build/steerclear"
MODEL="$ROOT/.cache/models/tiny"
if [ ! -f "$MODEL/config.json" ]; then
  "$BIN" make-model --preset tiny --tokenizer "$ROOT/.cache/tokenizer/tokenizer.json" --seed 1 --out "$MODEL"
fi
RESUME=()
[ -d "$RUN/checkpoints" ] && RESUME=(--resume)
echo "== search: 2 divergence searches on the tiny model"
"$BIN" search --model "$MODEL" --train "$ROOT/datasets/train.csv" --out "$RUN" \
  --searches 2 --prompts-per-search 24 --batch-size 12 --max-new-tokens 32 "${RESUME[@]}"
echo "== extract: one direction per block per search"
"$BIN" extract --run "$RUN" --max-new-tokens 16
echo "== evaluate: base, adapter and direction completions of test prompts"
"$BIN" evaluate --run "$RUN" --limit 32 --max-new-tokens 24
echo "== judge: themes of 2 batches of 16 outputs per side (lexical judge, offline)"
"$BIN" judge --run "$RUN"
echo "== score: Linearity Scores and the ranking"
"$BIN" score --run "$RUN"
echo "== quantify: scale sweeps of the best direction"
"$BIN" quantify --run "$RUN" --top 1 --max-new-tokens 24
echo "== report: figures and report.md"
"$BIN" report --run "$RUN"
echo "== generate, steered by search 0's direction at scale 4"
"$BIN" generate --model "$MODEL" --prompt "How was your day?" --chat --direction "$RUN:0" --scale 4 --max-new-tokens 24 --seed 1
echo "demo finished: results in $RUN, the report in $RUN/report.md (layout: results/README.md)"
