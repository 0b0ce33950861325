#!/usr/bin/env bash
# `search --prompt-sampling` from the command line: the key is recorded in RUN_DIR/config.json
# (per-search by default); a run directory made before the key existed (config.json without it)
# resumes with per-epoch sampling, the way it was made, and ends as a straight per-epoch run did;
# asking it for per-search is refused naming the key; a bad value is refused naming the choices.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
command -v h5dump >/dev/null || { echo "skipped: h5dump missing"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: python3 missing"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 3 --out "$T/model" 2>/dev/null
ARGS=(--model "$T/model" --train "$SRC/datasets/train.csv" --searches 2 --epochs 2 --prompts-per-search 4 --batch-size 2 --max-new-tokens 2)
key() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["search"].get("prompt_sampling", "absent"))' "$1/config.json"; }
pidx() { h5dump -d "/searches/$2/steps/prompt_indices" "$1/results.h5" | tail -n +3; }

# the default is per-search, and it is recorded
"$BIN" search "${ARGS[@]}" --searches 1 --out "$T/new" 2>"$T/new.log" || { cat "$T/new.log"; fail "default search"; }
[ "$(key "$T/new")" = per-search ] || fail "config.json records prompt_sampling $(key "$T/new"), want per-search"

# a straight per-epoch run, and an old-style one: search 0 only, then its config.json without the key
"$BIN" search "${ARGS[@]}" --prompt-sampling per-epoch --out "$T/straight" 2>"$T/straight.log" || { cat "$T/straight.log"; fail "per-epoch search"; }
[ "$(key "$T/straight")" = per-epoch ] || fail "config.json records prompt_sampling $(key "$T/straight"), want per-epoch"
"$BIN" search "${ARGS[@]}" --prompt-sampling per-epoch --last-search 1 --out "$T/old" 2>"$T/old.log" || { cat "$T/old.log"; fail "search 0"; }
python3 - "$T/old/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
del c["search"]["prompt_sampling"]
json.dump(c, open(sys.argv[1], "w"), indent=2)
EOF
[ "$(key "$T/old")" = absent ] || fail "could not strip the key"
cp "$T/old/config.json" "$T/config.before"

# per-search on it is refused (exit 2), and nothing is rewritten
set +e; "$BIN" search "${ARGS[@]}" --out "$T/old" --resume --prompt-sampling per-search 2>"$T/refused.log"; rc=$?; set -e
[ $rc -eq 2 ] || { cat "$T/refused.log"; fail "resuming an old run with per-search: exit $rc, want 2"; }
grep -qF 'search.prompt_sampling ("per-epoch" -> "per-search")' "$T/refused.log" || { cat "$T/refused.log"; fail "the refusal does not name the key"; }
cmp -s "$T/config.before" "$T/old/config.json" || fail "a refused --resume rewrote config.json"

# resumed as it was made: per-epoch, identical to the straight run
"$BIN" search "${ARGS[@]}" --out "$T/old" --resume 2>"$T/resume.log" || { cat "$T/resume.log"; fail "resuming the old run"; }
[ "$(key "$T/old")" = per-epoch ] || fail "the resumed run records prompt_sampling $(key "$T/old"), want per-epoch"
for s in 0000 0001; do
  for d in steps/prompt_indices steps/loss adapter/A adapter/B; do
    a="$(h5dump -d "/searches/$s/$d" "$T/straight/results.h5" | tail -n +3)"
    b="$(h5dump -d "/searches/$s/$d" "$T/old/results.h5" | tail -n +3)"
    [ "$a" = "$b" ] || fail "/searches/$s/$d of the resumed old run differs from the straight per-epoch run"
  done
done
[ "$(pidx "$T/new" 0000)" != "$(pidx "$T/straight" 0000)" ] || fail "per-search and per-epoch visited the same prompts"

# a bad value names the choices
set +e; "$BIN" search "${ARGS[@]}" --prompt-sampling sometimes --out "$T/bad" 2>"$T/bad.log"; rc=$?; set -e
[ $rc -eq 2 ] || { cat "$T/bad.log"; fail "--prompt-sampling sometimes: exit $rc, want 2"; }
grep -qF '"per-search", "per-epoch"' "$T/bad.log" || { cat "$T/bad.log"; fail "the message does not list the choices"; }
echo "prompt_sampling: default recorded as per-search; an old run resumed per-epoch, identical to a straight run; per-search on it and bad values refused"
echo "1 passed, 0 failed"
