#!/usr/bin/env python3
"""study_torch.py -- the study's method in PyTorch: the baseline that the GPU check compares this
project's search with (issue 13, item 6).

One optimizer step of the study's divergence search, as the study ran it:
  B prompts (--prompts, 12) of --prompt-tokens (70) random ids; then for each of N new tokens
  (--new-tokens, 128) the WHOLE sequence so far (prompt + tokens sampled so far; no KV cache) is
  run through the base model P (no gradients) and through the adapted model Q (the shared rank-r
  adapter h + s*u/(||u||+1e-8), u = h A B, as a forward hook on the output of every decoder
  layer); the next token is sampled from Q's last position (temperature --temperature, 1); the
  loss of that position, alpha * (-KL(P||Q)) + beta * NLL(Q, sampled token), averaged over the B
  prompts and divided by N, is back-propagated to A and B at once (gradients accumulate, so one
  graph is alive at a time; the arithmetic is that of one backward at the end); after the N tokens
  one AdamW step (lr 0.1, weight decay 0.01: the project's defaults). Every sequence samples all N
  tokens (no stop token: the worst case, as gpu_bench's step). The baseline is given one saving the
  study's code may not have had: only the last position's logits are computed
  (transformers' logits_to_keep=1), so the ratio to this project is a lower bound.

The model: a Hugging Face directory (config.json, *.safetensors). transformers' Qwen2ForCausalLM
when transformers is importable (--impl auto|hf), else (or with --impl plain) a compact Qwen2 in
plain torch written here (RMSNorm, RoPE, GQA attention with q/k/v biases, SwiGLU, tied or untied
head; it reads the safetensors files itself). BF16 weights on cuda, FP32 on the CPU (--dtype).

What is timed (a full step on the 14B shape takes minutes, so by default a reduced step):
  - one token iteration (P forward, Q forward, sampling, loss, backward) at each prefix length
    Lp + j for j in --positions (default 0, N/4, N/2, 3N/4, N-1), best of --reps after a warm-up,
    with the time of each phase; the prefix is random ids (the cost does not depend on them);
  - the AdamW step;
  - with --full-step also the whole step (N iterations), measured, and its ratio to the estimate.
Extrapolated (arithmetic on the measured figures, written apart from them): a step = the sum over
j = 0..N-1 of the iteration time at prefix Lp + j, piecewise linear between the measured
positions (a quadratic least-squares fit is given too: attention grows with the square of the
prefix), plus the AdamW step; a search = --steps-per-search (192 prompts / 12 = 16) steps; the
study = --searches (20) searches.

    python3 study_torch.py --model DIR [--device auto|cuda|cpu] [--impl auto|hf|plain]
        [--prompts 12] [--prompt-tokens 70] [--new-tokens 128] [--positions 0,32,64,96,127]
        [--reps 2] [--full-step] [--out study.json] [--dump DIR] [--seed 1]
    python3 study_torch.py --model DIR --compare-impls     (transformers vs the plain model)

--dump DIR (implies --full-step) writes the step's inputs and results before the AdamW update:
prompts.npy [B, Lp], gen.npy [B, N], A.npy, B.npy (the adapter the step started from), dA.npy,
dB.npy (the accumulated gradient), loss.json {loss, kl, nll} and prompt_logits.npy (the base
model's logits of the first prompt, [Lp, V]): tests/study_torch.sh checks them against
tests/ref/qwen2_ref.py (the logits; the study's incremental and the teacher-forced loss and
gradients on the same tokens).
--compare-impls loads the model both ways in float32 and prints the largest relative differences
of the logits and of one study step's gradients (exit 1 above 1e-4): the plain model checked
against transformers itself, where transformers is installed (the GPU machine; exit 77 elsewhere).
"""

import argparse
import glob
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True


# --- safetensors, read with numpy (no safetensors package needed) -------------------------------

