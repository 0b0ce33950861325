#!/usr/bin/env bash
# A search killed with SIGKILL at an arbitrary moment and continued with --resume ends with
# the same adapters, bit for bit, as a run that went straight through; SIGTERM stops cleanly
# after a checkpointed step; a run directory with checkpoints refuses to start without --resume.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
command -v h5dump >/dev/null || { echo "skipped: h5dump missing"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 3 --out "$T/model" 2>/dev/null
ARGS=(--model "$T/model" --train "$SRC/datasets/train.csv" --searches 3 --prompts-per-search 8 --batch-size 2 --max-new-tokens 16 --adapter per-block)

"$BIN" search "${ARGS[@]}" --out "$T/straight" 2>"$T/straight.log"

# wait (at most 60 s) until the run has written checkpoint $2 of search $1, then kill it with $3
kill_after() {
  local pid=$1 file=$2 sig=$3 delay=${4:-0.3}
  for _ in $(seq 600); do
    [ -f "$file" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep "$delay"
  kill "-$sig" "$pid" 2>/dev/null || true
}
# SIGTERM (preemption) right after the first checkpoint: stops after the step, exit code 3
"$BIN" search "${ARGS[@]}" --out "$T/killed" 2>"$T/k1.log" & pid=$!
kill_after $pid "$T/killed/checkpoints/search_0000.ckpt" TERM 0
set +e; wait $pid; rc=$?; set -e
if [ $rc -ne 3 ]; then echo "FAIL: SIGTERM exit code $rc (want 3)"; cat "$T/k1.log"; exit 1; fi
grep -q -- "--resume" "$T/k1.log" || { echo "FAIL: the SIGTERM message does not say how to continue"; cat "$T/k1.log"; exit 1; }
# a run directory with checkpoints needs --resume
if "$BIN" search "${ARGS[@]}" --out "$T/killed" 2>"$T/refuse.log"; then echo "FAIL: a run dir with checkpoints must need --resume"; exit 1; fi
grep -q -- "--resume" "$T/refuse.log" || { echo "FAIL: refusal does not mention --resume:"; cat "$T/refuse.log"; exit 1; }
# SIGKILL twice at other moments, then resume until finished
"$BIN" search "${ARGS[@]}" --out "$T/killed" --resume 2>"$T/k2.log" & pid=$!
kill_after $pid "$T/killed/checkpoints/search_0001.ckpt" KILL 0.1; wait $pid 2>/dev/null || true
"$BIN" search "${ARGS[@]}" --out "$T/killed" --resume 2>"$T/k3.log" & pid=$!
sleep 0.7; kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
"$BIN" search "${ARGS[@]}" --out "$T/killed" --resume 2>"$T/k4.log"

for s in 0000 0001 0002; do
  for d in adapter/A adapter/B steps/loss steps/tokens/values steps/prompt_indices; do
    a="$(h5dump -d /searches/$s/$d "$T/straight/results.h5" | tail -n +3)"
    b="$(h5dump -d /searches/$s/$d "$T/killed/results.h5" | tail -n +3)"
    if [ "$a" != "$b" ]; then echo "FAIL: /searches/$s/$d differs after kill and resume"; exit 1; fi
  done
done
cmp "$T/straight/checkpoints/search_0002.ckpt" "$T/killed/checkpoints/search_0002.ckpt"
echo "search_resume: stopped once (SIGTERM, exit 3) and killed twice (SIGKILL); adapters, losses and tokens identical"
echo "1 passed, 0 failed"
