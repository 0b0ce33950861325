#!/usr/bin/env python3
"""hf_grad.py MODEL_DIR IDS_FILE OUT_DIR [OUT_DIR ...] -- the divergence loss of a shared
adapter and its gradients with Hugging Face transformers (Qwen2ForCausalLM, float64 on the GPU
when there is one), against gpu_grad's outputs (A.npy and B.npy are read from the first
OUT_DIR; each OUT_DIR's dA.npy, dB.npy and loss.json are compared). The adapter acts at the
output h of every decoder layer: h + s * u / (||u|| + 1e-8), u = h A B. Loss over rows
0..T-2 (row t predicts ids[t+1]): mean of alpha * (-KL(P || Q)) + beta * (-log Q(target)),
P the model without the adapter. Prints one JSON line per OUT_DIR; exit 1 when a relative
error exceeds its tolerance: 1e-3 for float32 engines on the CPU, 1e-1 for the GPU (BF16 GEMM
inputs; see tests/test_cuda_backend.c)."""
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def main():
    model_dir, ids_path, outs = sys.argv[1], sys.argv[2], sys.argv[3:]
    ids = [int(t) for t in open(ids_path).read().replace("[", " ").replace("]", " ").replace(",", " ").split()]
    meta = json.load(open(f"{outs[0]}/loss.json"))
    alpha, beta, s = meta["alpha"], meta["beta"], meta["scaling"]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float64)
    model = model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    A = torch.tensor(np.load(f"{outs[0]}/A.npy"), dtype=torch.float64, device=dev, requires_grad=True)
    B = torch.tensor(np.load(f"{outs[0]}/B.npy"), dtype=torch.float64, device=dev, requires_grad=True)
    active = [False]

    def hook(_mod, _inp, out):
        if not active[0]:
            return out
        h = out[0] if isinstance(out, tuple) else out
        u = h @ A @ B
        h2 = h + s * u / (u.norm(dim=-1, keepdim=True) + 1e-8)
        return (h2,) + tuple(out[1:]) if isinstance(out, tuple) else h2

    for layer in model.model.layers:
        layer.register_forward_hook(hook)
    x = torch.tensor([ids], device=dev)
    with torch.no_grad():
        lp = model(x).logits[0, :-1].log_softmax(-1)
    active[0] = True
    lq = model(x).logits[0, :-1].log_softmax(-1)
    tg = torch.tensor(ids[1:], device=dev)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    nll = -lq.gather(1, tg[:, None])[:, 0]
    loss = (alpha * -kl + beta * nll).mean()
    loss.backward()
    ref = {"dA": A.grad.cpu().numpy(), "dB": B.grad.cpu().numpy(), "loss": loss.item(), "kl": kl.mean().item(), "nll": nll.mean().item()}
    bad = 0
    for d in outs:
        got = json.load(open(f"{d}/loss.json"))
        tol = 1e-1 if got.get("device") == "cuda" else 1e-3
        res = {"dir": d, "device": got.get("device"), "tolerance": tol}
        for k in ("dA", "dB"):
            g = np.load(f"{d}/{k}.npy").astype(np.float64)
            res[k + "_rel_err"] = float(np.abs(g - ref[k]).max() / max(np.abs(ref[k]).max(), 1e-300))
        for k in ("loss", "kl", "nll"):
            res[k] = got[k]
            res[k + "_ref"] = ref[k]
            res[k + "_rel_err"] = abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-12)
        res["ok"] = all(res[k] <= tol for k in ("dA_rel_err", "dB_rel_err", "loss_rel_err"))
        bad += not res["ok"]
        print(json.dumps(res))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
