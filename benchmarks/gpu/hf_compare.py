#!/usr/bin/env python3
"""hf_compare.py MODEL_DIR IDS_FILE LOGITS_NPY [LOGITS_NPY ...] -- compare steerclear's logits
(written by gpu_logits --device cpu|cuda, or `steerclear logits`) of a model directory with
Hugging Face transformers' Qwen2ForCausalLM / Qwen3ForCausalLM on the same weights, in float32
on the GPU when there is one. IDS_FILE: the token ids, separated by spaces or commas (a JSON
array works). Prints one JSON line
per logits file with the relative error (max |a-b| / max |b|) and the argmax agreement; exits 1
when an error exceeds the tolerance (5e-2: the GPU's BF16 GEMM inputs)."""
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

TOL = 5e-2


def main():
    model_dir, ids_path, outs = sys.argv[1], sys.argv[2], sys.argv[3:]
    ids = [int(t) for t in open(ids_path).read().replace("[", " ").replace("]", " ").replace(",", " ").split()]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    try:   # transformers 5 names it dtype; 4.x torch_dtype
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model = model.to(dev).eval()
    with torch.no_grad():
        ref = model(torch.tensor([ids], device=dev)).logits[0].float().cpu().numpy()
    bad = 0
    for path in outs:
        got = np.load(path)
        if got.shape != ref.shape:
            print(json.dumps({"file": path, "error": f"shape {got.shape} != transformers' {ref.shape}"}))
            bad += 1
            continue
        rel = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
        agree = float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1)))
        ok = rel <= TOL
        bad += not ok
        print(json.dumps({"file": path, "tokens": len(ids), "rel_err": rel, "argmax_agreement": agree, "ok": ok,
                          "transformers": __import__("transformers").__version__, "torch": torch.__version__, "device": dev}))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