_NP = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(model_dir):
    """{name: torch tensor (CPU, the file's dtype; BF16 as bfloat16)} from every *.safetensors."""
    files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
    if not files:
        raise SystemExit(f"study_torch: {model_dir}: no *.safetensors files; give a Hugging Face model directory")
    out = {}
    for path in files:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            dt = meta["dtype"]
            if dt not in _NP:
                raise SystemExit(f"study_torch: {path}: tensor {name}: dtype {dt} is not supported (F32, F16, BF16, F64)")
            a, b = meta["data_offsets"]
            arr = np.frombuffer(data[a:b], dtype=_NP[dt]).reshape(meta["shape"]).copy()
            t = torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16) if dt == "BF16" else torch.from_numpy(arr)
            out[name[len("model."):] if name.startswith("model.") else name] = t
    return out


# --- a compact Qwen2 in plain torch -------------------------------------------------------------

class RMSNorm(torch.nn.Module):
    def __init__(self, w, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(w, requires_grad=False)
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


class Block(torch.nn.Module):
    def __init__(self, W, i, cfg, dtype):
        super().__init__()
        p = f"layers.{i}."

        def par(name, required=True):
            t = W.get(p + name)
            if t is None:
                if required:
                    raise SystemExit(f"study_torch: tensor model.{p}{name} is missing from the safetensors files")
                return None
            return torch.nn.Parameter(t.to(dtype), requires_grad=False)

        self.ln1 = RMSNorm(par("input_layernorm.weight").data, cfg["eps"])
        self.ln2 = RMSNorm(par("post_attention_layernorm.weight").data, cfg["eps"])
        self.wq, self.bq = par("self_attn.q_proj.weight"), par("self_attn.q_proj.bias", False)
        self.wk, self.bk = par("self_attn.k_proj.weight"), par("self_attn.k_proj.bias", False)
        self.wv, self.bv = par("self_attn.v_proj.weight"), par("self_attn.v_proj.bias", False)
        self.wo = par("self_attn.o_proj.weight")
        self.wg, self.wu, self.wd = par("mlp.gate_proj.weight"), par("mlp.up_proj.weight"), par("mlp.down_proj.weight")
        self.NH, self.KVH, self.HD = cfg["NH"], cfg["KVH"], cfg["HD"]

    def forward(self, h, cos, sin):
        Bn, T, _ = h.shape
        x = self.ln1(h)
        q = F.linear(x, self.wq, self.bq).view(Bn, T, self.NH, self.HD).transpose(1, 2)
        k = F.linear(x, self.wk, self.bk).view(Bn, T, self.KVH, self.HD).transpose(1, 2)
        v = F.linear(x, self.wv, self.bv).view(Bn, T, self.KVH, self.HD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = self.NH // self.KVH
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)   # kv head j serves q heads j*g..j*g+g-1
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:   # torch 1.x
            s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(self.HD)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1), float("-inf"))
            a = (s.softmax(-1) @ v.float()).to(h.dtype)
        h = h + F.linear(a.transpose(1, 2).reshape(Bn, T, self.NH * self.HD), self.wo)
        x = self.ln2(h)
        return h + F.linear(F.silu(F.linear(x, self.wg)) * F.linear(x, self.wu), self.wd)


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin


class _Inner(torch.nn.Module):   # .layers, as transformers' model.model.layers, for the hooks
    def __init__(self, blocks):
        super().__init__()
        self.layers = torch.nn.ModuleList(blocks)


