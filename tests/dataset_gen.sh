#!/usr/bin/env bash
# `steerclear dataset` from the command line against tests/judge_server.py (a local stand-in
# speaking the real OpenAI and Gemini protocols, with the request schema checked):
#   normal      the shipped scenarios: 16 + 4 openers per scenario, the dataset format checked
#               independently (Python), a rerun answered wholly from the cache, identical files
#   gemini      the same request kind through the Gemini wire format
#   duplicates  repeated, near-copied and already-kept openers dropped (report checked; the kept
#               ones pairwise below the Jaccard threshold by an independent Python computation)
#   dirty       empty, short, long, multi-line, control-character, chat-token, role-marker and
#               unknown-speaker openers
#   malformed   answers that are not JSON or break the schema: not cached, asked again
#   too few     short answers: more rounds; a round limit leaves scenarios short (exit 1,
#               per-scenario report), --allow-short splits what there is
#   outage      the server fails after half the scenarios; the rerun continues from the cache
#               and gives byte-identical files to an uninterrupted run
#   interrupt   SIGINT while a request hangs: exit 3, answers so far kept and cached, the rerun
#               finishes with the same files as an uninterrupted run
#   budget      a request budget too small: missing openers reported
#   holdout     whole scenarios held out
#   round trip  the CSVs load in `search` (one step on a tiny model) and `evaluate`; with
#               --completions the test set's original_completion equals evaluate's base output
set -euo pipefail
BIN="${SC_BIN:?}"; SRC="${SC_SOURCE_DIR:?}"; TOK="${SC_TOKENIZER:-}"
PY=/usr/bin/python3
T="$(mktemp -d)"; SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkfifo "$T/in"
$PY "$SRC/tests/judge_server.py" --log "$T/log" --no-auth --slow-s 30 <"$T/in" >"$T/port" &   # slow: the interrupt case
SERVER_PID=$!
exec 9>"$T/in"
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT="$(head -1 "$T/port")"
[ -n "$PORT" ] || fail "the test server did not start"
URL="http://127.0.0.1:$PORT"
control() {   # the server's settings (Python: the curl program is not among the CI's packages)
  $PY -c 'import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(u.Request(sys.argv[1], sys.argv[2].encode(), {"Content-Type": "application/json"})).read()' \
    "$URL/_control" "$1"
}
requests() { [ -f "$T/log" ] && wc -l <"$T/log" || echo 0; }
ds() { "$BIN" dataset --provider openai --base-url "$URL" --api-key-env "" --model test-model "$@"; }

# six scenarios of the shipped file for the quicker cases
$PY - "$SRC/datasets/scenarios.json" "$T/six.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["scenarios"] = d["scenarios"][:6]
json.dump(d, open(sys.argv[2], "w"))
EOF

# the independent check of a generated pair: format, counts, scenario contexts and roles
cat >"$T/check.py" <<'EOF'
import csv, json, re, sys
out, scen_path, train_per, test_per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
scen = {s["name"]: s for s in json.load(open(scen_path))["scenarios"]}
pat = re.compile(r"^<\|im_start\|>([^\n]+)\n([^\n]+)\n<\|im_end\|>\n\n<\|im_start\|>([^\n]+)$")
tr = list(csv.DictReader(open(out + "/train.csv", newline="")))
te = list(csv.DictReader(open(out + "/test.csv", newline="")))
assert list(tr[0].keys()) == ["category", "full_prompt"], tr[0].keys()
assert list(te[0].keys())[:3] == ["category", "prompt", "full_prompt"], te[0].keys()
texts = set()
for rows, want in ((tr, train_per), (te, test_per)):
    per = {}
    for r in rows:
        s = scen[r["category"]]
        ctx, _, chat = r["full_prompt"].partition("\n")
        assert ctx == s["context"], (ctx, s["context"])
        if "prompt" in r:
            assert r["prompt"] == chat
        m = pat.match(chat)
        assert m, chat
        speaker, text, listener = m.groups()
        assert {speaker, listener} == set(s["roles"]), (speaker, listener, s["roles"])
        assert text == text.strip() and "<|" not in text
        assert text not in texts, "an opener twice: " + text
        texts.add(text)
        per[r["category"]] = per.get(r["category"], 0) + 1
    if want:
        assert set(per.values()) == {want} and set(per) == set(scen), per
