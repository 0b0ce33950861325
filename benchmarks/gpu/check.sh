#!/usr/bin/env bash
# benchmarks/gpu/check.sh — the one-command GPU check, for a machine with an H100/H200, CUDA 13
# (nvcc, cuBLASLt), cmake, a C compiler with OpenMP, and Python with torch + transformers; it
# does NOT need the libraries the full program links (HDF5, cJSON, OpenBLAS, libcurl, PCRE2,
# utf8proc, OpenSSL, MPI): it builds benchmarks/gpu/CMakeLists.txt (engine + CPU and CUDA
# backends + tests/test_cuda_backend.c + gpu_logits + gpu_grad + gpu_bench; this project's own stand-ins
# for cJSON and SGEMM where those are missing).
#   1. configure + build (build-gpu/, ninja when present)
#   2. parity: tests/test_cuda_backend, every op and a tiny model against the CPU backend
#   3. compute-sanitizer memcheck on the same test
#   4. a tiny random Qwen2ForCausalLM written by transformers (make_hf_model.py): logits from
#      gpu_logits --device cuda and --device cpu against transformers' own (hf_compare.py), and
#      a shared adapter's divergence loss and gradients from gpu_grad against transformers with
#      the adapter as forward hooks, in float64 (hf_grad.py)
#   5. gpu_bench (prefill, decode, training pass, one search step alone and in lock-step with 19
#      other searches) on the tiny model, the
#      qwen2.5-0.5b shape and the qwen2.5-14b shape (random BF16 weights written by transformers
#      on the GPU)
#   6. the study's method in PyTorch on the same models and GPU (14b right after its gpu_bench,
#      tiny and 0.5b after the 14b, each limited to what is left of the 8 minutes)
#      (study_torch.py: every new token re-runs the whole prefix through both models, adapter as
#      forward hooks; transformers' Qwen2ForCausalLM, the plain-torch model of the script if that
#      fails): the whole step measured on tiny and 0.5b, a reduced step (5 prefix lengths)
#      extrapolated on 14b while time allows; on tiny also the script's plain model against
#      transformers (--compare-impls); then summary.py: "one search, the study's method / this
#      project" per shape, appended to summary.txt
# Results in $OUT (default ./gpu-check-out): summary.txt, machine.txt, *.log, bench-*.json,
# study-*.json.
# Every step has a time limit (the whole run stays under about 8 minutes); a failed step is
# recorded and the next one runs. Exit status 0 when every step passed.
# Usage: OUT=/some/dir bash benchmarks/gpu/check.sh        (SC_GPU_SKIP_14B=1 leaves out the 14B)
# NOT YET RUN ON A GPU: it was written on a machine without one (README, "GPU").
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/gpu-check-out}"
BUILD="${SC_GPU_BUILD:-$ROOT/build-gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
fails=0
START=$(date +%s)
step() {   # step NAME SECONDS CMD... : run with a time limit, log to $OUT/NAME.log, record the result
  local name=$1 limit=$2; shift 2
  local t0 rc dt res
  t0=$(date +%s)
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  res=ok
  if [ $rc -eq 77 ]; then res="SKIPPED (exit 77)"; elif [ $rc -ne 0 ]; then res="FAILED (exit $rc)"; fails=$((fails + 1)); fi
  [ $rc -eq 124 ] && res="FAILED (time limit ${limit}s)"
  printf '%-18s %-26s %4ss\n' "$name" "$res" "$dt" | tee -a "$SUMMARY"
  return $rc
}

{ date -u; nvidia-smi -L 2>&1; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -2; "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" 2>&1
  git -C "$ROOT" log -1 --oneline 2>&1; } >"$OUT/machine.txt"

