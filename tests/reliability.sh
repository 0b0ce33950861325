#!/usr/bin/env bash
# The hostile-user cases of issue 9, each checked on the tiny model: two writers on one run
# directory, settings changed on --resume, corrupt and finished checkpoints, prompts beyond the
# model's context, SIGTERM in the middle of a step, bad numbers, paths that are not files,
# misleading messages, a full disk, NaN weights, odd head_dim, repeated JSON keys, foreign
# results files, positional arguments and temporaries left by a killed writer.
set -uo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
command -v h5dump >/dev/null || { echo "skipped: h5dump missing"; exit 77; }
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3   # Debian's, with h5py
T="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
fails=0 checks=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }
# expect CODE "message substring" CMD...: the command exits with CODE and stderr holds the text
expect() {
  local code=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" != "$code" ]; then fail "$* exited $rc, want $code: $(tail -c 400 "$T/err")"; return; fi
  if [ -n "$want" ] && ! grep -qF -- "$want" "$T/err"; then fail "$*: stderr lacks '$want': $(tail -c 400 "$T/err")"; return; fi
  ok
}
h5() { h5dump -d "$2" "$1/results.h5" 2>/dev/null | tail -n +3; }

"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 3 --out "$T/model" >/dev/null 2>&1
"$PY" - "$SRC/datasets/train.csv" "$T/train.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
csv.writer(open(sys.argv[2], "w", newline="")).writerows(rows[:9])
PY
S=(search --model "$T/model" --train "$T/train.csv" --prompts-per-search 2 --batch-size 2 --max-new-tokens 8)

# --- 1. one writer per run directory ------------------------------------------------------------
"$BIN" "${S[@]}" --searches 6 --max-new-tokens 64 --out "$T/busy" 2>"$T/busy.log" & pid=$!
for _ in $(seq 300); do grep -q "pid $pid" "$T/busy/.steerclear.lock" 2>/dev/null && break; sleep 0.1; done
expect 4 "another steerclear process is writing this run directory (host" "$BIN" extract --run "$T/busy"
grep -qF "pid $pid" "$T/err" || fail "the refusal does not name the writer's pid $pid: $(cat "$T/err")"
expect 4 "add --wait" "$BIN" "${S[@]}" --searches 6 --max-new-tokens 64 --out "$T/busy" --resume --first-search 3
expect 0 "" "$BIN" extract --run "$T/busy" --wait --max-new-tokens 2 --no-export   # waits for the search, then extracts
wait $pid || fail "the search holding the lock failed: $(tail -3 "$T/busy.log")"
n=$(h5dump -n "$T/busy/results.h5" | grep -c '/searches/000[0-9] *$' || true)
[ "$n" = 6 ] || fail "after a refused second writer and a waiting one, results.h5 has $n searches, want 6"
counts="$(h5 "$T/busy" /direction_token_counts)"
grep -q '0,\|0 *$' <<<"$counts" && fail "a waiting extract did not see every finished search: $counts"
ok

# --- 2. refused runs write nothing; --resume keeps the run's settings -----------------------------
"$BIN" "${S[@]}" --searches 2 --out "$T/r" 2>/dev/null || fail "search into a new run directory"
cp "$T/r/config.json" "$T/config.before"
expect 2 "add --resume" "$BIN" "${S[@]}" --searches 2 --lr 5 --out "$T/r"
cmp -s "$T/config.before" "$T/r/config.json" || fail "a refused search rewrote config.json"
expect 2 "lr (0.10000000149011612 -> 3)" "$BIN" "${S[@]}" --searches 2 --lr 3 --out "$T/r" --resume
cmp -s "$T/config.before" "$T/r/config.json" || fail "a refused --resume rewrote config.json"
expect 0 "" "$BIN" "${S[@]}" --searches 3 --out "$T/r" --resume   # more searches: allowed
"$PY" -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['search']['searches'] != 3)" "$T/r/config.json" || fail "extending the run did not record 3 searches"

