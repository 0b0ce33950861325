#!/usr/bin/env bash
# Engine and search benchmarks against PyTorch eager (float32) on the same 0.5B-shaped model,
# both on OMP_NUM_THREADS threads (2) in the same run:
#   builds (scripts/build.sh), makes .cache/bench-models/qwen2.5-0.5b-shape once, runs
#   build/benchmarks/bench_engine and tests/ref/bench_torch.py, writes
#   benchmarks/results/latest.json, prints a side-by-side table and checks the steerclear
#   numbers against benchmarks/baseline.json (more than 10% worse is flagged).
#
# usage: scripts/bench.sh [--quick] [--strict] [--update-baseline] [--step-tokens N] [--no-torch]
#   --quick            1 rep, 16 decode tokens, 4 sampled tokens in the step (about 3 minutes)
#   --strict           exit 1 when a metric is more than 10% worse than the baseline
#   --update-baseline  store this run as benchmarks/baseline.json
#   --step-tokens N    sampled tokens per prompt in the search step (default 8)
#   --no-torch         skip the PyTorch side (table shows only steerclear)
# Full run: 3 reps, 128-token prompts, 64 decode tokens; the step runs once per side.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
THREADS="${OMP_NUM_THREADS:-2}"
MODEL="$ROOT/.cache/bench-models/qwen2.5-0.5b-shape"
TOKENIZER="$ROOT/.cache/tokenizer/tokenizer.json"
REPS=3 DECODE_TOKENS=64 STEP_TOKENS=8 PROMPT=128
QUICK=0 STRICT=0 UPDATE=0 TORCH=1 STEP_SET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --strict) STRICT=1 ;;
    --update-baseline) UPDATE=1 ;;
    --step-tokens) STEP_TOKENS="$2"; STEP_SET=1; shift ;;
    --no-torch) TORCH=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  REPS=1 DECODE_TOKENS=16
  [ "$STEP_SET" = 1 ] || STEP_TOKENS=4
fi

bash "$ROOT/scripts/build.sh" >/dev/null
BENCH="$ROOT/build/benchmarks/bench_engine"
if [ ! -f "$MODEL/config.json" ] || [ ! -f "$MODEL/tokenizer.json" ]; then
  [ -f "$TOKENIZER" ] || { echo "bench.sh: $TOKENIZER is missing; run scripts/setup.sh to fetch it" >&2; exit 1; }
  echo "bench.sh: making $MODEL (once)" >&2
  "$ROOT/build/steerclear" make-model --preset qwen2.5-0.5b-shape --tokenizer "$TOKENIZER" --seed 1 --out "$MODEL" >&2
fi

OUT="$ROOT/benchmarks/results"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS="$THREADS"

echo "bench.sh: steerclear prefill, decode ($REPS reps, $DECODE_TOKENS new tokens)" >&2
"$BENCH" --model "$MODEL" --what prefill,decode --prompt-tokens "$PROMPT" --new-tokens "$DECODE_TOKENS" --reps "$REPS" >"$TMP/sc_pd.json"
echo "bench.sh: steerclear search step (12 x 32 prompt tokens, $STEP_TOKENS sampled tokens each)" >&2
"$BENCH" --model "$MODEL" --what step --new-tokens "$STEP_TOKENS" --reps 1 >"$TMP/sc_step.json"
if [ "$TORCH" = 1 ]; then
  echo "bench.sh: pytorch prefill, decode" >&2
  "$PY" "$ROOT/tests/ref/bench_torch.py" --model "$MODEL" --threads "$THREADS" --what prefill,decode \
    --prompt-tokens "$PROMPT" --new-tokens "$DECODE_TOKENS" --reps "$REPS" >"$TMP/pt_pd.json"
  echo "bench.sh: pytorch search step" >&2
  "$PY" "$ROOT/tests/ref/bench_torch.py" --model "$MODEL" --threads "$THREADS" --what step \
    --new-tokens "$STEP_TOKENS" --reps 1 >"$TMP/pt_step.json"
else
  echo '{}' >"$TMP/pt_pd.json"; echo '{}' >"$TMP/pt_step.json"
fi

# Merge: the step run's "step" and its peak memory go beside the prefill/decode run.
"$PY" - "$TMP" "$OUT/latest.json" "$REPS" "$DECODE_TOKENS" "$STEP_TOKENS" "$THREADS" "$PROMPT" <<'PYEOF'
import json, sys, time
tmp, dst, reps, dec, step, threads, prompt = sys.argv[1:8]
def merge(a, b):
    a = json.load(open(f"{tmp}/{a}")); b = json.load(open(f"{tmp}/{b}"))
    if "step" in b:
        a["step"] = b["step"]
        a["peak_rss_mb_prefill_decode"] = a.get("peak_rss_mb")
        a["peak_rss_mb"] = b.get("peak_rss_mb_after_step", b.get("peak_rss_mb"))
    return a
res = {"date": time.strftime("%Y-%m-%d"),
       "settings": {"threads": int(threads), "reps": int(reps), "prompt_tokens": int(prompt),
                    "decode_new_tokens": int(dec), "step_new_tokens": int(step)},
       "steerclear": merge("sc_pd.json", "sc_step.json"),
       "pytorch": merge("pt_pd.json", "pt_step.json")}
with open(dst + ".tmp", "w") as f:
    json.dump(res, f, indent=1); f.write("\n")
import os; os.replace(dst + ".tmp", dst)
PYEOF

echo
"$PY" "$ROOT/benchmarks/compare.py" table "$OUT/latest.json"
echo
rc=0
if [ -f "$ROOT/benchmarks/baseline.json" ]; then
  args=(); [ "$STRICT" = 1 ] && args+=(--strict)
  "$PY" "$ROOT/benchmarks/compare.py" check "$OUT/latest.json" "$ROOT/benchmarks/baseline.json" "${args[@]}" || rc=$?
else
  echo "bench.sh: no benchmarks/baseline.json yet (store one with --update-baseline)"
fi
if [ "$UPDATE" = 1 ]; then
  cp "$OUT/latest.json" "$ROOT/benchmarks/baseline.json.tmp" && mv "$ROOT/benchmarks/baseline.json.tmp" "$ROOT/benchmarks/baseline.json"
  echo "bench.sh: stored this run as benchmarks/baseline.json"
fi
exit $rc
