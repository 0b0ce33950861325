#!/usr/bin/env bash
# The tiny study under MPI (src/dist): `mpirun -np 1`, `-np 2` (2 search groups) and `-np 2` over
# TCP (--mca btl self,tcp, as between nodes) give bitwise the same results.h5 (adapters, steps,
# directions, activation means), eval outputs, judge themes and scores as the run without MPI
# (each search runs whole on one rank with the same seeds and thread count: nothing depends on
# the layout). Pipelines (src/dist/pipeline.c, later.c): `-np 2 --stages 2` (1 group of 2 stages)
# with one micro-batch per step is bitwise the same too (the adapter gradient is summed over the
# stages in the block order of one process; the extract stage's activation sums, each stage its own
# blocks, are the same sums, and the later stages' generation runs on the pipeline too: rank 0
# holds only its own blocks; also with SC_CPU_STRICT=1, where every message goes through the
# pinned host staging copies a GPU backend without CUDA-aware MPI needs; each run logs its
# transfer mode, src/dist/xfer.h); `-np 4 --stages 2` over TCP (2 groups x 2 stages, 2 GPipe
# micro-batches) agrees to a relative 1e-5 (each block's adapter gradient is accumulated over
# micro-batches: another rounding) with the same texts, themes and scores. `-np 3 --stages 3` with
# SC_CPU_STRICT=1 SC_CUDA_AWARE_MPI=1 (MPI is given the backend's buffers as a CUDA-aware MPI is
# given device memory, after the queue's events, which lag like a GPU's in strict mode) is
# bitwise too; a bad SC_CUDA_AWARE_MPI is refused. Then the faults:
# SIGTERM to every rank mid-search exits 3 with each group's checkpoint kept, and --resume on
# another layout (1 rank) finishes with the same results, for 2 groups and for a 2-stage pipeline;
# a rank killed with SIGKILL takes the job down within 60 s with a message naming it; bad layouts
# are refused with a message. With 2 search groups the later stages' generation runs on both
# (rank 1 generates some of the chunks, each exactly one process's) and the extract stage's sums
# too (adapter a on group a mod 2), bitwise; SIGTERM in
# evaluate on 2 groups exits 3 and --resume finishes bitwise. The config asks for f32, the
# reference numerics; where the CPU and the build have bf16, `-np 2` in bf16 is checked against a
# bf16 run without MPI too (every bf16 product rounds its activations to BF16 whatever its row
# count, so a search alone on rank 1 samples what it samples in a pass of three, and, no token
# changing, every result is bitwise the same). Skipped without mpirun, in
# a build without MPI, or under sanitizers.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"
[ -z "${SC_SANITIZE:-}" ] || { echo "skipped: MPI runs under sanitizers (SC_SANITIZE=$SC_SANITIZE) only report Open MPI's own leaks"; exit 77; }
command -v mpirun >/dev/null || { echo "skipped: no mpirun (apt-get install openmpi-bin)"; exit 77; }
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK (run scripts/setup.sh)"; exit 77; }
/usr/bin/python3 -c "import h5py" 2>/dev/null || { echo "skipped: python3-h5py missing (run scripts/setup.sh)"; exit 77; }
grep -q -- "--stages" <<<"$("$BIN" run --help)" || { echo "FAIL: steerclear run has no --stages"; exit 1; }
grep -q "this build: with MPI" <<<"$("$BIN" run --help)" || { echo "skipped: this steerclear was built without MPI (-DSC_MPI=OFF or no libopenmpi-dev)"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# one thread per rank: the same arithmetic in every run, and no oversubscribed cores
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)

