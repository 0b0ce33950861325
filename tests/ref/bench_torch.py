#!/usr/bin/python3
"""PyTorch eager float32 baseline for steerclear's benchmarks.

Measures, on a Hugging Face Qwen2 directory (weights converted to float32, loaded by
qwen2_ref.py's reader) with a KV cache written here:
  prefill  one prompt of --prompt-tokens (128) tokens: tokens/s
  decode   batch 1 and batch 8: a --prompt-tokens prompt, then --new-tokens (64)
           greedy tokens one at a time with the KV cache: decode tokens/s
  step     one divergence optimizer step: --batch (12) prompts of --step-prompt-tokens
           (32) random ids; sample --new-tokens from Q (adapter, temperature 1, KV
           cache, no grad); teacher-forced P forward (no grad) and Q forward +
           backward over prompt + continuation; loss alpha*(-KL) + beta*NLL on the
           generated positions; AdamW (lr 0.1) step on A, B. Seconds per phase.
It leaves out stop tokens (every sequence samples all --new-tokens, the worst case)
and padding (all prompts have the same length).
Prints one JSON object on stdout, with the BLAS torch was built with
(torch.__config__.show()) and the BLAS libraries mapped into the process, and the peak
resident memory (getrusage ru_maxrss).

    /usr/bin/python3 tests/ref/bench_torch.py --model DIR [--threads 2] [--new-tokens 64]
        [--what prefill,decode,step] [--prompt-tokens 128] [--reps 3] [--adapter shared]
"""

import argparse
import json
import math
import os
import re
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen2_ref as R  # noqa: E402


def linear(x, W, b=None):
    """F.linear, except for one row: torch.mv, which streams the weights at about twice the
    bandwidth F.linear reaches for a single row here (PyTorch's fastest eager path per shape)."""
    if x.numel() == x.shape[-1]:
        y = torch.mv(W, x.reshape(-1))
        if b is not None:
            y = y + b
        return y.view(*x.shape[:-1], W.shape[0])
    return F.linear(x, W, b)


class FastQwen2:
    """Batched float32 Qwen2 forward with a KV cache and an optional adapter hook."""

    def __init__(self, ref, lin=linear):
        self.m = ref
        self.g = ref.NH // ref.KVH
        self.tables = None
        self.lin = lin

    def rope_tables(self, n):
        if self.tables is None or self.tables[0].shape[0] < n:
            ang = torch.arange(n, dtype=torch.float64)[:, None] * self.m.inv_freq[None, :]
            ang = torch.cat([ang, ang], -1)
            self.tables = (ang.cos().float(), ang.sin().float())
        return self.tables

    def new_cache(self, B, S):
        m = self.m
        return [(torch.zeros(B, m.KVH, S, m.HD), torch.zeros(B, m.KVH, S, m.HD)) for _ in range(m.L)]

    def rope(self, x, pos0):
        # x: [B, H, T, HD]
        T = x.shape[2]
        cos, sin = self.rope_tables(pos0 + T)
        cos, sin = cos[pos0:pos0 + T], sin[pos0:pos0 + T]
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

    def forward(self, ids, cache=None, pos0=0, adapter=None, last_only=False, positions=None):
        """ids [B, T] -> logits [B, V] (last_only), [B, len(positions), V] or [B, T, V]."""
        m = self.m
        Bsz, T = ids.shape
        x = m.embed[ids]
        S = pos0 + T
        mask = torch.ones(T, S, dtype=torch.bool).triu(pos0 + 1) if T > 1 else None
        for l, W in enumerate(m.layers):
            a = m.rmsnorm(x, W["ln1"])
            q = self.lin(a, W["wq"], W["bq"]).view(Bsz, T, m.NH, m.HD).transpose(1, 2)
            k = self.lin(a, W["wk"], W["bk"]).view(Bsz, T, m.KVH, m.HD).transpose(1, 2)
            v = self.lin(a, W["wv"], W["bv"]).view(Bsz, T, m.KVH, m.HD).transpose(1, 2)
            q, k = self.rope(q, pos0), self.rope(k, pos0)
            if cache is not None:
                kc, vc = cache[l]
                kc[:, :, pos0:S] = k
                vc[:, :, pos0:S] = v
                k, v = kc[:, :, :S], vc[:, :, :S]
            q = q.reshape(Bsz, m.KVH, self.g, T, m.HD)
            s = q @ k.unsqueeze(2).transpose(-1, -2) / math.sqrt(m.HD)  # [B, KVH, g, T, S]
            if mask is not None:
                s = s.masked_fill(mask, float("-inf"))
            o = torch.softmax(s, -1) @ v.unsqueeze(2)  # [B, KVH, g, T, HD]
            o = o.reshape(Bsz, m.NH, T, m.HD).transpose(1, 2).reshape(Bsz, T, m.NH * m.HD)
            x = x + self.lin(o, W["wo"])
            hm = m.rmsnorm(x, W["ln2"])
            x = x + self.lin(F.silu(self.lin(hm, W["wg"])) * self.lin(hm, W["wu"]), W["wd"])
            if adapter is not None:
                x = adapter.apply(x, l)
        if last_only:
            x = x[:, -1]
        elif positions is not None:
            x = x[:, positions]
        return self.lin(m.rmsnorm(x, m.norm), m.lm_head)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def blas_info():
    show = torch.__config__.show()
    cfg = dict(re.findall(r"\b(BLAS_INFO|LAPACK_INFO|USE_MKLDNN|USE_OPENMP)=([^,\s]*)", show))
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for ln in f:
                p = ln.split()[-1] if len(ln.split()) >= 6 else ""
                if any(s in p for s in ("blas", "lapack", "mkl")):
                    libs.add(os.path.realpath(p) if os.path.exists(p) else p)
    except OSError:
        pass
    return cfg, sorted(libs)


