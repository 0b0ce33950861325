#!/usr/bin/env bash
# Engine and search benchmarks against PyTorch eager (float32) on the same 0.5B-shaped model,
# both on OMP_NUM_THREADS threads (2) in the same run:
#   builds (scripts/build.sh), makes .cache/bench-models/qwen2.5-0.5b-shape once, runs
#   build/benchmarks/bench_engine and tests/ref/bench_torch.py, writes
#   benchmarks/results/latest.json, prints a side-by-side table and checks the steerclear
#   numbers against benchmarks/baseline.json (more than 10% worse is flagged).
#
# usage: scripts/bench.sh [--quick] [--strict] [--update-baseline] [--step-tokens N] [--no-torch]
#                        [--reps N] [--precision auto|f32|bf16] [--keep-openblas-env]
#   --quick            1 round, 16 decode tokens, 4 sampled tokens in the step (about 3 minutes)
#   --reps N           rounds (3): each runs both sides once, alternating which goes first;
#                      the table gives each side's minimum and median and their ratios
#   --precision P      steerclear's precision (default: auto, bf16 where the CPU has AVX-512 BF16)
#   --keep-openblas-env  keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (unset by default)
#   --strict           exit 1 when a metric is more than 10% worse than the baseline
#   --update-baseline  store this run as benchmarks/baseline.json
#   --step-tokens N    sampled tokens per prompt in the search step (default 8)
#   --decode-tokens N  tokens per decode run (default 64)
#   --no-torch         skip the PyTorch side (table shows only steerclear)
#   --no-step          skip the search step (prefill and decode only)
# Full run: 3 rounds, 128-token prompts, 64 decode tokens; the step after one warm-up step.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3
THREADS="${OMP_NUM_THREADS:-2}"
MODEL="$ROOT/.cache/bench-models/qwen2.5-0.5b-shape"
TOKENIZER="$ROOT/.cache/tokenizer/tokenizer.json"
REPS=3 DECODE_TOKENS=64 STEP_TOKENS=8 PROMPT=128
QUICK=0 STRICT=0 UPDATE=0 TORCH=1 STEP_SET=0 KEEP_BLAS_ENV=0 PRECISION="" STEP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --strict) STRICT=1 ;;
    --update-baseline) UPDATE=1 ;;
    --step-tokens) STEP_TOKENS="$2"; STEP_SET=1; shift ;;
    --no-torch) TORCH=0 ;;
    --reps) REPS="$2"; shift ;;
    --no-step) STEP=0 ;;
    --decode-tokens) DECODE_TOKENS="$2"; shift ;;
    --precision) PRECISION="$2"; shift ;;
    --keep-openblas-env) KEEP_BLAS_ENV=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# Every figure with OpenBLAS choosing its kernels as on users' machines: this machine's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset in the benchmarks' own commands (the kernel each
