#!/usr/bin/env bash
# benchmarks/gpu/check.sh — the one-command GPU check (an H100/H200 machine with CUDA 13):
#   1. configure and build with -DSC_CUDA=ON (build-gpu/, ninja when present)
#   2. tests/test_cuda_backend: every op and a tiny model against the CPU backend
#   3. compute-sanitizer (memcheck) on the same test
#   4. a tiny random Qwen2 model (steerclear make-model): logits from --device cuda and cpu
#      against Hugging Face transformers' Qwen2ForCausalLM on the same weights (hf_compare.py)
#   5. bench_engine --device cuda (prefill, decode, training step) on the tiny model and on the
#      qwen2.5-0.5b-shape preset; the same on the CPU for the small one
# Everything goes to $OUT (default ./gpu-check-out): *.log, *.json, summary.txt. Each step has
# a time limit so the whole run stays under 8 minutes; a failed step is recorded and the next
# runs. Exit status: 0 when every step passed.
#
# What it needs: CUDA 13 (nvcc, cuBLASLt), cmake, a C compiler, and the libraries the program
# links today: cJSON, PCRE2, utf8proc, OpenBLAS, libcurl, OpenSSL's libcrypto, HDF5, OpenMP (the
# Debian packages in scripts/setup.sh). Without them step 1 stops and says which are missing; a
# build free of them is not written yet (README, "GPU").
# NOT RUN YET on a GPU: written and checked for syntax on a machine without one.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/gpu-check-out}"
BUILD="${SC_GPU_BUILD:-$ROOT/build-gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
fails=0
step() {   # step NAME SECONDS CMD... : run with a limit, log to $OUT/NAME.log, record the result
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local res=ok; [ $rc -eq 0 ] || { res="FAILED (exit $rc)"; fails=$((fails + 1)); }
  [ $rc -eq 77 ] && res="SKIPPED (exit 77)"
  printf '%-22s %-18s %4ss\n' "$name" "$res" "$dt" | tee -a "$SUMMARY"
  return $rc
}

{ date -u; nvidia-smi -L 2>&1; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nvcc --version 2>&1 | tail -2; } >"$OUT/machine.txt"

missing=""
for p in libcjson libpcre2-8 libutf8proc openblas libcurl libcrypto; do pkg-config --exists "$p" 2>/dev/null || missing="$missing $p"; done
command -v h5cc >/dev/null 2>&1 || [ -f /usr/include/hdf5/serial/hdf5.h ] || [ -f /usr/include/hdf5.h ] || missing="$missing hdf5"
if [ -n "$missing" ]; then
  echo "build: missing libraries:$missing (the program links them; README, \"GPU\", says what a build without them would take)" | tee -a "$SUMMARY"
  exit 2
fi

gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
step configure 120 cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSC_CUDA=ON || exit 1
step build 300 cmake --build "$BUILD" -j"$(nproc)" --target steerclear test_cuda_backend bench_engine || exit 1

export SC_SOURCE_DIR="$ROOT" SC_BUILD_DIR="$BUILD" SC_BIN="$BUILD/steerclear" OMP_WAIT_POLICY=passive
TOK="${SC_TOKENIZER:-$ROOT/.cache/tokenizer/tokenizer.json}"   # the device tool: carry .cache/tokenizer/tokenizer.json (11 MB)
step parity 180 "$BUILD/tests/test_cuda_backend"
if command -v compute-sanitizer >/dev/null 2>&1; then
  step sanitizer 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/tests/test_cuda_backend"
else
  echo "sanitizer              SKIPPED (compute-sanitizer not found)" | tee -a "$SUMMARY"
fi

if [ ! -f "$TOK" ]; then
  echo "models                 SKIPPED (no tokenizer.json at $TOK: set SC_TOKENIZER or carry .cache/tokenizer/tokenizer.json)" | tee -a "$SUMMARY"
  echo "failed steps: $fails" | tee -a "$SUMMARY"
  [ "$fails" = 0 ]; exit
fi
# a tiny random model, written by our own writer, read by both engines
TINY="$OUT/tiny-model"
MK=("$BUILD/steerclear" make-model --preset tiny --out "$TINY" --seed 7 --dtype f32 --tokenizer "$TOK")
if step make-tiny 60 "${MK[@]}"; then
  TEXT="The quick brown fox jumps over the lazy dog, and then it counts: 1 2 3 4 5."
  "$BUILD/steerclear" tokenize --model "$TINY" --text "$TEXT" >"$OUT/tiny-ids.json" 2>"$OUT/tokenize.log"
  step logits-cuda 60 "$BUILD/steerclear" logits --model "$TINY" --text "$TEXT" --out "$OUT/logits-cuda.npy" --device cuda
  step logits-cpu 60 "$BUILD/steerclear" logits --model "$TINY" --text "$TEXT" --out "$OUT/logits-cpu.npy" --device cpu
  step hf-compare 180 "$PY" "$ROOT/benchmarks/gpu/hf_compare.py" "$TINY" "$OUT/tiny-ids.json" "$OUT/logits-cuda.npy" "$OUT/logits-cpu.npy"
  step bench-tiny-cuda 60 sh -c "'$BUILD/benchmarks/bench_engine' --model '$TINY' --device cuda --reps 3 >'$OUT/bench-tiny-cuda.json'"
fi

SMALL="$OUT/qwen2.5-0.5b-shape"
MK=("$BUILD/steerclear" make-model --preset qwen2.5-0.5b-shape --out "$SMALL" --seed 7 --tokenizer "$TOK")
if step make-0.5b 120 "${MK[@]}"; then
  step bench-0.5b-cuda 150 sh -c "'$BUILD/benchmarks/bench_engine' --model '$SMALL' --device cuda --prompt-tokens 512 --new-tokens 64 --reps 3 >'$OUT/bench-0.5b-cuda.json'"
  step bench-0.5b-cpu 150 sh -c "OMP_NUM_THREADS=$(nproc) '$BUILD/benchmarks/bench_engine' --model '$SMALL' --device cpu --what prefill,decode --prompt-tokens 128 --new-tokens 16 --reps 1 >'$OUT/bench-0.5b-cpu.json'"
fi
echo "failed steps: $fails" | tee -a "$SUMMARY"
[ "$fails" = 0 ]
