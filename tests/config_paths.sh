#!/usr/bin/env bash
# Paths in a run config resolve against the config file's folder, not the working directory;
# the run directory records them as absolute paths, and extract / evaluate find the model and
# the prompt sets through it from any working directory. A bad --memory-budget is refused.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$T/study/data" "$T/elsewhere"
"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 2 --out "$T/study/model" >/dev/null 2>&1
python3 - "$SRC/datasets" "$T/study/data" <<'PY'   # the first 6 records of each set
import csv, sys
for name in ("train.csv", "test.csv"):
    rows = list(csv.reader(open(f"{sys.argv[1]}/{name}", newline="")))
    csv.writer(open(f"{sys.argv[2]}/{name}", "w", newline="")).writerows(rows[:7])
PY
cat >"$T/study/run.json" <<JSON
{"model": "model", "train": "data/train.csv", "test": "./data/test.csv", "memory_budget": "2G",
 "search": {"searches": 1, "prompts_per_search": 2, "batch_size": 2, "max_new_tokens": 4}}
JSON
cd "$T/elsewhere"
"$BIN" search --config ../study/run.json --out run 2>"$T/search.log" || { cat "$T/search.log"; fail "search with a config in another folder"; }
grep -q "memory budget 2.0 GiB" "$T/search.log" || { cat "$T/search.log"; fail "the config's memory_budget was not used"; }
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
c = json.load(open(f"{t}/elsewhere/run/config.json"))
assert c["model"] == f"{t}/study/model", c["model"]
assert c["train"] == f"{t}/study/data/train.csv", c["train"]
assert c["test"] == f"{t}/study/data/test.csv", c["test"]
PY
# extract and evaluate from yet another directory: model and prompt sets come from the run
cd "$T"
"$BIN" extract --run elsewhere/run --max-new-tokens 2 --no-export >/dev/null 2>"$T/extract.log" || { cat "$T/extract.log"; fail "extract without --model/--train/--test"; }
"$BIN" evaluate --run elsewhere/run --max-new-tokens 2 --limit 2 >/dev/null 2>"$T/eval.log" || { cat "$T/eval.log"; fail "evaluate without --model/--test"; }
n=$(python3 -c "import json; print(len(json.load(open('$T/elsewhere/run/eval/base.json'))))")
[ "$n" = 2 ] || fail "evaluate wrote $n entries, want 2"
grep -q "12 sequences sampled" "$T/extract.log" || { cat "$T/extract.log"; fail "extract did not use the run's 6 train + 6 test prompts"; }
if "$BIN" evaluate --run elsewhere/run --memory-budget 12X 2>"$T/err"; then fail "--memory-budget 12X was accepted"; fi
grep -q "memory-budget: memory size '12X'" "$T/err" || { cat "$T/err"; fail "unclear message for a bad --memory-budget"; }
# "precision" in the config is what the backend gets (over $SC_PRECISION, which would refuse here)
sed 's/"memory_budget": "2G",/"memory_budget": "2G", "precision": "f32",/' "$T/study/run.json" >"$T/study/prec.json"
SC_PRECISION=bogus "$BIN" search --config "$T/study/prec.json" --out "$T/prec" 2>"$T/prec.log" || { cat "$T/prec.log"; fail "the config's \"precision\": \"f32\" was not used"; }
grep -q "(cpu (avx2) backend)\|(cpu (generic) backend)" "$T/prec.log" || { cat "$T/prec.log"; fail "precision f32 did not give an f32 backend"; }
sed 's/"memory_budget": "2G",/"memory_budget": "2G", "precision": "fp8",/' "$T/study/run.json" >"$T/study/bad.json"
if "$BIN" search --config "$T/study/bad.json" --out "$T/bad" 2>"$T/err"; then fail "precision fp8 was accepted"; fi
grep -q "bad.json: precision: 'fp8' is not a precision: use auto, f32 or bf16" "$T/err" || { cat "$T/err"; fail "unclear message for a bad precision"; }
echo "config_paths: config-relative paths, absolute paths in the run, extract/evaluate from the run config, the config's precision"
echo "1 passed, 0 failed"
