#!/usr/bin/env bash
# `steerclear run` killed (SIGKILL) once in every stage — in the middle of its work and again
# after its outputs are written but before its completion is recorded — then resumed, gives the
# same results.h5 datasets, scores.json, judge/themes.json and quantify files as a run that was
# never interrupted (dates aside). Also: the config checks on resume, exit codes, status.json,
# run.log and stages.json.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
/usr/bin/python3 -c "import h5py" 2>/dev/null || { echo "skipped: python3-h5py missing (run scripts/setup.sh)"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

/usr/bin/python3 - "$SRC/datasets/quantify.csv" "$T/q.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
w = csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n")
w.writerow(rows[0])
for need in ("low", "high"):
    w.writerows([r for r in rows[1:] if r[0] == need][:2])
EOF
config() {   # $1: file, $2: judge in_flight, $3: search lr
  cat >"$1" <<EOF
{
  "model": "$T/model",
  "make_model": {"preset": "tiny", "seed": 3, "tokenizer": "$TOK"},
  "search": {"searches": 2, "prompts_per_search": 4, "batch_size": 2, "max_new_tokens": 6, "lr": $3},
  "extract": {"max_new_tokens": 4, "prompts": "test", "batch_seqs": 16},
  "evaluate": {"limit": 12, "max_new_tokens": 8, "batch_seqs": 16},
  "judge": {"batches": 2, "batch_size": 6, "in_flight": $2},
  "quantify": {"top": 1, "max_new_tokens": 6, "scales": [-2, 0, 4], "prompts": "$T/q.csv", "batch_seqs": 16}
}
EOF
}
config "$T/study.json" 8 0.1

# the reference: one uninterrupted run (it also makes the model on first use)
"$BIN" run --config "$T/study.json" --out "$T/ref" >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "the reference run failed"; }
[ -f "$T/model/config.json" ] || fail "make_model did not make the model"
grep -q "report: $T/ref/report.md" "$T/out" || { cat "$T/out"; fail "run did not print where the report is"; }
grep -q "rank  search  linearity" "$T/out" || { cat "$T/out"; fail "run did not print the score table"; }
/usr/bin/python3 - "$T/ref" <<'EOF' || fail "status.json, stages.json or run.log of the reference run"
import json, sys, os
d = sys.argv[1]
s = json.load(open(d + "/status.json"))
assert s["state"] == "done" and s["stage"] == "report" and s["last_error"] is None and s["version"], s
st = json.load(open(d + "/stages.json"))
assert list(st["stages"]) == ["search", "extract", "evaluate", "judge", "score", "quantify", "report"], st
assert st["runs"][0]["host"] and st["runs"][0]["resumed"] is False
# what ran is recorded: the test environment pins SC_PRECISION=f32
assert st["runs"][0]["backend"].startswith("cpu") and st["runs"][0]["precision"] == "f32", st["runs"][0]
log = open(d + "/run.log").read()
assert log.count("finished in") == 7 and "eta" in log, log[-2000:]
c = json.load(open(d + "/config.json"))
assert c["search"]["lr"] == 0.10000000149011612 and c["evaluate"]["scales"] == [2] and c["judge"]["provider"] == "lexical"
EOF

compare() {   # $1: run directory against the reference
  /usr/bin/python3 - "$T/ref" "$1" <<'EOF'
import json, sys, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
def undate(x):
    if isinstance(x, dict): return {k: undate(v) for k, v in x.items() if k not in ("date", "started")}
    if isinstance(x, list): return [undate(v) for v in x]
    return x
for f in ("scores.json", "judge/themes.json", "quantify/search_0000.json", "quantify/search_0001.json", "quantify/outputs_0000.json", "quantify/outputs_0001.json"):
    try: ja = json.load(open(a + "/" + f))
    except FileNotFoundError: continue
    jb = json.loads(open(b + "/" + f).read().replace(b, a))   # paths inside the run directory
    assert undate(ja) == undate(jb), "%s differs" % f
with h5py.File(a + "/results.h5") as fa, h5py.File(b + "/results.h5") as fb:
    names = []
    fa.visit(names.append)
    other = []
    fb.visit(other.append)
    assert sorted(names) == sorted(other), set(names) ^ set(other)
    for n in names:
        if isinstance(fa[n], h5py.Dataset):
            assert np.array_equal(fa[n][()], fb[n][()]), "dataset %s differs" % n
        for k in fa[n].attrs:
            if k not in ("date",):
                assert np.array_equal(np.asarray(fa[n].attrs[k]), np.asarray(fb[n].attrs[k])), "attribute %s of %s differs" % (k, n)
for f in ("eval/base.json", "eval/adapter_0000.json", "eval/direction_0001_scale_2.json"):
    assert json.load(open(a + "/" + f)) == json.load(open(b + "/" + f)), "%s differs" % f
EOF
}

