#!/usr/bin/env bash
# A 2-stage pipeline against 1 stage: the search stage of the same study (the same searches,
# seeds and model) on 1 rank (--stages 1) and on 2 ranks as one group of 2 stages (--stages 2)
# with m = 1, 2 and 4 GPipe micro-batches per step; one OpenMP thread per rank. For each run: the
# search stage's wall time (RUN_DIR/stages.json), the speed-up over 1 stage, and what the stages
# logged (src/dist/pipeline.c): per step the sampling and teacher-forced times, the time each stage
# waited for its neighbour in the teacher-forced phase (the measured bubble, against GPipe's
# (P-1)/(m+P-1)), and the bytes moved against the model 3 x T x C x 4 x (P-1) (+ one hidden row
# per forwarded token while sampling). Ranks must not share cores for the times to mean anything.
#
# usage: benchmarks/pipeline_bench.sh [PRESET [LAYERS]]   (default: tiny; e.g. qwen2.5-0.5b-shape 8)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SC_BIN:-$ROOT/build/steerclear}"
TOK="${SC_TOKENIZER:-$ROOT/.cache/tokenizer/tokenizer.json}"
PRESET="${1:-tiny}"; LAYERS="${2:-}"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SC_PRECISION="${SC_PRECISION:-f32}"
"$BIN" make-model --preset "$PRESET" ${LAYERS:+--layers "$LAYERS"} --tokenizer "$TOK" --out "$T/model" --seed 3 >/dev/null
config() {   # $1 file, $2 micro-batches
  cat >"$1" <<EOF2
{"model": "$T/model",
 "search": {"searches": 1, "prompts_per_search": 8, "batch_size": 4, "max_new_tokens": 16},
 "extract": {"max_new_tokens": 2, "prompts": "test"}, "evaluate": {"limit": 2, "max_new_tokens": 2},
 "judge": {"batches": 1, "batch_size": 2}, "quantify": {"top": 1, "max_new_tokens": 2, "scales": [0]},
 "dist": {"micro_batches": $2}}
EOF2
}
search_s() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stages']['search']['wall_s'])" "$1/stages.json"; }
echo "model: $PRESET${LAYERS:+ with $LAYERS layers}; $(nproc --all) cores, load $(cut -d' ' -f1 /proc/loadavg)"
config "$T/c1.json" 1
mpirun --allow-run-as-root --bind-to none -np 1 "$BIN" run --config "$T/c1.json" --out "$T/p1" >/dev/null 2>"$T/e1"
t1=$(search_s "$T/p1")
echo "1 stage, 1 rank: search stage $t1 s"
for m in 1 2 4; do
  config "$T/c$m.json" "$m"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 "$BIN" run --config "$T/c$m.json" --out "$T/p2m$m" --stages 2 >/dev/null 2>"$T/e2m$m"
  t2=$(search_s "$T/p2m$m")
  echo "2 stages, m = $m: search stage $t2 s (speed-up $(/usr/bin/python3 -c "print(round($t1 / $t2, 2))") over 1 stage)"
  grep -E "pipeline stage [01]: |pipeline group 0: |blocks \[" "$T/e2m$m" | sed 's/^/    /'
done