config() {   # $1: file, $2: prompts per search
  cat >"$1" <<EOF
{
  "model": "$T/model",
  "make_model": {"preset": "tiny", "seed": 3, "tokenizer": "$TOK"},
  "search": {"searches": 3, "prompts_per_search": $2, "batch_size": 2, "max_new_tokens": 6},
  "extract": {"max_new_tokens": 4, "prompts": "test", "batch_seqs": 16},
  "evaluate": {"limit": 8, "max_new_tokens": 6, "batch_seqs": 16},
  "judge": {"batches": 2, "batch_size": 6},
  "quantify": {"top": 1, "max_new_tokens": 4, "scales": [0, 4], "batch_seqs": 16},
  "precision": "f32",
  "dist": {"stages": 1}
}
EOF
}
config "$T/study.json" 4

compare() {   # $1, $2: run directories; $3: relative tolerance of float data (default 0: bitwise)
  /usr/bin/python3 - "$1" "$2" "${3:-0}" <<'EOF'
import json, sys, h5py, numpy as np
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def undate(x):
    if isinstance(x, dict): return {k: undate(v) for k, v in x.items() if k not in ("date", "started")}
    if isinstance(x, list): return [undate(v) for v in x]
    return x
def close(x, y, where):   # equal, numbers within tol (relative to the larger magnitude)
    if isinstance(x, dict):
        assert isinstance(y, dict) and sorted(x) == sorted(y), where
        for k in x: close(x[k], y[k], where + "/" + k)
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)): close(u, v, "%s[%d]" % (where, i))
    elif isinstance(x, float) and isinstance(y, (int, float)) and tol > 0:
        assert abs(x - y) <= tol * max(abs(x), abs(y), 1e-30), "%s: %r != %r" % (where, x, y)
    else: assert x == y, "%s: %r != %r" % (where, x, y)
for f in ("scores.json", "judge/themes.json", "eval/base.json", "eval/adapter_0000.json", "eval/adapter_0002.json"):
    ja = json.load(open(a + "/" + f))
    jb = json.loads(open(b + "/" + f).read().replace(b, a))
    close(undate(ja), undate(jb), f)
worst = 0.0
with h5py.File(a + "/results.h5") as fa, h5py.File(b + "/results.h5") as fb:
    na, nb = [], []
    fa.visit(na.append); fb.visit(nb.append)
    assert sorted(na) == sorted(nb), set(na) ^ set(nb)
    assert "searches/0002/steps/A" in na and "directions" in na and "extract/adapted_means" in na, na
    for n in na:
        if isinstance(fa[n], h5py.Dataset):
            x, y = fa[n][()], fb[n][()]
            if tol > 0 and x.dtype.kind == "f":
                assert x.shape == y.shape, n
                scale = max(float(np.max(np.abs(x))) if x.size else 0.0, 1e-30)
                err = float(np.max(np.abs(x.astype(np.float64) - y))) / scale if x.size else 0.0
                assert err <= tol, "dataset %s: relative error %g > %g" % (n, err, tol)
                worst = max(worst, err)
            else:
                assert np.array_equal(x, y), "dataset %s differs" % n
        for k in fa[n].attrs:
            if k != "date":
                assert np.array_equal(np.asarray(fa[n].attrs[k]), np.asarray(fb[n].attrs[k])), "attribute %s of %s differs" % (k, n)
if tol > 0: print("largest relative error %.2g" % worst)
EOF
}

# the reference: one process, no MPI (it also makes the model)
"$BIN" run --config "$T/study.json" --out "$T/ref" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "the run without MPI failed"; }
grep -q '"mpi":	false' "$T/ref/layout.json" || { cat "$T/ref/layout.json"; fail "layout.json of the run without MPI"; }

for layout in "1" "2" "2 tcp"; do
  set -- $layout
  np=$1; extra=(); name="np$np"
  [ "${2:-}" = tcp ] && { extra=(--mca btl self,tcp); name="np${np}tcp"; }
  t0=$(date +%s.%N)
  "${MPIRUN[@]}" "${extra[@]}" -np "$np" "$BIN" run --config "$T/study.json" --out "$T/$name" >"$T/out" 2>"$T/err" \
    || { tail -30 "$T/err"; fail "mpirun -np $np ${extra[*]} failed"; }
  /usr/bin/python3 - "$T/$name/layout.json" "$np" <<'EOF' || fail "layout.json of -np $np"
