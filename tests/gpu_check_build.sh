#!/usr/bin/env bash
# gpu_check_build.sh — the GPU-check build (benchmarks/gpu/CMakeLists.txt: engine, CPU and CUDA
# backends, no HDF5/libcurl/PCRE2/utf8proc/OpenSSL) compiles with this project's stand-ins for
# cJSON and SGEMM forced on (-DSC_GPU_SHIMS=ON, warnings as errors), and its gpu_logits on the
# CPU backend (the stand-ins parse config.json and the safetensors header, the plain-loop SGEMM
# multiplies) and its gpu_grad (adapter loss and gradients) give the logits, the loss and the
# adapter gradients of the independent PyTorch reference tests/ref/qwen2_ref.py for a tiny
# random model. Skipped (77) without nvcc, under sanitizers, or without torch.
set -euo pipefail
[ -n "${SC_SANITIZE:-}" ] && { echo "gpu_check_build: skipped under sanitizers"; exit 77; }
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu_check_build: skipped: no nvcc"; exit 77; }
/usr/bin/python3 -c "import torch, numpy" 2>/dev/null || { echo "gpu_check_build: skipped: /usr/bin/python3 lacks torch or numpy"; exit 77; }
B="$SC_BUILD_DIR/gpu-check"
cmake -S "$SC_SOURCE_DIR/benchmarks/gpu" -B "$B" -DCMAKE_BUILD_TYPE=Release -DSC_GPU_SHIMS=ON -DSC_WERROR=ON >"$B.configure.log" 2>&1 \
  || { cat "$B.configure.log"; exit 1; }
grep -q "compiling shim/json_shim.c" "$B.configure.log" && grep -q "compiling shim/blas_shim.c" "$B.configure.log" \
  || { echo "gpu_check_build: the shims were not selected"; cat "$B.configure.log"; exit 1; }
cmake --build "$B" -j2 --target gpu_logits gpu_grad test_cuda_backend gpu_bench
if ldd "$B/gpu_logits" | grep -Eq "libcjson|libopenblas|libcublas"; then echo "gpu_check_build: gpu_logits links a library it must not"; ldd "$B/gpu_logits"; exit 1; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$SC_BIN" make-model --preset tiny --tokenizer "$SC_TOKENIZER" --out "$T/m" --seed 5 --dtype bf16 >/dev/null
IDS="3, 17, 1000, 42, 9, 151000, 5, 5, 77"
echo "[$IDS]" >"$T/ids.txt"
OMP_NUM_THREADS=2 "$B/gpu_logits" --model "$T/m" --ids "$T/ids.txt" --out "$T/got.npy" --device cpu
mkdir "$T/g"
OMP_NUM_THREADS=2 "$B/gpu_grad" --model "$T/m" --ids "$T/ids.txt" --out "$T/g" --device cpu --alpha 1.1 --beta 0.3
GEN=${IDS#*, }   # row t predicts ids[t+1]: the reference's prompt is the first id, the rest its generated tokens
printf '{"model": "%s", "tasks": [{"op": "logits", "name": "ref", "ids": [%s]}, {"op": "loss", "name": "loss", "batch": [{"prompt": [%s], "gen": [%s]}], "adapter": {"kind": "shared", "A": "%s", "B": "%s", "scaling": 2.0}, "alpha": 1.1, "beta": 0.3, "mode": "teacher-forced"}]}\n' \
  "$T/m" "$IDS" "${IDS%%,*}" "$GEN" "$T/g/A.npy" "$T/g/B.npy" >"$T/req.json"
/usr/bin/python3 "$SC_SOURCE_DIR/tests/ref/qwen2_ref.py" "$T/req.json" "$T" >/dev/null
/usr/bin/python3 - "$T" <<'PY'
import json
import sys
import numpy as np
T = sys.argv[1]
def rel(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / np.abs(b).max())
errs = {"logits": rel(np.load(f"{T}/got.npy"), np.load(f"{T}/ref.npy")),
        "dA": rel(np.load(f"{T}/g/dA.npy"), np.load(f"{T}/loss.dA.npy")),
        "dB": rel(np.load(f"{T}/g/dB.npy"), np.load(f"{T}/loss.dB.npy"))}
got, ref = json.load(open(f"{T}/g/loss.json")), json.load(open(f"{T}/loss.json"))
errs["loss"] = abs(got["loss"] - ref["loss"]) / abs(ref["loss"])
print("gpu_check_build: the GPU-check build (shims, CPU backend) vs qwen2_ref.py, relative errors:", json.dumps(errs))
# float32 engine against a float64 reference: logits 1e-5; gradients through 2 blocks and the
# normalised adapter 1e-4
sys.exit(0 if errs["logits"] < 1e-5 and errs["loss"] < 1e-5 and errs["dA"] < 1e-4 and errs["dB"] < 1e-4 else 1)
PY