m = json.load(open(out + "/manifest.json"))
assert m["counts"]["train"] == len(tr) and m["counts"]["test"] == len(te), m["counts"]
assert m["counts"]["missing"] == 0 or "allow" in sys.argv[5:], m["counts"]
EOF

# --- normal: the shipped scenarios, default settings ----------------------------------------
ds --out "$T/normal" 2>"$T/err" >/dev/null || { cat "$T/err"; fail "a normal run failed"; }
N_SCEN="$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))['scenarios']))" "$SRC/datasets/scenarios.json")"
$PY "$T/check.py" "$T/normal" "$SRC/datasets/scenarios.json" 16 4 || fail "the normal run's files are wrong"
grep -q "stratified split (seed 1234): $((N_SCEN * 16)) train, $((N_SCEN * 4)) test prompts" "$T/err" || { cat "$T/err"; fail "no split summary"; }
$PY - "$T/log" "$T/normal/cleaning.json" "$N_SCEN" <<'EOF' || fail "the normal run's requests or report are wrong"
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[3])
assert all(not e["problems"] for e in log), [e["problems"] for e in log if e["problems"]]
assert len(log) == 2 * n, len(log)       # 12 asked, then 8 more (asked for 11): two requests a scenario
body = json.loads(log[0]["body"])
assert body["temperature"] == 1 and body["response_format"]["json_schema"]["name"] == "openers_answer"
assert "Write 12 new openers (request 1)" in body["messages"][1]["content"]
c = json.load(open(sys.argv[2]))
assert c["summary"]["kept"] == 20 * n and c["summary"]["requests"] == 2 * n and c["summary"]["cached"] == 0
assert c["summary"]["by_reason"]["surplus"] == 3 * n and c["summary"]["dropped"] == 3 * n, c["summary"]
# the second request quotes the first's kept openers back
second = [json.loads(e["body"])["messages"][1]["content"] for e in log[n:]]
assert all("(request 2)" in u and u.count("\n- ") >= 12 for u in second)
EOF
BEFORE="$(requests)"
cp "$T/normal/train.csv" "$T/normal/test.csv" "$T/normal/manifest.json" "$T/"
ds --out "$T/normal" 2>"$T/err" >/dev/null || { cat "$T/err"; fail "a rerun failed"; }
[ "$(requests)" = "$BEFORE" ] || fail "a rerun sent requests (all answers are in the cache)"
grep -q "($((2 * N_SCEN)) from the cache, 0 failed)" "$T/err" || { cat "$T/err"; fail "the rerun did not say it answered from the cache"; }
cmp -s "$T/train.csv" "$T/normal/train.csv" && cmp -s "$T/test.csv" "$T/normal/test.csv" || fail "the rerun wrote other files"

# --- gemini: the same through the Gemini wire format -----------------------------------------
GEMINI_API_KEY=anything "$BIN" dataset --provider gemini --base-url "$URL" --model gemini-test --scenarios "$T/six.json" \
    --out "$T/gemini" --no-cache 2>"$T/err" >/dev/null || { cat "$T/err"; fail "the gemini run failed"; }
$PY "$T/check.py" "$T/gemini" "$T/six.json" 16 4 || fail "the gemini run's files are wrong"
grep -q '"path": "/v1beta/models/gemini-test:generateContent"' <<<"$(tail -n 12 "$T/log")" || fail "the gemini run did not use generateContent"
[ ! -d "$T/gemini/cache" ] || fail "--no-cache wrote a cache"

# --- duplicates ------------------------------------------------------------------------------
control '{"faults": "dupes:1000"}'
ds --scenarios "$T/six.json" --out "$T/dupes" --per-scenario 10 --train-per-scenario 8 --test-per-scenario 2 --batch 6 \
    2>"$T/err" >/dev/null || { cat "$T/err"; fail "the duplicates run failed"; }