import json, sys
l = json.load(open(sys.argv[1])); np_ = int(sys.argv[2])
assert l["mpi"] is True and l["world_size"] == np_ and l["stages"] == 1 and l["groups"] == np_, l
assert [r["rank"] for r in l["ranks"]] == list(range(np_)) and all(r["blocks"] == [0, l["n_layers"]] for r in l["ranks"]), l
assert l["searches"] == [[s for s in range(3) if s % np_ == g] for g in range(np_)], l
EOF
  grep -q "layout: $np rank" "$T/err" || fail "-np $np: the layout was not printed"
  if [ "$np" = 2 ]; then
    grep -q "search 1 (trained by rank 1) added to results.h5" "$T/err" || { cat "$T/err"; fail "-np 2: search 1 was not trained by rank 1"; }
    grep -qE "^rank 1: .*search (1|3)/3 step" "$T/err" && fail "-np 2: rank 1 ran a search of group 0"
    grep -qE "^rank 1: .*search 2/3 step 2/2" "$T/err" || fail "-np 2: rank 1 did not train search 1"
    grep -q "report: $T/$name/report.md" "$T/out" || fail "-np 2: rank 0 did not report"
    # the later stages' generation on both groups: rank 1 ran some of the chunks, as many as rank 0 counted for group 1
    n1=$(grep -c "^rank 1: generated chunk [0-9]* of [0-9]* (sequences .*) for rank 0 on search group 1$" "$T/err" || true)
    g1=$(grep -o "chunks per search group: [0-9]* [0-9]*$" "$T/err" | awk '{s += $NF} END {print s + 0}')
    [ "$n1" -gt 0 ] && [ "$n1" = "$g1" ] || { grep -i "chunk" "$T/err"; fail "-np 2: group 1 ran $n1 generation chunks (rank 0 counted $g1)"; }
    # and the extract stage's activation sums: adapter a on group a mod 2
    grep -q "^extract: activation sums of 3 adapters on 2 search groups" "$T/err" || { grep extract "$T/err"; fail "-np 2: the extract sums did not run on both groups"; }
    [ "$(grep -c '^report:' "$T/out")" = 1 ] || fail "-np 2: more than one rank printed the report line"
  fi
  compare "$T/ref" "$T/$name" || fail "mpirun -np $np ${extra[*]}: results differ from the run without MPI"
  echo "mpirun -np $np ${extra[*]}: bitwise the same results as without MPI ($(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s)"
done

# bf16 (where this CPU and build have it): -np 2 against a bf16 run without MPI, bitwise
sed 's/"precision": "f32"/"precision": "bf16"/' "$T/study.json" >"$T/bf16.json"
grep -q '"precision": "bf16"' "$T/bf16.json" || fail "the bf16 config was not made"
if "$BIN" run --config "$T/bf16.json" --out "$T/bref" >/dev/null 2>"$T/err"; then
  "${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/bf16.json" --out "$T/bnp2" >/dev/null 2>"$T/err" || { tail -30 "$T/err"; fail "mpirun -np 2 in bf16 failed"; }
  compare "$T/bref" "$T/bnp2" || fail "mpirun -np 2 in bf16: results differ from the bf16 run without MPI"
  echo "mpirun -np 2 in bf16: bitwise the same results as without MPI"
elif grep -q "bf16" "$T/err"; then echo "bf16 not available here: $(grep -m1 bf16 "$T/err")"
else cat "$T/err"; fail "the bf16 run without MPI failed"; fi

