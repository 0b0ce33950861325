#!/usr/bin/env bash
# judge -> score -> quantify -> report from the command line on a tiny run: the lexical judge
# (the embedded default), then the openai provider against tests/judge_server.py (a local
# stand-in speaking the real protocol): a second judge answers from the cache without one
# request, and the API key is nowhere in the run directory. Also: reruns redo nothing, outputs
# judged from another folder (--outputs), bad options are refused with exit 2.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
T="$(mktemp -d)"; SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
run() { "$BIN" "$@" 2>"$T/err" || { cat "$T/err"; fail "steerclear $* failed"; }; }

"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 5 --out "$T/model" >/dev/null 2>&1
run search --model "$T/model" --out "$T/run" --searches 2 --prompts-per-search 4 --batch-size 2 --max-new-tokens 6
run extract --run "$T/run" --max-new-tokens 6
run evaluate --run "$T/run" --limit 40 --max-new-tokens 12 --scales 2

# lexical judge and score
run judge --run "$T/run"
[ -f "$T/run/judge/themes.json" ] || fail "judge wrote no judge/themes.json"
grep -q "judge: 2 searches, 12 batches (0 answered before), provider lexical" "$T/err" || { cat "$T/err"; fail "judge did not log its batches (40 outputs: 3 batches per side)"; }
run judge --run "$T/run"
grep -q "(12 answered before)" "$T/err" || { cat "$T/err"; fail "a second judge asked again"; }
run score --run "$T/run"
/usr/bin/python3 - "$T/run/scores.json" <<'EOF' || fail "scores.json is not a ranking of 2 searches"
import json, sys
s = json.load(open(sys.argv[1]))
r = s["ranking"]
assert len(r) == 2 and r[0]["linearity"] >= r[1]["linearity"], r
assert s["judge"]["provider"] == "lexical" and s["threshold"] == 0.83
for e in r:
    assert -1 <= e["linearity"] <= 1 and e["adapter_batches"] == 3
    # a random tiny model's outputs rarely share a theme: no theme on a side means nothing to match
    assert (e["best"] is None) == (e["adapter_themes"] == 0 or e["direction_themes"] == 0)
    if e["best"] is None: assert e["linearity"] == 0 and e["matches"] == []
EOF

# quantify: the best direction on 6 prompts at 3 scales, then again (outputs reused)
/usr/bin/python3 - "$SRC/datasets/quantify.csv" "$T/q.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
w = csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n")
w.writerow(rows[0])
for need in ("low", "medium", "high"):
    w.writerows([r for r in rows[1:] if r[0] == need][:2])
EOF
run quantify --run "$T/run" --top 1 --prompts "$T/q.csv" --scales -2,0,4 --max-new-tokens 8
grep -q "quantify: generating 1 searches x 2 scales x 6 prompts" "$T/err" || { cat "$T/err"; fail "quantify did not generate the sweep"; }
Q="$(ls "$T/run/quantify"/search_*.json)"
/usr/bin/python3 - "$Q" <<'EOF' || fail "quantify's search file is wrong"
import json, sys
q = json.load(open(sys.argv[1]))
sw = q["sweep"]
assert [e["scale"] for e in sw] == [-2, 0, 4], sw
assert sw[1]["traits"] is None
for e in (sw[0], sw[2]):
    for trait in ("empathetic", "prescriptive"):
        t = e["traits"][trait]
        assert t["answers"] == 12 and t["failed"] == 0 and 0 <= t["wins"] <= 12
        assert t["ci_low"] <= t["rate"] <= t["ci_high"]
        assert set(t["by_need"]) == {"low", "medium", "high"} and sum(v["answers"] for v in t["by_need"].values()) == 12
assert all(e["outputs"] == 6 and e["words"]["mean"] >= 0 for e in sw)
EOF
run quantify --run "$T/run" --top 1 --prompts "$T/q.csv" --scales -2,0,4 --max-new-tokens 8
grep -q "generating" "$T/err" && { cat "$T/err"; fail "a second quantify generated again"; }

# report
run report --run "$T/run"
[ -f "$T/run/report.md" ] || fail "report wrote no report.md"
grep -q "lexical" "$T/run/report.md" || fail "report.md does not name the judge"

# outputs from elsewhere, judged and scored into a new run directory
mkdir -p "$T/elsewhere"; cp "$T/run/eval"/adapter_0001.json "$T/run/eval"/direction_0001_scale_2.json "$T/elsewhere/"
run judge --run "$T/other" --outputs "$T/elsewhere"
run score --run "$T/other"
grep -q '"search":	1' "$T/other/scores.json" || fail "outputs judged from --outputs were not scored"

# bad options: exit 2 with a message naming the option
set +e
"$BIN" judge --run "$T/run" --provider nope 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "provider" "$T/err" || { cat "$T/err"; fail "an unknown provider gave exit $rc"; }
"$BIN" judge --run "$T/run" --batch-size 0 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "batch_size" "$T/err" || { cat "$T/err"; fail "--batch-size 0 gave exit $rc"; }
"$BIN" quantify --run "$T/run" --scales 1,x 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "scales" "$T/err" || { cat "$T/err"; fail "--scales 1,x gave exit $rc"; }
set -e

# the openai provider against the local stand-in server; the key never lands in the run
if [ -x /usr/bin/python3 ]; then
  KEY="sk-test-$RANDOM$RANDOM-secret"
  coproc SERVER { exec /usr/bin/python3 "$SRC/tests/judge_server.py" --log "$T/server.log" --key "$KEY"; }
  SERVER_PID=$SERVER_PID
  read -r PORT <&"${SERVER[0]}"
  export SC_JUDGE_TEST_KEY="$KEY"
  NET=(--provider openai --base-url "http://127.0.0.1:$PORT" --api-key-env SC_JUDGE_TEST_KEY)
  run judge --run "$T/run" "${NET[@]}"
  first=$(wc -l <"$T/server.log")
  [ "$first" -gt 0 ] || fail "the openai judge sent no request"
  run score --run "$T/run"
  grep -q '"provider":	"openai"' "$T/run/scores.json" || fail "scores.json does not name the openai judge"
  rm "$T/run/judge/themes.json"   # only the cache is left: every answer must come from it
  run judge --run "$T/run" "${NET[@]}"
  [ "$(wc -l <"$T/server.log")" -eq "$first" ] || fail "a second judge sent $(( $(wc -l <"$T/server.log") - first )) requests (the cache should answer all)"
  run quantify --run "$T/run" --top 1 --prompts "$T/q.csv" --scales -2,0,4 --max-new-tokens 8 "${NET[@]}"
  if grep -rqF "$KEY" "$T/run"; then fail "the API key is in the run directory: $(grep -rlF "$KEY" "$T/run")"; fi
  /usr/bin/python3 -c "
import json, sys
bad = [json.loads(l)['problems'] for l in open('$T/server.log') if json.loads(l)['problems']]
sys.exit('server found problems: %s' % bad[:3] if bad else 0)" || fail "malformed requests"
  echo "openai: $first requests, none on the second judge, key not in the run"
fi
echo "judging: judge, score, quantify and report from the command line"
echo "1 passed, 0 failed"