# side then used is recorded as blas_core); --keep-openblas-env keeps them.
RUN=(env)
[ "$KEEP_BLAS_ENV" = 1 ] || RUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
cat /proc/loadavg >"$TMP/load_before"
"${RUN[@]}" "$ROOT/build/benchmarks/bench_peak" >"$TMP/peak.json"
sc_args=(--model "$MODEL" --prompt-tokens "$PROMPT")
[ -n "$PRECISION" ] && sc_args+=(--precision "$PRECISION")
run_sc() {   # round
  echo "bench.sh: round $1: steerclear prefill, decode ($DECODE_TOKENS new tokens), search step ($STEP_TOKENS sampled tokens)" >&2
  "${RUN[@]}" "$BENCH" "${sc_args[@]}" --what prefill,decode --new-tokens "$DECODE_TOKENS" --reps 1 >"$TMP/sc_pd_$1.json"
  if [ "$STEP" = 1 ]; then
    "${RUN[@]}" "$BENCH" "${sc_args[@]}" --what step --new-tokens "$STEP_TOKENS" --reps 1 --step-warmup 1 >"$TMP/sc_step_$1.json"
  else echo '{}' >"$TMP/sc_step_$1.json"; fi
}
run_pt() {
  if [ "$TORCH" = 1 ]; then
    echo "bench.sh: round $1: pytorch prefill, decode, search step" >&2
    "${RUN[@]}" "$PY" "$ROOT/tests/ref/bench_torch.py" --model "$MODEL" --threads "$THREADS" --what prefill,decode \
      --prompt-tokens "$PROMPT" --new-tokens "$DECODE_TOKENS" --reps 1 >"$TMP/pt_pd_$1.json"
    if [ "$STEP" = 1 ]; then
      "${RUN[@]}" "$PY" "$ROOT/tests/ref/bench_torch.py" --model "$MODEL" --threads "$THREADS" --what step \
        --new-tokens "$STEP_TOKENS" --reps 1 >"$TMP/pt_step_$1.json"
    else echo '{}' >"$TMP/pt_step_$1.json"; fi
  else
    echo '{}' >"$TMP/pt_pd_$1.json"; echo '{}' >"$TMP/pt_step_$1.json"
  fi
}
for r in $(seq 1 "$REPS"); do   # the sides alternate: odd rounds steerclear first, even rounds pytorch first
  if [ $((r % 2)) = 1 ]; then run_sc "$r"; run_pt "$r"; else run_pt "$r"; run_sc "$r"; fi
done
cat /proc/loadavg >"$TMP/load_after"

# Merge: per side, each metric's minimum over the rounds in the usual place (what `check`
# compares), every round's value in "rounds"; the peaks and the machine's load beside them.
"$PY" - "$TMP" "$OUT/latest.json" "$REPS" "$DECODE_TOKENS" "$STEP_TOKENS" "$THREADS" "$PROMPT" "$KEEP_BLAS_ENV" <<'PYEOF'
import json, statistics, sys, time
tmp, dst, reps, dec, step, threads, prompt, keep = sys.argv[1:9]
reps = int(reps)
PATHS = {"prefill": ("prefill", "tokens_per_s", max), "decode_batch1": ("decode", "batch1", "decode_tokens_per_s", max),
         "decode_batch8": ("decode", "batch8", "decode_tokens_per_s", max), "step": ("step", "total_seconds", min)}
def get(d, path):
    for k in path:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d
def side(prefix):
    runs = []
    for r in range(1, reps + 1):
        a = json.load(open(f"{tmp}/{prefix}_pd_{r}.json")); b = json.load(open(f"{tmp}/{prefix}_step_{r}.json"))
        if "step" in b:
            a["step"] = b["step"]
            a["peak_rss_mb_prefill_decode"] = a.get("peak_rss_mb")
            a["peak_rss_mb"] = b.get("peak_rss_mb_after_step", b.get("peak_rss_mb"))
        runs.append(a)
    out = runs[0]
    rounds = {}
    for name, path in PATHS.items():
        vals = [get(x, path[:-1]) for x in runs]
        vals = [v for v in vals if v is not None]
        if not vals:
            continue
        rounds[name] = vals
        d = out
        for k in path[:-2]:
            d = d[k]
        d[path[-2]] = path[-1](vals)
    if rounds:
        out["rounds"] = rounds
    return out
res = {"date": time.strftime("%Y-%m-%d"),
       "settings": {"threads": int(threads), "reps": reps, "prompt_tokens": int(prompt),
                    "decode_new_tokens": int(dec), "step_new_tokens": int(step),
                    "openblas_env": "kept" if keep == "1" else "unset"},
       "load_before": open(f"{tmp}/load_before").read().split()[:3],
       "load_after": open(f"{tmp}/load_after").read().split()[:3],
       "peaks_gflops": json.load(open(f"{tmp}/peak.json")),
       "steerclear": side("sc"), "pytorch": side("pt")}
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