control '{"faults": ""}'
$PY "$T/check.py" "$T/dupes" "$T/six.json" 8 2 || fail "the duplicates run's files are wrong"
$PY - "$T/dupes" <<'EOF' || fail "duplicates were not dropped as they should be"
import csv, json, re, sys, unicodedata
out = sys.argv[1]
c = json.load(open(out + "/cleaning.json"))
by = c["summary"]["by_reason"]
# per answer: every opener twice (the copy dropped), a near-copy, and a copy of a kept one (from request 2 on)
assert by["duplicate"] >= 6 * 6 and by["near_duplicate"] >= 6, by
later = [d for d in c["dropped"] if d["reason"] == "duplicate" and d["request"] >= 1 and d["text"].isupper()]
assert len(later) >= 6, "an upper-cased copy of an opener kept by an earlier request was not dropped"
near = [d for d in c["dropped"] if d["reason"] == "near_duplicate"]
assert all(d["similar_to"]["jaccard"] >= 0.5 and "keeps me up at night" in d["text"] for d in near), near[:2]
def norm(t):
    t = unicodedata.normalize("NFKC", t).casefold()
    return " ".join(re.sub(r"[^\w]|_", " ", t).split())
def sh(t, k=5):
    return {t[i:i + k] for i in range(max(1, len(t) - k + 1))}
rows = [r["full_prompt"].split("\n")[2] for f in ("train", "test") for r in csv.DictReader(open(out + "/" + f + ".csv", newline=""))]
ns = [norm(t) for t in rows]
assert len(set(ns)) == len(ns)
worst = max(len(sh(a) & sh(b)) / len(sh(a) | sh(b)) for i, a in enumerate(ns) for b in ns[i + 1:])
assert worst < 0.5, worst
EOF

# --- dirty openers ---------------------------------------------------------------------------
control '{"faults": "dirty:1000"}'
ds --scenarios "$T/six.json" --out "$T/dirty" 2>"$T/err" >/dev/null || { cat "$T/err"; fail "the dirty run failed"; }
control '{"faults": ""}'
$PY "$T/check.py" "$T/dirty" "$T/six.json" 16 4 || fail "the dirty run's files are wrong"
$PY - "$T/dirty/cleaning.json" <<'EOF' || fail "dirty openers were not dropped for the right reasons"
import json, sys
c = json.load(open(sys.argv[1]))
by = c["summary"]["by_reason"]
for reason in ("empty", "too_short", "too_long", "line_break", "encoding", "chat_token", "role_marker", "speaker"):
    assert by[reason] == c["summary"]["requests"], (reason, by, c["summary"]["requests"])
EOF
grep -q "dropped (.*12 too_short" "$T/err" && grep -q "role_marker" "$T/err" || { cat "$T/err"; fail "the summary on stderr does not list the reasons"; }

# --- malformed JSON --------------------------------------------------------------------------
control '{"faults": "notjson:2,schema:2"}'
BEFORE="$(requests)"
ds --scenarios "$T/six.json" --out "$T/malformed" --in-flight 1 2>"$T/err" >/dev/null || { cat "$T/err"; fail "the malformed run failed"; }
control '{"faults": ""}'
$PY "$T/check.py" "$T/malformed" "$T/six.json" 16 4 || fail "the malformed run's files are wrong"
grep -q "not valid JSON" "$T/err" && grep -q "breaks the schema" "$T/err" || { cat "$T/err"; fail "the malformed answers were not reported"; }
[ "$(( $(requests) - BEFORE ))" = 16 ] || fail "malformed: $(( $(requests) - BEFORE )) requests, want 12 + 4 asked again"
[ "$(find "$T/malformed/cache" -name '*.json' | wc -l)" = 12 ] || fail "a malformed answer was cached"
$PY -c "import json,sys; c=json.load(open(sys.argv[1]))['summary']; assert c['failed']==4 and c['requests']==16, c" "$T/malformed/cleaning.json" \
    || fail "the malformed run's report does not count 4 failed requests"

# --- too few items ---------------------------------------------------------------------------
control '{"faults": "few:1000"}'
ds --scenarios "$T/six.json" --out "$T/few" --per-scenario 6 --train-per-scenario 5 --test-per-scenario 1 2>"$T/err" >/dev/null \
    || { cat "$T/err"; fail "the too-few run failed"; }
$PY "$T/check.py" "$T/few" "$T/six.json" 5 1 || fail "the too-few run's files are wrong"
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); assert all(s['requests']==3 and s['kept']==6 for s in c['scenarios']), c['scenarios']" \
    "$T/few/cleaning.json" || fail "too few: each scenario should take 3 requests of 2 openers"