# pipelines: 1 group of 2 stages with one micro-batch (bitwise), 2 groups x 2 stages over TCP
# with 2 micro-batches (to a relative 1e-5)
sed 's/"stages": 1}/"stages": 1, "micro_batches": 1}/' "$T/study.json" >"$T/m1.json"
# and 1 group of 2 stages on the CPU backend's strict memory mode (SC_CPU_STRICT=1: backend memory
# is not host memory, as on a GPU: every message goes through the pinned host staging copies), bitwise
for layout in "2 m1" "4 tcp" "2 strict"; do
  set -- $layout
  np=$1; extra=(); cfg="$T/study.json"; tol=1e-5; name="np${np}p2"
  [ "$2" = m1 ] && { cfg="$T/m1.json"; tol=0; }
  [ "$2" = strict ] && { cfg="$T/m1.json"; tol=0; extra=(-x SC_CPU_STRICT=1); name="np${np}p2strict"; }
  [ "$2" = tcp ] && { extra=(--mca btl self,tcp); name="np${np}p2tcp"; }
  t0=$(date +%s.%N)
  "${MPIRUN[@]}" "${extra[@]}" -np "$np" "$BIN" run --config "$cfg" --out "$T/$name" --stages 2 >"$T/out" 2>"$T/err" \
    || { tail -30 "$T/err"; fail "mpirun -np $np --stages 2 ${extra[*]} failed"; }
  /usr/bin/python3 - "$T/$name/layout.json" "$np" "$2" <<'EOF' || fail "layout.json of -np $np --stages 2"
import json, sys
l = json.load(open(sys.argv[1])); np_ = int(sys.argv[2]); g = np_ // 2
assert l["mpi"] is True and l["world_size"] == np_ and l["stages"] == 2 and l["groups"] == g, l
# the tiny model's LM head (151936 x 64) outweighs its blocks: the last stage keeps one block
assert [r["blocks"] for r in l["ranks"]] == [[0, 2], [2, 3]] * g and [r["head"] for r in l["ranks"]] == [False, True] * g, l
assert l["cost_model"]["head_blocks"] > 1 and l["micro_batches"] == (2 if sys.argv[3] == "tcp" else 1), l
assert l["searches"] == [[s for s in range(3) if s % g == k] for k in range(g)], l
EOF
  # rank 1 loaded and ran only its slice; stage 0 of each group wrote the checkpoints and sent the results
  grep -q "^rank 1: pipeline stage 1 of 2 (search group 0): blocks \[2, 3) + head and loss" "$T/err" || { cat "$T/err"; fail "-np $np --stages 2: rank 1 is not stage 1 with blocks [2, 3)"; }
  grep -q "teacher-forced [0-9]* (model 3 x T x C x 4 x (P-1) = " "$T/err" || fail "-np $np --stages 2: no traffic report"
  # no rank holds blocks it does not own: rank 0 loaded blocks [0, 2) only (it has no LM head, so
  # the later stages' generation ran on the pipeline), rank 1 [2, 3)
  grep -q "^model: blocks \[0, 2) of 3 loaded on this rank (pipeline stage 0)" "$T/err" \
    && grep -q "^rank 1: model: blocks \[2, 3) of 3 loaded on this rank (pipeline stage 1)" "$T/err" \
    || { grep "loaded on this rank" "$T/err"; fail "-np $np --stages 2: a rank loaded blocks outside its slice"; }
  # the extract stage's activation sums ran on group 0's stages (each its own blocks)
  grep -q "extract: activation sums of blocks \[0, 2) here and of \[2, 3) on the 1 other stage of search group 0" "$T/err" \
    || { grep extract "$T/err"; fail "-np $np --stages 2: the extract sums did not run on the pipeline"; }
  # the steady state allocates nothing: no backend allocation after a stage's first step
  [ "$(grep -c "pipeline stage [01]: .* steps, .*backend allocations in the steps after the first: 0$" "$T/err")" = "$np" ] \
    || { grep "pipeline stage" "$T/err"; fail "-np $np --stages 2: a pipeline step allocated backend memory"; }
  /usr/bin/python3 - "$T/err" <<'EOF' || fail "-np $np --stages 2: bytes moved are not the model's"
