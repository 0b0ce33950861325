#!/usr/bin/env bash
# slurm/search.sbatch on a real one-node Slurm: starts munged, slurmctld and slurmd (Debian's
# packages, which scripts/setup.sh installs; this script installs nothing) as root with a
# generated slurm.conf in a temporary folder, then
#   1. `sbatch --wait` of the tiny study as 2 MPI tasks (srun --mpi=pmix): results bitwise equal
#      to the same study run in one process without Slurm;
#   2. the same job sent SIGTERM by `scancel --signal=TERM` in the middle of its searches: it
#      checkpoints, exits 3, requeues itself and finishes on its second attempt with the same
#      results.
# The daemons are stopped at the end (trap), whatever happens. Runs only as root and only when
# CI=true or SC_SLURM_TEST=1 (it starts system daemons); skipped (77) otherwise, under sanitizers,
# without the packages, or in a build without MPI.
set -euo pipefail
BIN="${SC_BIN:?}"; TOK="${SC_TOKENIZER:?}"; SRC="${SC_SOURCE_DIR:?}"
[ "${CI:-}" = true ] || [ "${SC_SLURM_TEST:-}" = 1 ] || { echo "skipped: starts Slurm and munge daemons; set SC_SLURM_TEST=1 (CI=true does)"; exit 77; }
[ -z "${SC_SANITIZE:-}" ] || { echo "skipped under sanitizers (SC_SANITIZE=$SC_SANITIZE)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skipped: needs root to start slurmd and munged"; exit 77; }
for c in slurmctld slurmd munged sbatch srun scontrol scancel squeue mpirun; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "skipped: $c missing (scripts/setup.sh installs slurmctld slurmd munge slurm-client openmpi-bin)"; exit 77; }
done
[ -f "$TOK" ] || { echo "skipped: no tokenizer at $TOK"; exit 77; }
grep -q "this build: with MPI" <<<"$("$BIN" run --help)" || { echo "skipped: steerclear built without MPI"; exit 77; }
export PATH="$PATH:/usr/sbin"
T="$(mktemp -d /tmp/sc-slurm.XXXXXX)"
chmod 755 "$T"
fail() { echo "FAIL: $*"; for f in "$T"/log/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }
PIDS=()
cleanup() {
  scancel --full "--name=sc-test" >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null || true; done
  [ -n "${SC_SLURM_KEEP:-}" ] && cp -r "$T/log" /tmp/sc-slurm-log; rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/log" "$T/state" "$T/spool" "$T/munge" "$T/run"

# munge: a key of our own, its socket in our folder (nothing of the machine's is touched)
chown munge: "$T/munge" && chmod 700 "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chown munge: "$T/munge/munge.key" && chmod 400 "$T/munge/munge.key"
runuser -u munge -- /usr/sbin/munged --foreground --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.sock" \
  --pid-file="$T/munge/munged.pid" --log-file="$T/munge/munged.log" --seed-file="$T/munge/seed" >"$T/log/munged.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/munge/munge.sock" ] && break; sleep 0.1; done
[ -S "$T/munge/munge.sock" ] || fail "munged did not start"

HOST=$(hostname -s)
cat >"$T/slurm.conf" <<EOF
ClusterName=sctest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.sock
SlurmctldPort=${SC_SLURM_PORT:-6917}
SlurmdPort=$(( ${SC_SLURM_PORT:-6917} + 1 ))
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=2
KillWait=10
InactiveLimit=0
MinJobAge=300
NodeName=$HOST CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=sctest Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld -D -f "$T/slurm.conf" >"$T/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$T/slurm.conf" -N "$HOST" >"$T/log/slurmd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -qE "^idle" <<<"$(sinfo -h -o %T 2>/dev/null)" && break; sleep 0.2; done
grep -qE "^idle" <<<"$(sinfo -h -o %T 2>/dev/null)" || fail "the Slurm node did not become idle: $(sinfo 2>&1)"
echo "slurm: slurmctld and slurmd up on $HOST ($(nproc) CPUs) ($SECONDS s)"

# f32: "auto" picks bf16 where the CPU has it, whose kernels round differently for different batch
# sizes, so a search trained alone on a rank would differ from the one trained lock-step with others
config() {   # $1: file, $2: prompts per search
  cat >"$1" <<EOF
{
  "model": "$T/model",
  "make_model": {"preset": "tiny", "seed": 3, "tokenizer": "$TOK"},
  "search": {"searches": 2, "prompts_per_search": $2, "batch_size": 2, "max_new_tokens": 6},
  "extract": {"max_new_tokens": 4, "prompts": "test", "batch_seqs": 16},
  "evaluate": {"limit": 8, "max_new_tokens": 6, "batch_seqs": 16},
  "judge": {"batches": 2, "batch_size": 6},
  "quantify": {"top": 1, "max_new_tokens": 4, "scales": [0, 4], "batch_seqs": 16},
  "precision": "f32"
}
EOF
}
compare() {   # bitwise equal results.h5 and scores
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
sa, sb = json.load(open(a + "/scores.json")), json.load(open(b + "/scores.json"))
assert sa["ranking"] == sb["ranking"], "scores.json differs"
with h5py.File(a + "/results.h5") as fa, h5py.File(b + "/results.h5") as fb:
    na, nb = [], []
    fa.visit(na.append); fb.visit(nb.append)
    assert sorted(na) == sorted(nb) and "searches/0001/adapter/A" in na, set(na) ^ set(nb)
    for n in na:
        if isinstance(fa[n], h5py.Dataset):
            assert np.array_equal(fa[n][()], fb[n][()]), "dataset %s differs" % n
EOF
}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
config "$T/study.json" 4
config "$T/long.json" 24
"$BIN" make-model --preset tiny --seed 3 --tokenizer "$TOK" --out "$T/model" >/dev/null 2>"$T/log/model.log" || fail "make-model failed"

# the job scripts as shipped; 2 tasks on this one node, no GPUs
SB=(sbatch --job-name=sc-test --nodes=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 --time=10 --chdir="$T")
export SC_BIN="$BIN"

# 1. sbatch --wait: the study as 2 MPI tasks (the references run in one process meanwhile:
# sbatch --wait polls with growing pauses)
SC_CONFIG="$T/study.json" SC_OUT="$T/job1" "${SB[@]}" --output="$T/log/job1.log" --wait "$SRC/slurm/search.sbatch" >"$T/sbatch.out" 2>&1 &
SBW=$!
"$BIN" run --config "$T/study.json" --out "$T/ref" >/dev/null 2>"$T/log/ref.log" || fail "the reference run failed"
"$BIN" run --config "$T/long.json" --out "$T/longref" >/dev/null 2>"$T/log/longref.log" || fail "the long reference run failed"
set +e
wait $SBW
rc=$?
set -e
[ $rc -eq 0 ] || { cat "$T/sbatch.out"; fail "sbatch --wait of the 2-task study: exit $rc"; }
grep -q "layout: 2 ranks (MPI)" "$T/log/job1.log" || fail "the job did not run 2 MPI ranks (see job1.log)"
grep -q "search 1 (trained by rank 1) added" "$T/log/job1.log" || fail "rank 1 did not train search 1"
compare "$T/ref" "$T/job1" || fail "the 2-task Slurm job's results differ from the run without Slurm"
echo "slurm: sbatch --wait of a 2-task study: the same results as one process ($SECONDS s)"

# 2. scancel --signal=TERM mid-search: exit 3, requeued, resumed on the second attempt
JOB=$(SC_CONFIG="$T/long.json" SC_OUT="$T/job2" "${SB[@]}" --output="$T/log/job2.log" --parsable "$SRC/slurm/search.sbatch")
for _ in $(seq 600); do [ -s "$T/job2/checkpoints/search_0000.ckpt" ] && [ -s "$T/job2/checkpoints/search_0001.ckpt" ] && break; sleep 0.1; done
[ -s "$T/job2/checkpoints/search_0001.ckpt" ] || fail "job $JOB made no checkpoints"
scancel --signal=TERM "$JOB"
ok=0
for _ in $(seq 900); do
  st=$(scontrol show job "$JOB" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  restarts=$(scontrol show job "$JOB" 2>/dev/null | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
  if [ "$st" = COMPLETED ]; then ok=1; break; fi
  # a requeued job is held about two minutes before it may start again: release it once the
  # first attempt's step has let go of its PMIx socket (a restart within the same second finds it bound)
  if [ "$st" = PENDING ] && [ "${restarts:-0}" -ge 1 ] && [ -z "${released:-}" ]; then
    held=$(( ${held:-0} + 1 ))
    if ! compgen -G "$T/spool/stepd.slurm.pmix.$JOB.*" >/dev/null || [ "$held" -gt 50 ]; then
      sleep 1
      scontrol update JobId="$JOB" StartTime=now >/dev/null 2>&1 && released=1
    fi
  fi
  case "$st" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
  sleep 0.2
done
[ $ok = 1 ] || fail "job $JOB ended $st (restarts ${restarts:-?}), not COMPLETED after a requeue"
[ "${restarts:-0}" -ge 1 ] || fail "job $JOB was not requeued (Restarts=${restarts:-?})"
grep -q "steerclear: exit 3" "$T/log/job2.log" || fail "the first attempt did not exit 3 after SIGTERM"
grep -q "attempt 2" "$T/log/job2.log" || fail "no second attempt in the log"
grep -q "resuming at step" "$T/log/job2.log" || fail "the second attempt did not resume a checkpointed search"
compare "$T/longref" "$T/job2" || fail "stopped by scancel --signal=TERM and requeued: results differ"
echo "slurm: scancel --signal=TERM mid-search: exit 3, requeued, the same results ($SECONDS s)"
echo "slurm_cluster: ok"