# --- 3. finished searches are never rewritten; corrupt checkpoints are refused --------------------
before="$(h5 "$T/r" /searches/0000/adapter/A)"
"$PY" - "$T/r/checkpoints/search_0000.ckpt" <<'PY'
import struct, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
b[-64:-60] = struct.pack("<f", float("nan"))     # a NaN in the final adapter record
open(p, "wb").write(b)
PY
expect 0 "already in results.h5, skipped" "$BIN" "${S[@]}" --searches 3 --out "$T/r" --resume
[ "$(h5 "$T/r" /searches/0000/adapter/A)" = "$before" ] || fail "--resume rewrote a finished search from its (corrupted) checkpoint"
"$BIN" "${S[@]}" --searches 1 --prompts-per-search 6 --out "$T/part" 2>/dev/null & pid=$!
for _ in $(seq 300); do [ -f "$T/part/checkpoints/search_0000.ckpt" ] && break; sleep 0.05; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if [ -f "$T/part/checkpoints/search_0000.ckpt" ] && [ ! -f "$T/part/results.h5" ]; then
  "$PY" -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[200] ^= 1; open(p,'wb').write(b)" "$T/part/checkpoints/search_0000.ckpt"
  expect 2 "checksum mismatch" "$BIN" "${S[@]}" --searches 1 --prompts-per-search 6 --out "$T/part" --resume
fi

# --- 4. prompts beyond the context; SIGTERM in the middle of a step ------------------------------
"$BIN" make-model --preset tiny --layers 2 --max-position 16 --tokenizer "$TOK" --seed 3 --out "$T/short" >/dev/null 2>&1
long="one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen"
expect 1 "beyond the model's context of 16" "$BIN" logits --model "$T/short" --text "$long" --out "$T/l.npy"
expect 2 "beyond the model's context of 16" "$BIN" generate --model "$T/short" --prompt "$long"
expect 2 "line 2) has" "$BIN" search --model "$T/short" --train "$T/train.csv" --out "$T/shortrun" --prompts-per-search 2 --batch-size 2
"$BIN" "${S[@]}" --searches 1 --max-new-tokens 4000 --out "$T/term" 2>"$T/term.log" & pid=$!
for _ in $(seq 300); do grep -q "^search: batches" "$T/term.log" 2>/dev/null && break; sleep 0.1; done
sleep 1; t0=$(date +%s.%N); kill -TERM $pid; wait $pid; rc=$?; t1=$(date +%s.%N)
[ "$rc" = 3 ] || fail "SIGTERM during a step: exit $rc, want 3: $(tail -2 "$T/term.log")"
"$PY" -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); sys.exit(0 if d < 5 else 1)" "$t0" "$t1" || fail "SIGTERM took more than 5 s to stop a step"
grep -q "continue with --resume" "$T/term.log" || fail "the SIGTERM message does not say how to continue"
ok