import re, sys
found = 0
for m in re.finditer(r"teacher-forced (\d+) \(model .*? = (\d+)\), sampling (\d+) \(model .*? = (\d+):", open(sys.argv[1]).read()):
    assert m.group(1) == m.group(2) and m.group(3) == m.group(4), m.group(0)
    found += 1
assert found >= 1
EOF
  if [ "$2" = strict ]; then
    grep -q '"backend":.*strict memory' "$T/$name/stages.json" || { cat "$T/$name/stages.json"; fail "SC_CPU_STRICT=1 did not reach the ranks"; }
  fi
  # the transfer mode each stage logs (src/dist/xfer.h)
  case "$2" in strict) mode="pinned host staging";; *) mode="host memory";; esac
  [ "$(grep -c "pipeline transfers: $mode (stage [01] of search group 0; " "$T/err")" = 2 ] \
    || { grep "pipeline transfers" "$T/err"; fail "-np $np --stages 2 ${extra[*]}: the stages of group 0 do not log '$mode' transfers"; }
  if [ "$np" = 4 ]; then
    grep -q "search 1 (trained by rank 2) added to results.h5" "$T/err" || { cat "$T/err"; fail "-np 4 --stages 2: search 1 was not trained by group 1 (ranks 2, 3)"; }
    grep -q "^rank 2: generated chunk .* on search group 1$" "$T/err" || { grep -i chunk "$T/err"; fail "-np 4 --stages 2: group 1's pipeline (ranks 2, 3) ran no generation chunk"; }
  fi
  compare "$T/ref" "$T/$name" "$tol" || fail "mpirun -np $np --stages 2 ${extra[*]}: results differ from the run without MPI"
  echo "mpirun -np $np --stages 2 ${extra[*]}: the same results as without MPI ($( [ "$tol" = 0 ] && echo bitwise || echo "relative $tol"); $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s)"
done

# 3 stages with SC_CUDA_AWARE_MPI=1 on the strict backend: MPI is given the backend's buffers, as
# device memory to a CUDA-aware MPI, each send posted once its event has passed; the strict
# backend's events lag like a device's (pending at the first query), so the middle stage posts
# its sends while it waits for its next input (the overlap path of a GPU). Bitwise with one
# micro-batch per step
t0=$(date +%s.%N)
"${MPIRUN[@]}" -x SC_CPU_STRICT=1 -x SC_CUDA_AWARE_MPI=1 -np 3 "$BIN" run --config "$T/m1.json" --out "$T/np3aware" --stages 3 >"$T/out" 2>"$T/err" \
  || { tail -30 "$T/err"; fail "mpirun -np 3 --stages 3 with SC_CUDA_AWARE_MPI=1 failed"; }
[ "$(grep -c "pipeline transfers: CUDA-aware MPI (stage [012] of search group 0; SC_CUDA_AWARE_MPI=1 (" "$T/err")" = 3 ] \
  || { grep "pipeline transfers" "$T/err"; fail "-np 3 --stages 3 with SC_CUDA_AWARE_MPI=1: the 3 stages do not log CUDA-aware MPI transfers"; }
grep -q "^rank 1: pipeline stage 1 of 3 (search group 0): blocks \[1, 2)" "$T/err" || { grep "pipeline stage" "$T/err"; fail "-np 3 --stages 3: rank 1 is not the middle stage"; }
[ "$(grep -c "pipeline stage [012]: .* steps, .*backend allocations in the steps after the first: 0$" "$T/err")" = 3 ] \
  || { grep "pipeline stage" "$T/err"; fail "-np 3 --stages 3: a pipeline step allocated backend memory"; }
compare "$T/ref" "$T/np3aware" || fail "mpirun -np 3 --stages 3 with SC_CUDA_AWARE_MPI=1: results differ from the run without MPI"
echo "mpirun -np 3 --stages 3 (strict memory, SC_CUDA_AWARE_MPI=1): bitwise the same results as without MPI ($(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s)"
# a value other than 0 or 1 is refused with a message
set +e
SC_CUDA_AWARE_MPI=yes "${MPIRUN[@]}" -x SC_CUDA_AWARE_MPI -np 2 "$BIN" run --config "$T/m1.json" --out "$T/badaware" --stages 2 >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -ne 0 ] && grep -q "SC_CUDA_AWARE_MPI='yes': use 0" "$T/err" || { tail -5 "$T/err"; fail "SC_CUDA_AWARE_MPI=yes: exit $rc"; }

# --resume of a pipeline run whose search stage is finished: the later stages alone, still on the
# pipeline (stage 1 serves rank 0 without searching), bitwise the same
cp -r "$T/np2p2" "$T/resumed"
/usr/bin/python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['stages']={'search': d['stages']['search']}; json.dump(d, open(p, 'w'))" "$T/resumed/stages.json"
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/m1.json" --out "$T/resumed" --stages 2 --resume >"$T/out" 2>"$T/err" || { tail -20 "$T/err"; fail "--resume of a 2-stage run after its search failed"; }
grep -q "search finished earlier, skipped" "$T/err" && grep -q "extract: activation sums of blocks \[0, 2) here" "$T/err" || { cat "$T/err"; fail "--resume after the search: not on the pipeline"; }
compare "$T/ref" "$T/resumed" || fail "--resume of a 2-stage run after its search: results differ"
echo "--resume of a 2-stage run after its search: bitwise the same"

# bad layouts: exit 2 with a message saying what to do
set +e
"${MPIRUN[@]}" -np 1 "$BIN" run --config "$T/study.json" --out "$T/bad" --stages 2 >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -ne 0 ] && grep -q "multiple of" "$T/err" || { cat "$T/err"; fail "1 rank with --stages 2: exit $rc"; }
set +e
"${MPIRUN[@]}" -np 4 "$BIN" run --config "$T/study.json" --out "$T/bad" --stages 4 >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "the model has only 3 blocks, and every pipeline stage needs at least one" "$T/err" || { cat "$T/err"; fail "--stages 4 for 3 blocks: exit $rc"; }
set +e
SLURM_STEP_NUM_TASKS=2 "$BIN" run --config "$T/study.json" --out "$T/bad" >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "srun --mpi=pmix" "$T/err" || { cat "$T/err"; fail "one of 2 Slurm tasks without MPI wire-up: exit $rc"; }
set +e
"${MPIRUN[@]}" -np 2 "$BIN" search --config "$T/study.json" --out "$T/bad" >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -ne 0 ] && grep -q "only \`steerclear run\` runs across ranks" "$T/err" || { cat "$T/err"; fail "steerclear search on 2 ranks: exit $rc"; }
[ ! -e "$T/bad/results.h5" ] || fail "a refused layout wrote results"