set +e
ds --scenarios "$T/six.json" --out "$T/few2" --per-scenario 6 --train-per-scenario 5 --test-per-scenario 1 --max-rounds 2 2>"$T/err" >/dev/null
RC=$?
set -e
[ "$RC" = 1 ] || { cat "$T/err"; fail "a round limit that leaves scenarios short exited $RC, want 1"; }
grep -q "lighthouse_keepers: 2 of 6 openers missing (stopped: rounds)" "$T/err" || { cat "$T/err"; fail "the missing openers are not reported per scenario"; }
grep -q "6 of 6 scenarios are short of openers" "$T/err" || { cat "$T/err"; fail "no summary of the short scenarios"; }
[ ! -f "$T/few2/train.csv" ] && [ -f "$T/few2/cleaning.json" ] || fail "a short run wrote a split, or no report"
ds --scenarios "$T/six.json" --out "$T/few2" --per-scenario 6 --train-per-scenario 5 --test-per-scenario 1 --max-rounds 2 --allow-short \
    2>"$T/err" >/dev/null || { cat "$T/err"; fail "--allow-short failed"; }
$PY "$T/check.py" "$T/few2" "$T/six.json" 3 1 allow || fail "the --allow-short files are wrong"
control '{"faults": ""}'

# --- outage after half the scenarios, then a rerun from the cache ---------------------------
SMALL=(--scenarios "$T/six.json" --per-scenario 5 --train-per-scenario 4 --test-per-scenario 1 --in-flight 1 --max-attempts 1)
control '{"down_after": 3}'
set +e
ds "${SMALL[@]}" --out "$T/outage" 2>"$T/err" >/dev/null
RC=$?
set -e
[ "$RC" = 1 ] || { cat "$T/err"; fail "a run during an outage exited $RC, want 1"; }
grep -q "3 of 6 scenarios are short" "$T/err" || { cat "$T/err"; fail "the outage did not leave 3 scenarios short"; }
grep -q "HTTP 503" "$T/err" || { cat "$T/err"; fail "the failed requests' error is not reported"; }
control '{"down_after": null}'
BEFORE="$(requests)"
ds "${SMALL[@]}" --out "$T/outage" 2>"$T/err" >/dev/null || { cat "$T/err"; fail "the rerun after the outage failed"; }
[ "$(( $(requests) - BEFORE ))" = 3 ] || fail "the rerun sent $(( $(requests) - BEFORE )) requests, want only the 3 missing scenarios'"
grep -q "(3 from the cache, 0 failed)" "$T/err" || { cat "$T/err"; fail "the rerun did not answer 3 scenarios from the cache"; }
ds "${SMALL[@]}" --out "$T/fresh" 2>"$T/err" >/dev/null || { cat "$T/err"; fail "the uninterrupted run failed"; }
for f in train.csv test.csv; do cmp -s "$T/outage/$f" "$T/fresh/$f" || fail "$f after the outage and rerun differs from an uninterrupted run's"; done

# --- interrupted (SIGINT while one request hangs), then a rerun -------------------------------
control '{"faults": "slow:1@ski_lift_strangers"}'
BEFORE="$(requests)"
"$BIN" dataset --provider openai --base-url "$URL" --api-key-env "" --model test-model "${SMALL[@]}" --in-flight 8 --out "$T/intr" \
    2>"$T/err" >/dev/null &   # not through ds(): the signal must reach steerclear, not a subshell
DS_PID=$!
for _ in $(seq 100); do [ "$(( $(requests) - BEFORE ))" -ge 6 ] && break; sleep 0.1; done
sleep 1.5   # the five quick answers arrive meanwhile (0.3 s flaked on a busy machine); the slow one takes 30 s
kill -INT "$DS_PID"
set +e
wait "$DS_PID"; RC=$?
set -e
control '{"faults": ""}'
[ "$RC" = 3 ] || { cat "$T/err"; fail "an interrupted run exited $RC, want 3"; }
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); s={x['name']:x for x in c['scenarios']}; \
assert s['ski_lift_strangers']['stopped']=='interrupted' and s['ski_lift_strangers']['kept']==0 and c['summary']['kept']==25, c['scenarios']" \
    "$T/intr/cleaning.json" || fail "the interrupted run's report is wrong (the 5 answered scenarios' openers should be kept)"