# --- 5. numbers --------------------------------------------------------------------------------
expect 2 "--seed 'nan' is not a non-negative integer" "$BIN" "${S[@]}" --out "$T/n1" --seed nan
expect 2 "--seed '2.5'" "$BIN" "${S[@]}" --out "$T/n1" --seed 2.5
expect 2 "--seed '0x10'" "$BIN" "${S[@]}" --out "$T/n1" --seed 0x10
expect 2 "--lr 'inf' is not a finite decimal number" "$BIN" "${S[@]}" --out "$T/n1" --lr inf
expect 2 "--batch-size '1e3' is not a positive integer" "$BIN" "${S[@]}" --out "$T/n1" --batch-size 1e3
[ ! -e "$T/n1" ] || fail "a search refused for its options created its run directory"
G=(generate --model "$T/model" --prompt hi --max-new-tokens 2)
expect 2 "beyond the model's context" "$BIN" generate --model "$T/model" --prompt hi --max-new-tokens 2147483647
expect 2 "--scale 'nan' is not a finite decimal number" "$BIN" "${G[@]}" --scale nan
expect 2 "--scale 'inf'" "$BIN" "${G[@]}" --scale inf
expect 2 "--blocks '2:1' is an empty range" "$BIN" "${G[@]}" --blocks 2:1
expect 2 "--blocks '-1:2'" "$BIN" "${G[@]}" --blocks -1:2
expect 2 "reaches past the model's 2 blocks" "$BIN" "${G[@]}" --blocks 0:99 --direction-file "$T/r/checkpoints/search_0000.ckpt"
"$PY" - "$T/nodir.safetensors" <<'PY'
import json, struct, sys
h = json.dumps({"other.0": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"\0\0\0\0")
PY
expect 2 "has no direction.<block> tensors" "$BIN" "${G[@]}" --direction-file "$T/nodir.safetensors"

# --- 6. paths that are not files ----------------------------------------------------------------
expect 2 "is a directory, not a file" "$BIN" "${S[@]}" --out "$T/p1" --train "$T"
expect 1 "is a directory, not a file" "$BIN" tokenize --tokenizer "$T" --text hi
mkdir -p "$T/dirconfig/config.json"
expect 2 "is a directory, not a file" "$BIN" generate --model "$T/dirconfig" --prompt hi
mkdir -p "$T/fifo"; cp "$T/model/config.json" "$T/model/tokenizer.json" "$T/fifo/"; mkfifo "$T/fifo/model.safetensors"
expect 2 "is a FIFO (named pipe), not a file" timeout 20 "$BIN" generate --model "$T/fifo" --prompt hi

# --- 7. messages that used to mislead; a full disk; NaN weights ----------------------------------
mkdir -p "$T/trunc"; head -c 2000 "$T/r/results.h5" >"$T/trunc/results.h5"
expect 1 "results.h5" "$BIN" extract --run "$T/trunc" --model "$T/model"
grep -q "another process" "$T/err" && fail "a truncated results.h5 is blamed on another process: $(cat "$T/err")"
expect 2 "the run has searches 0..0" "$BIN" "${S[@]}" --searches 1 --first-search 2 --out "$T/m1"
expect 2 "choose FIRST < LAST <= 1" "$BIN" "${S[@]}" --searches 1 --last-search 2 --out "$T/m2"
cp -r "$T/r" "$T/full"; before="$(h5 "$T/full" /searches/0001/adapter/A)"
( trap '' XFSZ; ulimit -f 64; "$BIN" extract --run "$T/full" --max-new-tokens 2 ) >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 1 ] || fail "extract with a full disk exited $rc, want 1: $(tail -c 300 "$T/err")"
grep -q "File too large\|No space left" "$T/err" || fail "a full disk is not named: $(tail -c 300 "$T/err")"
[ "$(h5 "$T/full" /searches/0001/adapter/A)" = "$before" ] || fail "a failed write damaged results.h5"
ls "$T/full"/*.tmp.* >/dev/null 2>&1 && fail "a failed write left a temporary file"
ok
cp -r "$T/model" "$T/nan"
"$PY" - "$T/nan/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
s, e = h["model.norm.weight"]["data_offsets"]; step = {"BF16": 2, "F16": 2, "F32": 4}[h["model.norm.weight"]["dtype"]]
for i in range(8 + n + s, 8 + n + e, step):
    b[i:i + step] = b"\xc0\x7f" if step == 2 else struct.pack("<f", float("nan"))
open(p, "wb").write(b)
PY
expect 1 "NaN or infinite" "$BIN" generate --model "$T/nan" --prompt hi --max-new-tokens 2

# --- 8. smaller ones -----------------------------------------------------------------------------
cp -r "$T/model" "$T/odd"
"$PY" -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['head_dim']=15; json.dump(c,open(p,'w'))" "$T/odd/config.json"
expect 2 "head_dim 15 is odd" "$BIN" generate --model "$T/odd" --prompt hi
cp -r "$T/model" "$T/dup"
"$PY" -c "import sys; p=sys.argv[1]; t=open(p).read(); open(p,'w').write(t.replace('{', '{\"rope_theta\": 5.0, ', 1))" "$T/dup/config.json"
expect 2 "key \"rope_theta\" appears twice" "$BIN" generate --model "$T/dup" --prompt hi
mkdir -p "$T/foreign"
"$BIN" "${S[@]}" --searches 1 --out "$T/f0" 2>/dev/null
cp "$T/f0/results.h5" "$T/foreign/results.h5"
"$PY" - "$T/foreign/results.h5" <<'PY' || echo "(no h5py: the foreign-results-file case is skipped)"
import sys
try:
    import h5py
except ImportError:
    sys.exit(1)
with h5py.File(sys.argv[1], "r+") as f:
    del f.attrs["format"]
PY
if "$PY" -c "import h5py" 2>/dev/null; then   # the same file without its format attribute
  expect 2 "not a steerclear results file" "$BIN" extract --run "$T/foreign" --model "$T/model"
fi
expect 2 "unexpected argument 'stray'" "$BIN" "${S[@]}" --out "$T/pos" stray
expect 2 "unexpected argument 'x'" "$BIN" extract --run "$T/r" x
: >"$T/r/results.h5.tmp.99999"; : >"$T/r/checkpoints/search_0000.ckpt.tmp.424242"
expect 0 "removed 2 temporary files" "$BIN" extract --run "$T/r" --max-new-tokens 2 --no-export
[ -e "$T/r/results.h5.tmp.99999" ] && fail "a stale results.h5 temporary survived"

# --- a read-only run directory: a clear refusal (root ignores permissions: checked only as a user)
if [ "$(id -u)" != 0 ]; then
  cp -r "$T/r" "$T/ro"; chmod -R a-w "$T/ro"
  expect 2 "cannot open the run directory's lock file for writing" "$BIN" extract --run "$T/ro" --max-new-tokens 2
  chmod -R u+w "$T/ro"
else
  echo "reliability: read-only run directory not checked (running as root, which ignores permissions)"
fi

# --- kills at random moments in extract and evaluate: a rerun gives what an uninterrupted run gives
cp -r "$T/r" "$T/k1"; cp -r "$T/r" "$T/k2"
E=(--max-new-tokens 6); V=(--max-new-tokens 6 --limit 4)
"$BIN" extract --run "$T/k1" "${E[@]}" >/dev/null 2>&1 && "$BIN" evaluate --run "$T/k1" "${V[@]}" >/dev/null 2>&1 || fail "extract/evaluate on a copy"
for stage in extract evaluate; do
  args=("${E[@]}"); [ $stage = evaluate ] && args=("${V[@]}")
  for delay in 0.3 0.9; do
    "$BIN" $stage --run "$T/k2" "${args[@]}" >/dev/null 2>&1 & pid=$!
    sleep $delay; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  done
  "$BIN" $stage --run "$T/k2" "${args[@]}" >/dev/null 2>&1 || fail "$stage after being killed twice"
done
for d in /directions /direction_token_counts /extract/continuations/values; do
  [ "$(h5 "$T/k1" $d)" = "$(h5 "$T/k2" $d)" ] || fail "$d differs after kills and a rerun of extract"
done
for f in "$T/k1"/eval/*.json; do cmp -s "$f" "$T/k2/${f#$T/k1/}" || fail "${f#$T/k1/} differs after kills and a rerun"; done
for f in "$T/k1"/directions/*.safetensors; do   # the same tensors; the metadata names each run's own directory
  "$PY" - "$f" "$T/k2/${f#$T/k1/}" <<'PY' || fail "${f#$T/k1/} differs after kills and a rerun"
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    h["__metadata__"].pop("steerclear.run", None)
    return h, b[8 + n:]
sys.exit(load(sys.argv[1]) != load(sys.argv[2]))
PY
done
ok

echo "reliability: $checks cases passed, $fails failed"
[ "$fails" = 0 ] && echo "1 passed, 0 failed"
exit $((fails > 0))
