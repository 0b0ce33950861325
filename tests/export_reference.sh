#!/usr/bin/env bash
# export_reference.sh — the direction exports read by readers we did not write:
#   GGUF control vector: @huggingface/gguf (npm, installed by scripts/setup.sh into .cache/gguf-js)
#   safetensors: Debian's /usr/bin/python3 (safetensors if importable, else json + numpy), values
#   checked bit-exactly against the raw input, and the tensors loaded into PyTorch.
# test_export --write DIR produces the files and the raw float32 input. Exit 77 (skipped) when
# neither node+package nor python3+numpy is available.
set -euo pipefail
SRC="${SC_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
BIN="${SC_TEST_EXPORT_BIN:-${SC_BUILD_DIR:-$SRC/build}/tests/test_export}"
PKG="$SRC/.cache/gguf-js/node_modules/@huggingface/gguf"
PY=/usr/bin/python3
L=5; C=7   # must match tests/test_export.c

if [ ! -x "$BIN" ]; then echo "export_reference: $BIN not built" >&2; exit 1; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$BIN" --write "$tmp"

ran=0
if command -v node >/dev/null && [ -f "$PKG/dist/index.mjs" ]; then
  node "$SRC/tests/export_reference.mjs" "$PKG" "$tmp/control_vector.gguf" "$tmp/expected.f32" "$L" "$C"
  ran=1
else
  echo "export_reference: node or $PKG missing (run scripts/setup.sh): GGUF check skipped"
fi

if [ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null; then
  "$PY" - "$tmp/directions.safetensors" "$tmp/expected.f32" "$L" "$C" <<'EOF'
import json, struct, sys
import numpy as np
path, exp_path, L, C = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
expected = np.fromfile(exp_path, dtype="<f4").reshape(L, C)
try:
    from safetensors import safe_open
    from safetensors.numpy import load_file
    tensors = load_file(path)
    with safe_open(path, "np") as f:
        meta = f.metadata()
    how = "safetensors"
except ImportError:
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info)
        b, e = info["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
    how = "json+numpy"
fail = []
want_names = [f"direction.{l}" for l in range(L)]
if sorted(tensors) != sorted(want_names):
    fail.append(f"names {sorted(tensors)}")
for l in range(L):
    t = tensors.get(f"direction.{l}")
    if t is None:
        continue
    if t.dtype != np.float32 or t.shape != (C,):
        fail.append(f"direction.{l}: {t.dtype} {t.shape}")
    elif t.tobytes() != expected[l].tobytes():
        fail.append(f"direction.{l}: {t} != {expected[l]}")
want_meta = {"steerclear.model": "Qwen/Qwen2.5-0.5B-Instruct", "steerclear.search": "3",
             "steerclear.mode": "per-block", "steerclear.num_blocks": str(L), "steerclear.hidden_size": str(C),
             "steerclear.linearity_score": "0.8712",
             "steerclear.scale_convention": "h_l += scale * direction.<l>; directions are stored unscaled (scale 1)"}
for k, v in want_meta.items():
    if meta.get(k) != v:
        fail.append(f"metadata {k} = {meta.get(k)!r}, want {v!r}")
if "hidden_states[l+1]" not in meta.get("steerclear.block_indexing", ""):
    fail.append("block_indexing")
try:
    import torch
    stack = torch.stack([torch.from_numpy(np.array(tensors[f"direction.{l}"])) for l in range(L)])
    if not torch.equal(stack, torch.from_numpy(expected.copy())):
        fail.append("torch stack differs")
    how += " + torch"
except ImportError:
    pass
if fail:
    print("export_reference (safetensors):", *fail, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"export_reference: safetensors ok via {how} ({len(tensors)} tensors, {len(meta)} metadata keys)")
EOF
  ran=1
else
  echo "export_reference: $PY with numpy missing: safetensors check skipped"
fi

if [ "$ran" = 0 ]; then exit 77; fi