# an error on one rank (rank 1 cannot read its search's checkpoint: a folder stands there) stops
# rank 0 too, and rank 0 reports it naming the rank; the exit code is the error's
mkdir -p "$T/e/checkpoints/search_0001.ckpt"
set +e
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/study.json" --out "$T/e" --resume >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -ne 0 ] && grep -q "^error: rank 1 (search group 1): .*search_0001.ckpt" "$T/err" || { cat "$T/err"; fail "an error on rank 1: exit $rc"; }
grep -q "steerclear run: rank 1 (search group 1)" "$T/err" || { cat "$T/err"; fail "rank 0 did not fail with rank 1's error"; }
[ ! -e "$T/e/results.h5" ] || /usr/bin/python3 -c "import h5py,sys; sys.exit('searches/0001' in h5py.File('$T/e/results.h5'))" || fail "search 1 in results.h5 after its rank failed"

# rank pids of the mpirun $1 (its children with an MPI rank)
rank_pid() {   # $1 mpirun pid, $2 rank
  for p in $(pgrep -P "$1"); do
    grep -qx "OMPI_COMM_WORLD_RANK=$2" <<<"$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null)" && { echo "$p"; return; }
  done
}
wait_ckpt() {   # $1 run dir: until both groups have a checkpoint with a step in it
  for _ in $(seq 300); do
    [ -s "$1/checkpoints/search_0000.ckpt" ] && [ -s "$1/checkpoints/search_0001.ckpt" ] && return 0
    sleep 0.1
  done
  return 1
}