class PlainQwen2(torch.nn.Module):
    def __init__(self, model_dir, dtype, device):
        super().__init__()
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        if c.get("rope_scaling"):
            raise SystemExit(f"study_torch: {model_dir}/config.json asks for rope scaling, which the plain model lacks: use --impl hf")
        NH, C = c["num_attention_heads"], c["hidden_size"]
        theta = c.get("rope_theta") or (c.get("rope_parameters") or {}).get("rope_theta", 10000.0)
        cfg = {"NH": NH, "KVH": c.get("num_key_value_heads", NH), "HD": c.get("head_dim") or C // NH, "eps": c.get("rms_norm_eps", 1e-6)}
        W = read_safetensors(model_dir)
        self.embed = W["embed_tokens.weight"].to(device=device, dtype=dtype)
        self.model = _Inner([Block(W, i, cfg, dtype) for i in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(W["norm.weight"].to(dtype), cfg["eps"])
        head = W.get("lm_head.weight")
        self.head = self.embed if head is None or c.get("tie_word_embeddings") else head.to(device=device, dtype=dtype)
        del W
        self.to(device)
        HD = cfg["HD"]
        self.inv_freq = (float(theta) ** (-torch.arange(0, HD // 2, dtype=torch.float64) * 2.0 / HD)).to(device)
        self.dtype = dtype

    def forward(self, ids, last_only=True):
        T = ids.shape[1]
        ang = torch.arange(T, dtype=torch.float64, device=ids.device)[:, None] * self.inv_freq[None, :]
        ang = torch.cat((ang, ang), -1)
        cos, sin = ang.cos().to(self.dtype), ang.sin().to(self.dtype)
        h = F.embedding(ids, self.embed)
        for blk in self.model.layers:
            h = blk(h, cos, sin)
        if last_only:
            h = h[:, -1:]
        return F.linear(self.norm(h), self.head)   # [B, T or 1, V]


# --- loading --------------------------------------------------------------------------------------

def load_model(model_dir, impl, dtype, device):
    """(model, name, logits(ids, last_only) -> [B, T or 1, V])"""
    if impl in ("auto", "hf"):
        try:
            import transformers  # noqa: F401
            from transformers import Qwen2ForCausalLM
        except ImportError:
            if impl == "hf":
                raise SystemExit("study_torch: --impl hf: transformers is not importable here; use --impl plain")
        else:
            m = None
            for kw in ({"dtype": dtype, "device_map": str(device)}, {"dtype": dtype}, {"torch_dtype": dtype}):
                try:   # straight onto the device where this version can (no host copy of 29 GB); 4.x: torch_dtype
                    m = Qwen2ForCausalLM.from_pretrained(model_dir, **kw)
                    break
                except (TypeError, ValueError, ImportError) as e:
                    print(f"study_torch: from_pretrained({', '.join(kw)}) failed ({type(e).__name__}: {e}); trying the next way",
                          file=sys.stderr)
            if m is None:
                raise SystemExit(f"study_torch: {model_dir}: transformers could not load the model (see above); try --impl plain")
            m = m.to(device).eval()
            for p in m.parameters():
                p.requires_grad_(False)
            keep = [True]

            def logits(ids, last_only=True):
                if last_only and keep[0]:
                    try:
                        return m(input_ids=ids, use_cache=False, logits_to_keep=1).logits
                    except TypeError:   # no logits_to_keep in this version: every position
                        keep[0] = False
                out = m(input_ids=ids, use_cache=False).logits
                return out[:, -1:] if last_only else out
            return m, f"transformers {transformers.__version__} Qwen2ForCausalLM", logits
    m = PlainQwen2(model_dir, dtype, device).eval()
    return m, "plain torch Qwen2 (study_torch.py)", lambda ids, last_only=True: m(ids, last_only)


class HookAdapter:
    """The study's shared adapter as forward hooks on every decoder layer's output."""

    def __init__(self, model, C, rank, scaling, device, seed, b_std=0.0):
        g = torch.Generator().manual_seed(seed)
        self.A = torch.randn(C, rank, generator=g, dtype=torch.float32).to(device).requires_grad_(True)
        self.B = (b_std * torch.randn(rank, C, generator=g, dtype=torch.float32)).to(device).requires_grad_(True)
        self.s = scaling
        self.active = False
        self.handles = [layer.register_forward_hook(self.hook) for layer in model.model.layers]

    def hook(self, _mod, _inp, out):
        if not self.active:
            return out
        h = out[0] if isinstance(out, tuple) else out
        hf = h.float()
        u = hf @ self.A @ self.B
        h2 = (hf + self.s * u / (u.norm(dim=-1, keepdim=True) + 1e-8)).to(h.dtype)
        return (h2,) + tuple(out[1:]) if isinstance(out, tuple) else h2

    def remove(self):
        for hd in self.handles:
            hd.remove()


class Study:
    def __init__(self, logits_fn, adapter, a, device):
        self.f, self.ad, self.a, self.dev = logits_fn, adapter, a, device
        self.gen = torch.Generator(device=device).manual_seed(a.seed)
        self.opt = torch.optim.AdamW([adapter.A, adapter.B], lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)

    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def iteration(self, ids, N, phases=None):
        """One token of the study: the whole prefix through P and Q, sample, loss, backward.
        Returns (next token ids [B], kl sum, nll sum) and fills phases with seconds."""
        a = self.a
        t0 = time.perf_counter()
        self.ad.active = False
        with torch.no_grad():
            lp = self.f(ids)[:, -1].float().log_softmax(-1)
        if phases is not None:
            self.sync(); t1 = time.perf_counter()
        self.ad.active = True
        lq = self.f(ids)[:, -1].float().log_softmax(-1)
        self.ad.active = False
        if phases is not None:
            self.sync(); t2 = time.perf_counter()
        with torch.no_grad():
            nxt = torch.multinomial((lq / a.temperature).softmax(-1), 1, generator=self.gen)[:, 0]
        kl = (lp.exp() * (lp - lq)).sum(-1)
        nll = -lq.gather(1, nxt[:, None])[:, 0]
        loss = (a.alpha * -kl + a.beta * nll).mean() / N
        loss.backward()
        if phases is not None:
            self.sync(); t3 = time.perf_counter()
            phases.update(p_forward=t1 - t0, q_forward=t2 - t1, sample_loss_backward=t3 - t2, total=t3 - t0)
        return nxt, kl.detach().sum().item(), nll.detach().sum().item()

    def full_step(self, prompts, N):
        """The study's whole step; returns (gen [B, N], loss, kl, nll) with the gradient in A.grad, B.grad."""
        ids, gen, kls, nlls = prompts, [], 0.0, 0.0
        for _ in range(N):
            nxt, kl, nll = self.iteration(ids, N)
            kls += kl; nlls += nll
            gen.append(nxt)
            ids = torch.cat((ids, nxt[:, None]), 1)
        n = prompts.shape[0] * N
        return torch.stack(gen, 1), self.a.alpha * -kls / n + self.a.beta * nlls / n, kls / n, nlls / n


def piecewise_sum(xs, ys, lo, hi):
    """sum over integer n in [lo, hi] of the piecewise-linear interpolation through (xs, ys),
    constant beyond the ends."""
    return float(sum(np.interp(np.arange(lo, hi + 1), xs, ys)))


def quad_fit(xs, ys):
    deg = min(2, len(xs) - 1)
    return [float(c) for c in np.polyfit(np.asarray(xs, float), np.asarray(ys, float), deg)[::-1]]   # c0, c1, c2


def compare_impls(a, device):
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("study_torch: --compare-impls skipped: transformers is not importable here", file=sys.stderr)
        return 77
    dt = torch.float32
    ids = torch.randint(0, 1000, (2, 11), generator=torch.Generator().manual_seed(3)).to(device)
    res, grads, gen = {}, {}, {}
    for impl in ("hf", "plain"):
        m, name, f = load_model(a.model, impl, dt, device)
        with torch.no_grad():
            res[impl] = f(ids, last_only=False).float()
        ad = HookAdapter(m, m_hidden(a.model), a.rank, a.scaling, device, a.seed, b_std=0.1)
        st = Study(f, ad, a, device)
        gen[impl] = st.full_step(ids, 4)[0]
        grads[impl] = (ad.A.grad.clone(), ad.B.grad.clone())
        print(f"study_torch: loaded {name}", file=sys.stderr)
        ad.remove()
        del m, f, st
    rel = lambda x, y: float((x - y).abs().max() / y.abs().max())   # noqa: E731
    out = {"logits_rel_err": rel(res["plain"], res["hf"]), "dA_rel_err": rel(grads["plain"][0], grads["hf"][0]),
           "dB_rel_err": rel(grads["plain"][1], grads["hf"][1]), "same_sampled_tokens": bool(torch.equal(gen["plain"], gen["hf"])),
           "device": str(device), "tolerance": 1e-4}
    out["ok"] = out["same_sampled_tokens"] and all(out[k] < 1e-4 for k in ("logits_rel_err", "dA_rel_err", "dB_rel_err"))
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def m_hidden(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)["hidden_size"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--impl", default="auto", choices=["auto", "hf", "plain"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "bf16", "f32"])
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--prompt-tokens", type=int, default=70)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--positions", default="")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--full-step", action="store_true")
    ap.add_argument("--steps-per-search", type=int, default=16)
    ap.add_argument("--searches", type=int, default=20)
    ap.add_argument("--rank", type=int, default=2)
    ap.add_argument("--scaling", type=float, default=2.0)
    ap.add_argument("--alpha", type=float, default=1.1)
    ap.add_argument("--beta", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--b-std", type=float, default=0.0, help="initial B ~ N(0, b_std) (the study: 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="-")
    ap.add_argument("--dump", default="")
    ap.add_argument("--compare-impls", action="store_true")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    if a.compare_impls:
        return compare_impls(a, dev)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}.get(a.dtype, torch.bfloat16 if dev.type == "cuda" else torch.float32)
    Bp, Lp, N = a.prompts, a.prompt_tokens, a.new_tokens
    if Bp < 1 or Lp < 1 or N < 1 or a.reps < 1:
        raise SystemExit("study_torch: --prompts, --prompt-tokens, --new-tokens and --reps must be at least 1")
    pos = sorted({int(p) for p in a.positions.split(",") if p.strip()}) if a.positions else sorted({0, N // 4, N // 2, (3 * N) // 4, N - 1})
    if any(p < 0 or p >= N for p in pos):
        raise SystemExit(f"study_torch: --positions {a.positions}: each must be in [0, {N - 1}] (tokens sampled before the iteration)")

    t0 = time.perf_counter()
    model, impl, f = load_model(a.model, a.impl, dtype, dev)
    load_s = time.perf_counter() - t0
    C = m_hidden(a.model)
    with open(os.path.join(a.model, "config.json")) as fh:
        cfg = json.load(fh)
    V = cfg["vocab_size"]
    ad = HookAdapter(model, C, a.rank, a.scaling, dev, a.seed, a.b_std)
    st = Study(f, ad, a, dev)
    g = torch.Generator().manual_seed(a.seed + 7)
    rand_ids = lambda n: torch.randint(0, V, (Bp, n), generator=g).to(dev)   # noqa: E731
    res = {"what": "the study's method in PyTorch: one optimizer step, every new token re-runs the whole prefix through P and Q "
                   "(no KV cache), shared adapter as forward hooks, loss of the last position back-propagated per token; "
                   "only the last position's logits computed (a saving the study may not have had)",
           "model": a.model, "impl": impl, "torch": torch.__version__, "device": str(dev),
           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "dtype": str(dtype).replace("torch.", ""), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "config": {"L": cfg["num_hidden_layers"], "C": C, "V": V, "NH": cfg["num_attention_heads"],
                      "KVH": cfg.get("num_key_value_heads"), "I": cfg["intermediate_size"]},
           "step_shape": {"prompts": Bp, "prompt_tokens": Lp, "new_tokens": N, "rank": a.rank, "temperature": a.temperature},
           "load_seconds": round(load_s, 3)}

    # measured: one token iteration at each position, best of reps after a warm-up
    measured = []
    st.iteration(rand_ids(Lp + pos[0]), N)   # warm-up (kernels, allocator)
    for j in pos:
        ids = rand_ids(Lp + j)
        best = None
        for _ in range(a.reps):
            ph = {}
            st.sync()
            st.iteration(ids, N, ph)
            if best is None or ph["total"] < best["total"]:
                best = ph
        measured.append({"new_tokens_before": j, "prefix_tokens": Lp + j, "tokens_through_each_model": Bp * (Lp + j),
                         **{k: round(v, 6) for k, v in best.items()}})
    st.sync()
    ta = time.perf_counter()
    st.opt.step()
    st.opt.zero_grad(set_to_none=False)
    st.sync()
    adamw_s = time.perf_counter() - ta
    xs = [m["prefix_tokens"] for m in measured]
    ys = [m["total"] for m in measured]
    step_s = piecewise_sum(xs, ys, Lp, Lp + N - 1) + adamw_s
    res["measured"] = {"iterations": measured, "adamw_seconds": round(adamw_s, 6), "reps": a.reps}
    if dev.type == "cuda":
        res["measured"]["peak_GiB"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    res["extrapolated"] = {
        "how": "step = sum over j = 0..N-1 of the iteration time at prefix Lp + j (piecewise linear between the measured "
               "prefixes) + AdamW; search = steps_per_search steps; study = searches searches",
        "iteration_fit_seconds": {"c0_c1_c2": quad_fit(xs, ys), "of": "prefix tokens n: c0 + c1 n + c2 n^2 (least squares)"},
        "step_seconds": round(step_s, 4), "steps_per_search": a.steps_per_search,
        "search_seconds": round(step_s * a.steps_per_search, 2), "searches": a.searches,
        "study_hours": round(step_s * a.steps_per_search * a.searches / 3600, 3)}

    if a.full_step or a.dump:
        A0, B0 = ad.A.detach().cpu().clone(), ad.B.detach().cpu().clone()
        st.opt.zero_grad(set_to_none=False)
        prompts = rand_ids(Lp)
        st.sync()
        ta = time.perf_counter()
        gen, loss, kl, nll = st.full_step(prompts, N)
        st.sync()
        grad_s = time.perf_counter() - ta
        if a.dump:
            os.makedirs(a.dump, exist_ok=True)
            np.save(f"{a.dump}/prompts.npy", prompts.cpu().numpy().astype(np.int64))
            np.save(f"{a.dump}/gen.npy", gen.cpu().numpy().astype(np.int64))
            np.save(f"{a.dump}/A.npy", A0.numpy())
            np.save(f"{a.dump}/B.npy", B0.numpy())
            np.save(f"{a.dump}/dA.npy", ad.A.grad.detach().cpu().numpy())
            np.save(f"{a.dump}/dB.npy", ad.B.grad.detach().cpu().numpy())
            with torch.no_grad():   # the base model's logits of the first prompt, every position
                np.save(f"{a.dump}/prompt_logits.npy", f(prompts[:1], last_only=False)[0].float().cpu().numpy())
            with open(f"{a.dump}/loss.json", "w") as fh:
                json.dump({"loss": loss, "kl": kl, "nll": nll, "alpha": a.alpha, "beta": a.beta, "scaling": a.scaling}, fh)
        ta2 = time.perf_counter()
        st.opt.step()
        st.sync()
        full = grad_s + time.perf_counter() - ta2
        res["measured"]["full_step"] = {"seconds": round(full, 4), "loss": loss, "kl": kl, "nll": nll,
                                        "estimate_over_measured": round(step_s / full, 3)}
    out = json.dumps(res, indent=1)
    if a.out == "-":
        print(out)
    else:
        with open(a.out + ".tmp", "w") as fh:
            fh.write(out + "\n")
        os.replace(a.out + ".tmp", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