ds "${SMALL[@]}" --out "$T/intr" 2>"$T/err" >/dev/null || { cat "$T/err"; fail "the rerun after an interrupt failed"; }
grep -q "(5 from the cache, 0 failed)" "$T/err" || { cat "$T/err"; fail "the rerun after an interrupt did not answer 5 scenarios from the cache"; }
for f in train.csv test.csv; do cmp -s "$T/intr/$f" "$T/fresh/$f" || fail "$f after an interrupt and rerun differs from an uninterrupted run's"; done

# --- request budget --------------------------------------------------------------------------
set +e
ds --scenarios "$T/six.json" --out "$T/budget" --request-budget 4 --no-cache 2>"$T/err" >/dev/null
RC=$?
set -e
[ "$RC" = 1 ] || { cat "$T/err"; fail "a spent request budget exited $RC, want 1"; }
grep -q "request budget is spent" "$T/err" && grep -q "openers missing (stopped: budget)" "$T/err" || { cat "$T/err"; fail "the spent budget is not reported"; }

# --- holdout ---------------------------------------------------------------------------------
ds --scenarios "$T/six.json" --out "$T/holdout" --split holdout --holdout 2 --per-scenario 5 --seed 7 2>"$T/err" >/dev/null \
    || { cat "$T/err"; fail "the holdout run failed"; }
$PY - "$T/holdout" <<'EOF' || fail "the holdout split is wrong"
import csv, json, sys
out = sys.argv[1]
tr = {r["category"] for r in csv.DictReader(open(out + "/train.csv", newline=""))}
te = [r["category"] for r in csv.DictReader(open(out + "/test.csv", newline=""))]
m = json.load(open(out + "/manifest.json"))
assert len(set(te)) == 2 and len(te) == 10 and len(tr) == 4 and not (tr & set(te)), (tr, te)
assert sorted(m["split"]["test_scenarios"]) == sorted(set(te)) and m["seed"] == 7 and m["split"]["kind"] == "holdout"
EOF

# --- bad input -------------------------------------------------------------------------------
printf '{"version": 1, "scenarios": [{"name": "a", "context": "c", "dynamic": "d", "roles": ["A"], "topics": ["t"]}]}' >"$T/bad.json"
set +e
ds --scenarios "$T/bad.json" --out "$T/bad" 2>"$T/err" >/dev/null; RC=$?
set -e
[ "$RC" = 2 ] && grep -q "bad.json: scenario 0 (a): key \"roles\"" "$T/err" || { cat "$T/err"; fail "a bad scenario file: exit $RC or a message without file/scenario/key"; }
set +e
"$BIN" dataset --provider lexical --out "$T/bad" 2>"$T/err"; RC=$?
set -e
[ "$RC" = 2 ] && grep -q "writes no text" "$T/err" || { cat "$T/err"; fail "--provider lexical was not refused"; }

# --- round trip: search and evaluate read the files; completions match evaluate's ------------
if [ -z "$TOK" ] || [ ! -f "$TOK" ]; then echo "round trip skipped: no tokenizer (run scripts/setup.sh)"; exit 0; fi
"$BIN" make-model --preset tiny --layers 2 --tokenizer "$TOK" --seed 5 --out "$T/model" >/dev/null 2>&1
ds "${SMALL[@]}" --out "$T/comp" --completions "$T/model" --completion-max-new-tokens 8 --completion-batch 4 2>"$T/err" >/dev/null \
    || { cat "$T/err"; fail "the run with --completions failed"; }
"$BIN" search --model "$T/model" --out "$T/run" --train "$T/comp/train.csv" --searches 1 \
    --prompts-per-search 2 --batch-size 2 --max-new-tokens 4 2>"$T/err" >/dev/null || { cat "$T/err"; fail "search did not take the generated train.csv"; }
"$BIN" evaluate --run "$T/run" --test "$T/comp/test.csv" --max-new-tokens 8 --no-directions 2>"$T/err" >/dev/null \
    || { cat "$T/err"; fail "evaluate did not take the generated test.csv"; }
$PY - "$T/comp/test.csv" "$T/run/eval/base.json" <<'EOF' || fail "original_completion differs from evaluate's base output"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
base = json.load(open(sys.argv[2]))
assert len(rows) == len(base) == 6
for r, b in zip(rows, base):
    assert r["prompt"] == b["prompt"]
    assert r["original_completion"] == b["output"], (r["original_completion"], b["output"])
assert any(r["original_completion"] for r in rows)
EOF
echo "dataset_gen: ok"