# SIGTERM to both ranks of the mpirun $MP (as Slurm sends it to every task); it must exit 3
term_ranks() {   # $1 what (for the message)
  local r0 r1 rc
  r0=$(rank_pid $MP 0); r1=$(rank_pid $MP 1)
  [ -n "$r0" ] && [ -n "$r1" ] || { kill $MP; fail "cannot find the ranks of mpirun $MP"; }
  kill -TERM "$r0" "$r1"
  set +e
  wait $MP; rc=$?
  set -e
  [ $rc -eq 3 ] || { tail -20 "$T/err"; fail "$1: mpirun exit $rc, not 3"; }
}

# SIGTERM to the job (every rank, as Slurm does) in the middle of the searches: exit 3, each
# group's search checkpointed; --resume with 1 rank finishes with the same results as a run never
# stopped
config "$T/long.json" 12
"$BIN" run --config "$T/long.json" --out "$T/longref" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "the long reference run failed"; }
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/long.json" --out "$T/k" >"$T/out" 2>"$T/err" &
MP=$!
wait_ckpt "$T/k" || { kill $MP; fail "no checkpoints appeared"; }
term_ranks "SIGTERM to the ranks"
grep -q "continue with --resume" "$T/err" || { tail "$T/err"; fail "SIGTERM: no word of --resume"; }
/usr/bin/python3 -c "import json,sys; sys.exit('search' in json.load(open('$T/k/stages.json'))['stages'])" || fail "search recorded as finished after SIGTERM"
"${MPIRUN[@]}" -np 1 "$BIN" run --config "$T/long.json" --out "$T/k" --resume >/dev/null 2>"$T/err" || { tail -20 "$T/err"; fail "--resume with 1 rank failed"; }
grep -q "resuming at step" "$T/err" || fail "--resume did not continue a checkpointed search"
compare "$T/longref" "$T/k" || fail "stopped with 2 ranks, resumed with 1: results differ"
echo "SIGTERM with 2 ranks: exit 3; resumed with 1 rank: the same results"

# the same on a pipeline of 2 stages: SIGTERM to both ranks mid-search; the group agrees to stop
# after the same step, exits 3; --resume on 1 rank finishes with the results of a run never stopped
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/long.json" --out "$T/kp" --stages 2 >"$T/out" 2>"$T/err" &
MP=$!
for _ in $(seq 300); do [ -s "$T/kp/checkpoints/search_0000.ckpt" ] && break; sleep 0.1; done
[ -s "$T/kp/checkpoints/search_0000.ckpt" ] || { kill $MP; fail "2 stages: no checkpoint appeared"; }
term_ranks "2 stages, SIGTERM to the ranks"
grep -q "search group 0 stopped after a step.*continue with --resume" "$T/err" || { tail "$T/err"; fail "2 stages, SIGTERM: no word of --resume"; }
"${MPIRUN[@]}" -np 1 "$BIN" run --config "$T/long.json" --out "$T/kp" --resume >/dev/null 2>"$T/err" || { tail -20 "$T/err"; fail "--resume of a 2-stage run with 1 rank failed"; }
grep -q "resuming at step" "$T/err" || fail "--resume did not continue the pipeline's checkpoint"
compare "$T/longref" "$T/kp" 1e-5 || fail "stopped with 2 stages, resumed with 1 rank: results differ"
echo "SIGTERM to a 2-stage pipeline: exit 3; resumed with 1 rank: the same results"