timed() {   # timed NAME MIN MAX FN ARGS...: FN's time limit (its 2nd argument) lowered to what is left of
  # the check's 8 minutes (470 s), at most MAX; skipped when under MIN seconds are left
  local name=$1 min=$2 max=$3 fn=$4 left; shift 4
  left=$(( 470 - ($(date +%s) - START) ))
  [ "$left" -gt "$max" ] && left=$max
  if [ "$left" -lt "$min" ]; then
    printf '%-18s %-26s\n' "$name" "SKIPPED (8 minutes spent)" | tee -a "$SUMMARY"; return 0
  fi
  "$fn" "$1" "$left" "${@:3}"   # study SHAPE SECONDS DIR ... | step NAME SECONDS CMD ...
}
STUDY_IMPL=auto   # transformers when it loads; after a failure, study_torch.py's plain model
study() {   # study SHAPE SECONDS MODEL_DIR [ARGS...]: the study's method on MODEL_DIR -> $OUT/study-SHAPE.json
  local shape=$1 limit=$2 dir=$3; shift 3
  step "study-$shape" "$limit" "$PY" "$ROOT/benchmarks/gpu/study_torch.py" --model "$dir" --impl "$STUDY_IMPL" --out "$OUT/study-$shape.json" "$@"
  local rc=$?
  [ $rc -eq 0 ] && return 0
  [ "$STUDY_IMPL" = plain ] || [ $rc -eq 124 ] && return $rc   # a time limit is not the impl's fault
  STUDY_IMPL=plain
  step "study-$shape-plain" "$limit" "$PY" "$ROOT/benchmarks/gpu/study_torch.py" --model "$dir" --impl plain --out "$OUT/study-$shape.json" "$@"
}
# cuDNN (attention through its fused flash attention, src/backend/cuda/sdpa.c): the toolkit's, or
# the nvidia-cudnn wheel's (its headers for the build, its libcudnn.so.9 at run time: dlopen)
CUDNN_ARGS=()
# (the folder of libcudnn.so.9 inside the nvidia namespace package: nvidia/cudnn/lib or nvidia/cu13/lib)
CUDNN_PY='import glob, os, nvidia
hits = [h for b in nvidia.__path__ for h in sorted(glob.glob(os.path.join(b, "**", "libcudnn.so.9"), recursive=True))]
print(os.path.dirname(hits[0]) if hits else "")'
CUDNN_LIB=$("$PY" -c "$CUDNN_PY" 2>/dev/null || true)
if [ -n "$CUDNN_LIB" ]; then
  export LD_LIBRARY_PATH="$CUDNN_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ ! -f /usr/local/cuda/include/cudnn_graph.h ] && [ -f "$CUDNN_LIB/../include/cudnn_graph.h" ]; then
    CUDNN_ARGS=(-DSC_CUDNN_INCLUDE="$(cd "$CUDNN_LIB/../include" && pwd)")
  fi
fi
echo "cuDNN: library folder ${CUDNN_LIB:-none found in the nvidia wheels, the system default}; headers ${CUDNN_ARGS[*]:-of the CUDA toolkit}" >>"$OUT/machine.txt"

gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
step configure 120 cmake -S "$ROOT/benchmarks/gpu" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "${CUDNN_ARGS[@]}" || exit 1
step build 240 cmake --build "$BUILD" -j"$(nproc)" || exit 1

export SC_SOURCE_DIR="$ROOT" SC_BUILD_DIR="$BUILD" OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}" OMP_WAIT_POLICY=passive
step parity 180 "$BUILD/test_cuda_backend"
grep -h "attention" "$OUT/parity.log" | grep -E "through|NOT TESTED|cuDNN" >"$OUT/attention-paths.txt" || true   # which attention path ran
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$SAN" ]; then
  step sanitizer 200 env SC_CUDA_TEST_QUICK=1 "$SAN" --tool memcheck --error-exitcode 9 "$BUILD/test_cuda_backend"
else
  echo "sanitizer          SKIPPED (compute-sanitizer not found)" | tee -a "$SUMMARY"
fi

TINY="$OUT/hf-tiny"
if step make-tiny 120 "$PY" "$ROOT/benchmarks/gpu/make_hf_model.py" tiny "$TINY"; then
  step logits-cuda 60 "$BUILD/gpu_logits" --model "$TINY" --ids "$TINY/ids.txt" --out "$OUT/logits-cuda.npy" --device cuda
  step logits-cpu 60 "$BUILD/gpu_logits" --model "$TINY" --ids "$TINY/ids.txt" --out "$OUT/logits-cpu.npy" --device cpu
  step hf-compare 120 "$PY" "$ROOT/benchmarks/gpu/hf_compare.py" "$TINY" "$TINY/ids.txt" "$OUT/logits-cuda.npy" "$OUT/logits-cpu.npy"
  mkdir -p "$OUT/grad-cuda" "$OUT/grad-cpu"
  step grad-cuda 60 "$BUILD/gpu_grad" --model "$TINY" --ids "$TINY/ids.txt" --out "$OUT/grad-cuda" --device cuda
  step grad-cpu 60 "$BUILD/gpu_grad" --model "$TINY" --ids "$TINY/ids.txt" --out "$OUT/grad-cpu" --device cpu
  step hf-grad 120 "$PY" "$ROOT/benchmarks/gpu/hf_grad.py" "$TINY" "$TINY/ids.txt" "$OUT/grad-cuda" "$OUT/grad-cpu"
  step bench-tiny 60 sh -c "'$BUILD/gpu_bench' --model '$TINY' --prompt-tokens 128 --new-tokens 32 >'$OUT/bench-tiny.json'"