def openblas_core(libs):
    """The OpenBLAS kernel set in use (openblas_get_corename of the mapped library), or None."""
    import ctypes
    for p in libs:
        if "blas" in p:
            try:
                f = ctypes.CDLL(p).openblas_get_corename
                f.restype = ctypes.c_char_p
                return f().decode()
            except (OSError, AttributeError):
                continue
    return None


def best_of(reps, fn):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


def bench_prefill(fm, args, gen):
    ids = torch.randint(0, fm.m.V, (1, args.prompt_tokens), generator=gen)
    with torch.no_grad():
        fm.forward(ids[:, :8], last_only=True)  # warm-up
        best, times = best_of(args.reps, lambda: fm.forward(ids, cache=fm.new_cache(1, args.prompt_tokens),
                                                            last_only=True))
    return {"tokens": args.prompt_tokens, "seconds": best, "all_seconds": times,
            "tokens_per_s": args.prompt_tokens / best}


def bench_decode(fm, args, gen, B):
    ids = torch.randint(0, fm.m.V, (B, args.prompt_tokens), generator=gen)
    S = args.prompt_tokens + args.new_tokens

    def run():
        cache = fm.new_cache(B, S)
        t0 = time.perf_counter()
        nxt = fm.forward(ids, cache=cache, last_only=True).argmax(-1)
        t1 = time.perf_counter()
        for i in range(args.new_tokens - 1):
            nxt = fm.forward(nxt[:, None], cache=cache, pos0=args.prompt_tokens + i, last_only=True).argmax(-1)
        return t1 - t0, time.perf_counter() - t1

    with torch.no_grad():
        fm.forward(ids[:, :4], cache=fm.new_cache(B, 8), last_only=True)  # warm-up
        res = [run() for _ in range(args.reps)]
    pre, dec = min(r[0] for r in res), min(r[1] for r in res)
    steps = args.new_tokens - 1
    return {"batch": B, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
            "prefill_seconds": pre, "decode_seconds": dec,
            "decode_tokens_per_s": B * steps / dec if steps > 0 else None,
            "ms_per_step": 1000.0 * dec / steps if steps > 0 else None}


