#!/bin/bash
# Self-checks of the PyTorch reference tests/ref/qwen2_ref.py on tiny random Qwen2 models
# (finite-difference gradients, incremental == teacher-forced, greedy generation, CLI).
# Skipped (exit 77) when Debian's python3 with torch and numpy is not available.
set -u
PY=/usr/bin/python3
SRC="${SC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
if ! "$PY" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "skipped: $PY with torch and numpy not found"
  exit 77
fi
exec "$PY" "$SRC/tests/ref/selftest.py"