# SIGTERM in the later stages on a pipeline (evaluate, generating on group 0's stages): rank 0
# stops the work between chunks, exit 3; --resume on the pipeline finishes bitwise as a run never
# stopped
sed 's/"evaluate": {"limit": 8, "max_new_tokens": 6, "batch_seqs": 16}/"evaluate": {"limit": 24, "max_new_tokens": 24, "batch_seqs": 4}/' "$T/m1.json" >"$T/ev.json"
grep -q '"limit": 24' "$T/ev.json" || fail "the evaluate config was not rewritten"
"$BIN" run --config "$T/ev.json" --out "$T/evref" >/dev/null 2>"$T/err" || { cat "$T/err"; fail "the evaluate reference run failed"; }
term_in_evaluate() {   # $1 run dir, $2 what it is (for messages), then run's extra options: started with
  # -np 2, SIGTERM to both ranks a second into evaluate; mpirun must exit 3
  local dir=$1 what=$2; shift 2
  "${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/ev.json" --out "$dir" "$@" >"$T/out" 2>"$T/err" &
  MP=$!
  for _ in $(seq 600); do grep -q '"stage":[[:space:]]*"evaluate"' "$dir/status.json" 2>/dev/null && break; sleep 0.1; done
  grep -q '"stage":[[:space:]]*"evaluate"' "$dir/status.json" || { kill $MP; fail "the $what run never reached evaluate"; }
  sleep 1
  term_ranks "SIGTERM in evaluate on $what"
}
term_in_evaluate "$T/ev" "2 stages" --stages 2
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/ev.json" --out "$T/ev" --stages 2 --resume >/dev/null 2>"$T/err" || { tail -20 "$T/err"; fail "--resume after SIGTERM in evaluate failed"; }
grep -q "extract finished earlier, skipped" "$T/err" || fail "--resume after SIGTERM in evaluate redid extract"
compare "$T/evref" "$T/ev" || fail "SIGTERM in evaluate on 2 stages, resumed: results differ"
echo "SIGTERM in evaluate on a 2-stage pipeline: exit 3; resumed: bitwise the same"

# the same with 2 search groups of 1 stage: both generate evaluate's chunks; rank 0 stops handing
# them out, the groups finish the chunk they hold; exit 3, and --resume finishes bitwise the same
term_in_evaluate "$T/ev2" "2 groups"
grep -q "stopped by a signal to rank 0 in the middle of the generation" "$T/err" || { tail -20 "$T/err"; fail "2 groups, SIGTERM in evaluate: not stopped between chunks"; }
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/ev.json" --out "$T/ev2" --resume >/dev/null 2>"$T/err" || { tail -20 "$T/err"; fail "--resume after SIGTERM in evaluate on 2 groups failed"; }
grep -q "^rank 1: generated chunk" "$T/err" || fail "--resume on 2 groups: group 1 generated nothing"
compare "$T/evref" "$T/ev2" || fail "SIGTERM in evaluate on 2 groups, resumed: results differ"
echo "SIGTERM in evaluate on 2 search groups: exit 3; resumed: bitwise the same"

# a rank that dies (SIGKILL) takes the job down, naming it, in bounded time
"${MPIRUN[@]}" -np 2 "$BIN" run --config "$T/long.json" --out "$T/d" >"$T/out" 2>"$T/err" &
MP=$!
wait_ckpt "$T/d" || { kill $MP; fail "no checkpoints appeared"; }
r1=$(rank_pid $MP 1)
t0=$(date +%s)
kill -KILL "$r1"
for _ in $(seq 600); do kill -0 $MP 2>/dev/null || break; sleep 0.1; done
kill -0 $MP 2>/dev/null && { kill -KILL $MP; fail "the job still runs 60 s after rank 1 died"; }
set +e
wait $MP; rc=$?
set -e
[ $rc -ne 0 ] || fail "a job with a dead rank exited 0"
grep -q "process rank 1 .*exited on signal 9" "$T/err" || { tail -20 "$T/err"; fail "the message does not name rank 1"; }
echo "rank 1 killed: the job ended in $(( $(date +%s) - t0 )) s (exit $rc) naming it"
echo "mpi_layouts: ok"