def bench_step(fm, args, gen):
    m = fm.m
    B, P0, N = args.batch, args.step_prompt_tokens, args.new_tokens
    if args.adapter == "shared":
        A = torch.randn(m.C, args.rank, generator=gen)
        Bm = torch.zeros(args.rank, m.C)
    else:
        A = torch.randn(m.L, m.C, args.rank, generator=gen)
        Bm = torch.zeros(m.L, args.rank, m.C)
    A.requires_grad_(True)
    Bm.requires_grad_(True)
    ad = R.Adapter(args.adapter, A, Bm, 2.0, m.L)
    opt = torch.optim.AdamW([A, Bm], lr=0.1)
    prompts = torch.randint(0, m.V, (B, P0), generator=gen)
    out = {"batch": B, "prompt_tokens": P0, "new_tokens": N, "adapter": args.adapter, "rank": args.rank}
    t_start = time.perf_counter()
    with torch.no_grad():
        cache = fm.new_cache(B, P0 + N)
        toks = []
        logits = fm.forward(prompts, cache=cache, adapter=ad, last_only=True)
        for i in range(N):
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)  # [B, 1]
            toks.append(nxt)
            if i + 1 < N:
                logits = fm.forward(nxt, cache=cache, pos0=P0 + i, adapter=ad, last_only=True)
        gen_ids = torch.cat(toks, 1)
    t_sample = time.perf_counter()
    seq = torch.cat([prompts, gen_ids], 1)[:, :-1]
    pos = torch.arange(P0 - 1, P0 - 1 + N)
    with torch.no_grad():
        lp = torch.log_softmax(fm.forward(seq, positions=pos), -1)
    t_p = time.perf_counter()
    lq = torch.log_softmax(fm.forward(seq, adapter=ad, positions=pos), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1).mean()
    nll = -lq.gather(-1, gen_ids[:, :, None]).mean()
    loss = args.alpha * (-kl) + args.beta * nll
    t_qf = time.perf_counter()
    opt.zero_grad()
    loss.backward()
    t_qb = time.perf_counter()
    opt.step()
    t_end = time.perf_counter()
    out.update(sample_seconds=t_sample - t_start, p_forward_seconds=t_p - t_sample,
               q_forward_seconds=t_qf - t_p, q_backward_seconds=t_qb - t_qf,
               adamw_seconds=t_end - t_qb, total_seconds=t_end - t_start,
               loss=float(loss), kl=float(kl), nll=float(nll))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--step-prompt-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--rank", type=int, default=2)
    ap.add_argument("--adapter", choices=("shared", "per-block"), default="shared")
    ap.add_argument("--alpha", type=float, default=1.1)
    ap.add_argument("--beta", type=float, default=0.3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--what", default="prefill,decode,step")
    ap.add_argument("--one-row", choices=("mv", "linear"), default="mv",
                    help="one-row products (decode at batch 1) through torch.mv (faster here) or F.linear")
    args = ap.parse_args()
    what = [w for w in args.what.split(",") if w]
    for w in what:
        if w not in ("prefill", "decode", "step"):
            ap.error(f"--what: unknown item {w!r} (prefill, decode, step)")
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    fm = FastQwen2(R.Qwen2Ref(args.model, torch.float32), linear if args.one_row == "mv" else F.linear)
    res = {"model": os.path.abspath(args.model), "torch": torch.__version__, "threads": args.threads,
           "load_seconds": time.perf_counter() - t0,
           "config": {k: getattr(fm.m, k) for k in ("L", "C", "NH", "KVH", "HD", "I", "V")}}
    res["peak_rss_mb_after_load"] = peak_mb()
    if "prefill" in what:
        res["prefill"] = bench_prefill(fm, args, gen)
        res["peak_rss_mb_after_prefill"] = peak_mb()
    if "decode" in what:
        res["decode"] = {"batch1": bench_decode(fm, args, gen, 1), "batch8": bench_decode(fm, args, gen, 8)}
        res["peak_rss_mb_after_decode"] = peak_mb()
    if "step" in what:
        res["step"] = bench_step(fm, args, gen)
        res["peak_rss_mb_after_step"] = peak_mb()
    res["blas_config"], res["blas_libs"] = blas_info()
    res["blas_core"] = openblas_core(res["blas_libs"])
    res["one_row_products"] = "torch.mv" if args.one_row == "mv" else "F.linear"
    res["peak_rss_mb"] = peak_mb()
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
