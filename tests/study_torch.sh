#!/usr/bin/env bash
# study_torch.sh — benchmarks/gpu/study_torch.py, the study's method in PyTorch (the GPU check's
# baseline), on the CPU with its own plain-torch Qwen2 (no transformers here) and a tiny random
# model (make-model --preset tiny):
#   1. a whole study step (--dump): the plain model's logits of a prompt equal those of the
#      independent reference tests/ref/qwen2_ref.py, and the step's loss and adapter gradients
#      (every token re-run through P and Q, backward per token) equal the reference's on the same
#      prompts and sampled tokens, in its "incremental" mode (the study's) and "teacher-forced"
#      (this project's); so the baseline computes the study's step, not just something as slow;
#   2. its JSON has the measured iterations at the asked prefixes and an extrapolation that is
#      their arithmetic (step = sum over the N prefixes + AdamW, search = 16 steps);
#   3. gpu_bench's "step" (this project's step: sampling with the KV cache, one teacher-forced
#      pass) on the CPU: its figures add up and its loss is that of a random model; and its
#      "step_lockstep" (2 searches sampled together): a search's share is half the sampling;
#   4. benchmarks/gpu/summary.py reads both JSONs and prints the ratio "one search, the study's
#      method / this project" computed from their fields.
# Skipped (77) under sanitizers or without torch in /usr/bin/python3.
set -euo pipefail
[ -n "${SC_SANITIZE:-}" ] && { echo "study_torch: skipped under sanitizers"; exit 77; }
PY=/usr/bin/python3
$PY -c "import torch, numpy" 2>/dev/null || { echo "study_torch: skipped: $PY lacks torch or numpy"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# untied head and 3 shards, as the 14B shape that transformers writes
"$SC_BIN" make-model --preset tiny --tokenizer "$SC_TOKENIZER" --out "$T/m" --seed 5 --dtype bf16 --untie-embeddings --shard-mb 12 >/dev/null
S="$SC_SOURCE_DIR/benchmarks/gpu"
$PY "$S/study_torch.py" --model "$T/m" --impl plain --device cpu --threads 2 --prompts 3 --prompt-tokens 7 --new-tokens 6 \
  --positions 0,2,5 --reps 1 --b-std 0.1 --dump "$T/d" --out "$T/study.json"
IDS=$($PY -c "import numpy as np; print(np.load('$T/d/prompts.npy')[0].tolist())")
BATCH=$($PY -c "import json, numpy as np; p, g = np.load('$T/d/prompts.npy'), np.load('$T/d/gen.npy'); print(json.dumps([{'prompt': a.tolist(), 'gen': b.tolist()} for a, b in zip(p, g)]))")
AD="\"adapter\": {\"kind\": \"shared\", \"A\": \"$T/d/A.npy\", \"B\": \"$T/d/B.npy\", \"scaling\": 2.0}, \"alpha\": 1.1, \"beta\": 0.3"
cat >"$T/req.json" <<EOF
{"model": "$T/m", "tasks": [{"op": "logits", "name": "logits", "ids": $IDS},
  {"op": "loss", "name": "inc", "batch": $BATCH, $AD, "mode": "incremental"},
  {"op": "loss", "name": "tf", "batch": $BATCH, $AD, "mode": "teacher-forced"}]}
EOF
$PY "$SC_SOURCE_DIR/tests/ref/qwen2_ref.py" "$T/req.json" "$T" >/dev/null
# this project's step on the CPU (benchmarks/gpu_bench, built with the project), same shape
OMP_NUM_THREADS=2 "$SC_BUILD_DIR/benchmarks/gpu_bench" --model "$T/m" --device cpu --prompt-tokens 8 --new-tokens 2 --batch 1 \
  --train-seqs 1 --reps 1 --step-prompts 3 --step-prompt-tokens 7 --step-new-tokens 6 --step-searches 2 >"$T/bench-tiny.json"
cp "$T/study.json" "$T/study-tiny.json"
$PY "$S/summary.py" "$T" >"$T/summary.txt"
cat "$T/summary.txt"
$PY - "$T" <<'PY'
import json
import sys
import numpy as np
T = sys.argv[1]
def rel(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / np.abs(b).max())
got = json.load(open(f"{T}/d/loss.json"))
errs = {"logits": rel(np.load(f"{T}/d/prompt_logits.npy"), np.load(f"{T}/logits.npy"))}
for mode in ("inc", "tf"):
    ref = json.load(open(f"{T}/{mode}.json"))
    errs[mode + ".loss"] = abs(got["loss"] - ref["loss"]) / abs(ref["loss"])
    errs[mode + ".kl"] = abs(got["kl"] - ref["kl"]) / max(abs(ref["kl"]), 1e-12)
    errs[mode + ".dA"] = rel(np.load(f"{T}/d/dA.npy"), np.load(f"{T}/{mode}.dA.npy"))
    errs[mode + ".dB"] = rel(np.load(f"{T}/d/dB.npy"), np.load(f"{T}/{mode}.dB.npy"))
print("study_torch: the study step (plain torch, float32) vs qwen2_ref.py (float64), relative errors:", json.dumps(errs))
bad = [k for k, v in errs.items() if not v < (1e-5 if k == "logits" else 1e-4)]
# the JSON: measured iterations at the asked prefixes, the extrapolation their arithmetic
s = json.load(open(f"{T}/study.json"))
it = s["measured"]["iterations"]
if [i["prefix_tokens"] for i in it] != [7, 9, 12] or not all(i["total"] > 0 and abs(i["p_forward"] + i["q_forward"] + i["sample_loss_backward"] - i["total"]) < 1e-5 for i in it):
    bad.append("measured iterations (prefixes 7, 9, 12; phases summing to the total)")
x, y = [i["prefix_tokens"] for i in it], [i["total"] for i in it]
want = float(np.interp(np.arange(7, 13), x, y).sum()) + s["measured"]["adamw_seconds"]
ex = s["extrapolated"]
if abs(ex["step_seconds"] - want) > 1e-3 * want + 1e-4 or abs(ex["search_seconds"] - 16 * ex["step_seconds"]) > 0.01 + 1e-3 * ex["search_seconds"]:
    bad.append(f"extrapolation {ex['step_seconds']} s/step, {ex['search_seconds']} s/search; expected {want:.4f} and 16x")
full = s["measured"]["full_step"]
if abs(full["loss"] - got["loss"]) > 1e-9 or not 0.1 < full["estimate_over_measured"] < 10:
    bad.append(f"full step {full}")
# the summary: study search (the measured full step x 16) / project search, from the two JSONs
b = json.load(open(f"{T}/bench-tiny.json"))
st = b["step"]
print("study_torch: gpu_bench step on the CPU:", json.dumps(st))
# the step's figures add up, its loss is alpha * -KL + beta * NLL of a random model (NLL about ln V)
if not (st["prompts"], st["prompt_tokens"], st["new_tokens"]) == (3, 7, 6) or abs(st["sampling_seconds"] + st["teacher_forced_seconds"] - st["seconds"]) > 1e-5 \
        or abs(st["search_seconds"] - 16 * st["seconds"]) > 2e-3 or not 0.2 * np.log(151936) < st["loss"] < 0.3 * np.log(151936) + 0.1:
    bad.append(f"gpu_bench step {st}")
lk = b["step_lockstep"]   # 2 searches sampled together: a search's step is half the sampling + its teacher-forced pass
if lk["searches_sampled_together"] != 2 or abs(lk["search_step_seconds"] - lk["sampling_seconds"] / 2 - lk["teacher_forced_seconds"]) > 2e-5 \
        or abs(lk["search_seconds"] - 16 * lk["search_step_seconds"]) > 2e-3:
    bad.append(f"gpu_bench step_lockstep {lk}")
ratio = full["seconds"] * 16 / st["search_seconds"]
ratio2 = full["seconds"] * 16 / lk["search_seconds"]
line2 = [l for l in open(f"{T}/summary.txt") if l.startswith("tiny/2 ")]
if not line2 or f"{ratio2:.1f}x" not in line2[0]:
    bad.append(f"summary.txt has no 'tiny/2' line with {ratio2:.1f}x: {line2}")
line = [l for l in open(f"{T}/summary.txt") if l.startswith("tiny ")]
if not line or f"{ratio:.1f}x" not in line[0]:
    bad.append(f"summary.txt has no 'tiny' line with {ratio:.1f}x: {line}")
# the defaults of both sides are the search's (src/search/config.c): 12 prompts a step, 192 a
# search, 128 new tokens, the loss and AdamW settings, the adapter's rank and scaling
import os, re
src = os.environ["SC_SOURCE_DIR"]
cfg = open(f"{src}/src/search/config.c").read()
d = {k: float(re.search(rf"c->{k} = ([0-9.]+)f?;", cfg).group(1))
     for k in ("batch_size", "prompts_per_search", "max_new_tokens", "alpha", "beta", "lr", "weight_decay", "scaling", "rank")}
py = open(f"{src}/benchmarks/gpu/study_torch.py").read()
arg = lambda n: float(re.search(rf'"--{n}", type=\w+, default=([0-9.]+)', py).group(1))
want = {"prompts": d["batch_size"], "new-tokens": d["max_new_tokens"], "steps-per-search": d["prompts_per_search"] / d["batch_size"],
        "alpha": d["alpha"], "beta": d["beta"], "lr": d["lr"], "weight-decay": d["weight_decay"], "scaling": d["scaling"], "rank": d["rank"]}
bad += [f"study_torch.py --{k} defaults to {arg(k)}, the search's is {v}" for k, v in want.items() if arg(k) != v]
gb = re.search(r"SB = (\d+), SP = (\d+), SN = (\d+), SPS = (\d+)", open(f"{src}/benchmarks/gpu/gpu_bench.c").read())
if not gb or (float(gb[1]), float(gb[3]), float(gb[4])) != (d["batch_size"], d["max_new_tokens"], d["prompts_per_search"] / d["batch_size"]) \
        or float(gb[2]) != arg("prompt-tokens"):
    bad.append("gpu_bench.c's step defaults (SB, SP, SN, SPS) differ from the search's or from study_torch.py's")
if bad:
    print("study_torch: FAILED:", bad)
    sys.exit(1)
PY
