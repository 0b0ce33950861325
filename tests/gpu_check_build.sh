#!/usr/bin/env bash
# gpu_check_build.sh — the GPU-check build (benchmarks/gpu/CMakeLists.txt: engine, CPU and CUDA
# backends, no HDF5/libcurl/PCRE2/utf8proc/OpenSSL) compiles with this project's stand-ins for
# cJSON and SGEMM forced on (-DSC_GPU_SHIMS=ON, warnings as errors), and its gpu_logits on the
# CPU backend (the stand-ins parse config.json and the safetensors header, the plain-loop SGEMM
# multiplies) gives the logits of the independent PyTorch reference tests/ref/qwen2_ref.py for
# a tiny random model. Skipped (77) without nvcc, under sanitizers, or without torch.
set -euo pipefail
[ -n "${SC_SANITIZE:-}" ] && { echo "gpu_check_build: skipped under sanitizers"; exit 77; }
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu_check_build: skipped: no nvcc"; exit 77; }
/usr/bin/python3 -c "import torch, numpy" 2>/dev/null || { echo "gpu_check_build: skipped: /usr/bin/python3 lacks torch or numpy"; exit 77; }
B="$SC_BUILD_DIR/gpu-check"
cmake -S "$SC_SOURCE_DIR/benchmarks/gpu" -B "$B" -DCMAKE_BUILD_TYPE=Release -DSC_GPU_SHIMS=ON -DSC_WERROR=ON >"$B.configure.log" 2>&1 \
  || { cat "$B.configure.log"; exit 1; }
grep -q "compiling shim/json_shim.c" "$B.configure.log" && grep -q "compiling shim/blas_shim.c" "$B.configure.log" \
  || { echo "gpu_check_build: the shims were not selected"; cat "$B.configure.log"; exit 1; }
cmake --build "$B" -j2 --target gpu_logits test_cuda_backend gpu_bench
if ldd "$B/gpu_logits" | grep -Eq "libcjson|libopenblas|libcublas"; then echo "gpu_check_build: gpu_logits links a library it must not"; ldd "$B/gpu_logits"; exit 1; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$SC_BIN" make-model --preset tiny --tokenizer "$SC_TOKENIZER" --out "$T/m" --seed 5 --dtype bf16 >/dev/null
IDS="3, 17, 1000, 42, 9, 151000, 5, 5, 77"
echo "[$IDS]" >"$T/ids.txt"
OMP_NUM_THREADS=2 "$B/gpu_logits" --model "$T/m" --ids "$T/ids.txt" --out "$T/got.npy" --device cpu
printf '{"model": "%s", "tasks": [{"op": "logits", "name": "ref", "ids": [%s]}]}\n' "$T/m" "$IDS" >"$T/req.json"
/usr/bin/python3 "$SC_SOURCE_DIR/tests/ref/qwen2_ref.py" "$T/req.json" "$T" >/dev/null
/usr/bin/python3 - "$T/got.npy" "$T/ref.npy" <<'PY'
import sys
import numpy as np
got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.shape == ref.shape, (got.shape, ref.shape)
rel = float(np.abs(got - ref).max() / np.abs(ref).max())
print(f"gpu_check_build: gpu_logits (shims, CPU backend) vs qwen2_ref.py: relative error {rel:.3g} over {got.shape}")
sys.exit(0 if rel < 1e-5 else 1)   # float32 engine against a float64 reference
PY
