#!/usr/bin/env bash
# strict_memory.sh — the whole study (`steerclear run`: make-model, search, extract, evaluate,
# judge, score, quantify, report) with the CPU backend in strict memory mode (SC_CPU_STRICT=1,
# src/backend/cpu/strict.c: every op refuses arrays that are not backend memory, as a GPU
# would), and the same results as a normal run. This is how the GPU's memory discipline is
# checked on machines without a GPU: a host array passed to an op anywhere in the pipeline
# fails the strict run. Skipped under sanitizers (the run is slow there and no different).
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -n "${SC_SANITIZE:-}" ] && { echo "strict_memory: skipped under sanitizers"; exit 77; }
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
/usr/bin/python3 -c "import h5py, numpy" 2>/dev/null || { echo "skipped: python3-h5py missing (run scripts/setup.sh)"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
/usr/bin/python3 - "$SRC/datasets/quantify.csv" "$T/q.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
w = csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n")
w.writerow(rows[0])
for need in ("low", "high"):
    w.writerows([r for r in rows[1:] if r[0] == need][:2])
PY
cat >"$T/study.json" <<JSON
{
  "model": "$T/model",
  "make_model": {"preset": "tiny", "seed": 3, "tokenizer": "$TOK"},
  "search": {"searches": 2, "prompts_per_search": 4, "batch_size": 2, "max_new_tokens": 6},
  "extract": {"max_new_tokens": 4, "prompts": "test", "batch_seqs": 16},
  "evaluate": {"limit": 12, "max_new_tokens": 8, "batch_seqs": 16, "scales": [2]},
  "judge": {"provider": "lexical", "batches": 2, "batch_size": 6},
  "quantify": {"top": 1, "max_new_tokens": 6, "scales": [-2, 0, 4], "prompts": "$T/q.csv", "batch_seqs": 16}
}
JSON
"$BIN" run --config "$T/study.json" --out "$T/plain" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "the plain run failed"; }
SC_CPU_STRICT=1 "$BIN" run --config "$T/study.json" --out "$T/strict" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "the strict-memory run failed: an op was given host memory (message above)"; }
grep -q "strict memory" "$T/strict/run.log" || { head -20 "$T/strict/run.log"; fail "the strict run's log does not name the strict backend"; }
/usr/bin/python3 - "$T/plain/results.h5" "$T/strict/results.h5" <<'PY'
import sys
import h5py
import numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert names, "no datasets"
for n in names:
    x, y = a[n][()], b[n][()]
    assert x.shape == y.shape and (x.dtype.kind not in "fc" and np.array_equal(x, y) or np.array_equal(x, y, equal_nan=True)), n
print(f"strict_memory: {len(names)} datasets of results.h5 identical in the plain and the strict-memory run")
PY
diff <(grep -v '"date"' "$T/plain/scores.json") <(grep -v '"date"' "$T/strict/scores.json") || fail "scores.json differs between the plain and the strict run (dates aside)"
echo "strict_memory: ok"