n=0
for point in search:progress search:end extract:progress extract:end evaluate:progress evaluate:end judge:progress judge:end \
             score:end quantify:progress quantify:end report:end; do
  R="$T/k$n"; n=$((n + 1))
  set +e
  SC_TEST_KILL=$point "$BIN" run --config "$T/study.json" --out "$R" >/dev/null 2>"$T/err"; rc=$?
  set -e
  [ $rc -eq 137 ] || { tail -5 "$T/err"; fail "SC_TEST_KILL=$point: exit $rc, not killed (the point was never reached?)"; }
  stage=${point%%:*}
  /usr/bin/python3 -c "import json,sys; sys.exit('$stage' in json.load(open('$R/stages.json'))['stages'])" \
    || fail "$point: stage $stage recorded as finished although it was killed"
  "$BIN" run --config "$T/study.json" --out "$R" >/dev/null 2>"$T/err" && fail "$point: a rerun without --resume was accepted"
  "$BIN" run --config "$T/study.json" --out "$R" --resume >/dev/null 2>"$T/err" || { tail -20 "$T/err"; fail "$point: --resume failed"; }
  compare "$R" || fail "killed at $point and resumed: results differ from the uninterrupted run"
  echo "killed at $point, resumed: same results"
done

# config changes on resume: a free key is accepted, a key of a finished stage is refused
config "$T/free.json" 2 0.1
"$BIN" run --config "$T/free.json" --out "$T/ref" --resume >/dev/null 2>"$T/err" || { cat "$T/err"; fail "a changed judge.in_flight was refused"; }
config "$T/lr.json" 8 0.2
set +e
"$BIN" run --config "$T/lr.json" --out "$T/ref" --resume >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "search.lr" "$T/err" && grep -q "finished stage search" "$T/err" || { cat "$T/err"; fail "a changed search.lr gave exit $rc"; }
# the precision changes results: pinning it on resume (the run had none: auto) is refused too
sed 's/^  "model": /  "precision": "f32",\n  "model": /' "$T/study.json" >"$T/prec.json"
set +e
"$BIN" run --config "$T/prec.json" --out "$T/ref" --resume >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "precision" "$T/err" && grep -q "finished stage search" "$T/err" || { cat "$T/err"; fail "a changed precision gave exit $rc"; }
# bad configs: exit 2 naming the key
echo '{"model": "x", "search": {"lr": "fast"}}' >"$T/bad.json"
set +e
"$BIN" run --config "$T/bad.json" --out "$T/bad" 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "lr" "$T/err" || { cat "$T/err"; fail "a string lr gave exit $rc"; }
echo '{"model": "x", "evaluate": {"scale": [2]}}' >"$T/bad.json"
set +e
"$BIN" run --config "$T/bad.json" --out "$T/bad" 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "scale" "$T/err" || { cat "$T/err"; fail "an unknown key gave exit $rc"; }
echo '{"model": "no-such-model"}' >"$T/bad.json"   # no make_model section: nothing to make it from
set +e
"$BIN" run --config "$T/bad.json" --out "$T/bad" 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q '"model": .*no-such-model is not a model directory' "$T/err" || { cat "$T/err"; fail "a missing model directory gave exit $rc"; }
echo "run_resume: 12 kills resumed to identical results; config checks on resume"
echo "1 passed, 0 failed"