fi

SMALL="$OUT/hf-0.5b"
if step make-0.5b 120 "$PY" "$ROOT/benchmarks/gpu/make_hf_model.py" qwen2.5-0.5b-shape "$SMALL"; then
  step bench-0.5b 120 sh -c "'$BUILD/gpu_bench' --model '$SMALL' --prompt-tokens 512 --new-tokens 64 --batch 8 --train-seqs 8 >'$OUT/bench-0.5b.json'"
fi

if [ "${SC_GPU_SKIP_14B:-0}" != 1 ] && [ $(( $(date +%s) - START )) -lt 300 ]; then
  BIG="$OUT/hf-14b"
  if step make-14b 150 "$PY" "$ROOT/benchmarks/gpu/make_hf_model.py" qwen2.5-14b-shape "$BIG"; then
    step bench-14b 150 sh -c "'$BUILD/gpu_bench' --model '$BIG' --prompt-tokens 512 --new-tokens 32 --batch 8 --train-seqs 4 --reps 2 >'$OUT/bench-14b.json'"
    timed study-14b 60 180 study 14b 180 "$BIG"
  fi
  rm -rf "$BIG"   # 29 GB: never left in $OUT
else
  echo "bench-14b          SKIPPED (SC_GPU_SKIP_14B=1, or over 5 minutes already)" | tee -a "$SUMMARY"
fi
# the study's method on the small shapes after the 14B, so that they never crowd it out
[ -f "$TINY/config.json" ] && timed study-impls 20 60 step study-impls 60 "$PY" "$ROOT/benchmarks/gpu/study_torch.py" --model "$TINY" --compare-impls
[ -f "$TINY/config.json" ] && timed study-tiny 20 90 study tiny 90 "$TINY" --full-step
[ -f "$SMALL/config.json" ] && timed study-0.5b 30 120 study 0.5b 120 "$SMALL" --full-step
# decode of the 0.5B shape op by op against decode steps in CUDA graphs (SC_CUDA_GRAPHS=1), batch 1
# and 8, the sides alternated (about a minute)
if [ -d "$SMALL" ] && [ $(( $(date +%s) - START )) -lt 380 ]; then
  for g in 0 1 1 0; do for b in 1 8; do
    step "graphs-b$b-g$g" 40 sh -c "SC_CUDA_GRAPHS=$g '$BUILD/gpu_bench' --model '$SMALL' --prompt-tokens 512 --new-tokens 64 --batch $b --train-seqs 1 --step-prompts 0 --step-searches 1 --reps 3 >>'$OUT/graphs-b$b-g$g.jsonl'"
  done; done
  "$PY" "$ROOT/benchmarks/gpu/graphs_compare.py" "$OUT" | tee -a "$SUMMARY"
else
  echo "graphs-0.5b        SKIPPED (no 0.5B model, or over 380 s already)" | tee -a "$SUMMARY"
fi
# the 0.5B shape again with the own attention kernels (SC_CUDA_SDPA=0): what cuDNN's attention gains
if [ -d "$SMALL" ] && [ $(( $(date +%s) - START )) -lt 400 ]; then
  step bench-0.5b-own 90 sh -c "SC_CUDA_SDPA=0 '$BUILD/gpu_bench' --model '$SMALL' --prompt-tokens 512 --new-tokens 64 --batch 8 --train-seqs 8 >'$OUT/own-attention-0.5b.json'"
else
  echo "bench-0.5b-own     SKIPPED (no 0.5B model, or over 400 s already)" | tee -a "$SUMMARY"
fi
rm -rf "$SMALL"
step ratio 30 "$PY" "$ROOT/benchmarks/gpu/summary.py" "$OUT" && cat "$OUT/ratio.log" >>"$SUMMARY"
echo "failed steps: $fails; $(( $(date +%s) - START ))s in all" | tee -a "$SUMMARY"
[ "$fails" = 0 ]
