#!/usr/bin/env bash
# Weak scaling of the search stage over MPI search groups: N searches on N ranks against 1 search
# on 1 rank (the same tiny model, one OpenMP thread per rank), from the "search" wall time in
# RUN_DIR/stages.json. Efficiency = t(1 search, 1 rank) / t(N searches, N ranks); 1.0 is perfect.
# Then benchmarks/cost_model.py --check: the model's prediction of the N-rank search stage from the
# 1-rank run (ceil(searches / ranks) waves of one search) against the measurement.
# Ranks must not share cores for the number to mean anything: N <= the machine's cores.
#
# usage: benchmarks/mpi_scaling.sh [N ...]     (default: 2; the build in build/)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SC_BIN:-$ROOT/build/steerclear}"
TOK="${SC_TOKENIZER:-$ROOT/.cache/tokenizer/tokenizer.json}"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
config() {   # $1 file, $2 searches
  cat >"$1" <<EOF2
{"model": "$T/model", "make_model": {"preset": "tiny", "seed": 3, "tokenizer": "$TOK"},
 "search": {"searches": $2, "prompts_per_search": 24, "batch_size": 2, "max_new_tokens": 16},
 "extract": {"max_new_tokens": 2, "prompts": "test"}, "evaluate": {"limit": 2, "max_new_tokens": 2},
 "judge": {"batches": 1, "batch_size": 2}, "quantify": {"top": 1, "max_new_tokens": 2, "scales": [0]}}
EOF2
}
search_s() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stages']['search']['wall_s'])" "$1/stages.json"; }
config "$T/c1.json" 1
mpirun --allow-run-as-root --bind-to none -np 1 "$BIN" run --config "$T/c1.json" --out "$T/r1" >/dev/null 2>&1
t1=$(search_s "$T/r1")
echo "1 search on 1 rank: search stage ${t1} s"
for n in "${@:-2}"; do
  config "$T/c$n.json" "$n"
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$n" "$BIN" run --config "$T/c$n.json" --out "$T/r$n" >/dev/null 2>&1
  tn=$(search_s "$T/r$n")
  echo "$n searches on $n ranks: search stage ${tn} s; weak-scaling efficiency $(/usr/bin/python3 -c "print(round($t1 / $tn, 3))")"
  /usr/bin/python3 "$ROOT/benchmarks/cost_model.py" --check "$T/r1" "$T/r$n" "$n"
done
