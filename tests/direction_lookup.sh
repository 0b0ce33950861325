#!/usr/bin/env bash
# `generate --direction RUN:N` steers with search N's direction, found through the search index
# of results.h5 (/direction_searches), not with row N of /directions: in a run whose finished
# searches are 1 and 2 (not 0 and 1), after extracting a subset, each lookup must give the same
# text as steering with that search's exported file, and a search never extracted is an error.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 5 --out "$T/model" >/dev/null 2>&1
"$BIN" search --model "$T/model" --out "$T/run" --searches 3 --first-search 1 --last-search 3 \
  --prompts-per-search 2 --batch-size 2 --max-new-tokens 4 2>/dev/null
"$BIN" extract --run "$T/run" --searches 1,2 --max-new-tokens 4 >/dev/null 2>&1
GEN=(generate --model "$T/model" --prompt "How was your day?" --chat --greedy --max-new-tokens 12 --scale 8)
for s in 1 2; do
  a="$("$BIN" "${GEN[@]}" --direction "$T/run:$s" 2>"$T/err")" || { cat "$T/err"; fail "--direction RUN:$s failed"; }
  b="$("$BIN" "${GEN[@]}" --direction-file "$T/run/directions/search_000$s.safetensors")"
  [ "$a" = "$b" ] || fail "--direction RUN:$s steers with another direction than search $s's export"
  eval "out$s=\$a"
done
[ "$out1" != "$out2" ] || fail "searches 1 and 2 steer to the same text: the test would prove nothing"
# extract search 2 again with other settings: search 1's row is no longer a valid extraction
"$BIN" extract --run "$T/run" --searches 2 --max-new-tokens 3 --no-export >/dev/null 2>&1
if "$BIN" "${GEN[@]}" --direction "$T/run:1" >/dev/null 2>"$T/err"; then fail "search 1 has no direction now but RUN:1 was accepted"; fi
grep -q "search 1 has no extracted direction" "$T/err" || { cat "$T/err"; fail "unclear message for a search never extracted"; }
if "$BIN" "${GEN[@]}" --direction "$T/run:0" >/dev/null 2>"$T/err"; then fail "search 0 never ran but RUN:0 was accepted"; fi
grep -q "search 0 is not among the 2 finished searches" "$T/err" || { cat "$T/err"; fail "unclear message for a search that never ran"; }
echo "direction_lookup: RUN:1 and RUN:2 match their exported files; unextracted and unfinished searches are errors"
echo "1 passed, 0 failed"
