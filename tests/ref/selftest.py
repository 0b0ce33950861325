#!/usr/bin/python3
"""Self-checks of the PyTorch reference (qwen2_ref.py) on tiny random Qwen2 and Qwen3 models.

Builds two throwaway models in the Hugging Face layout (L=3, C=64, NH=4, KVH=2, I=176,
V=300): untied BF16 in one file, tied F32 split into two shards with an index. Checks
the safetensors reader (BF16 exact, shards), rotary embedding against the complex
formulation, the forward pass against a naive per-head loop, causality, float32 vs
float64, adapters and steering hooks, the divergence-loss gradient against central
finite differences, incremental == teacher-forced, greedy generation (determinism,
stop ids, agreement with the logits), both direction modes, and the CLI end to end.
A Qwen3 model (per-head q/k norms, no biases, head_dim 24 != C/NH = 16) is checked against
the naive loop, by finite differences, and with tensor names without the "model." prefix.
It leaves out real checkpoints (none are needed; the C tests use the CLI).
Exit 0 on success, 1 with a message on the first failure.
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import qwen2_ref as R  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def close(a, b, tol, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    err = float(np.max(np.abs(a - b) / (np.abs(b) + 1.0))) if a.size else 0.0
    check(a.shape == b.shape and err <= tol, f"{what}: max rel err {err:.3g} > {tol:g}"
          if a.shape == b.shape else f"{what}: shapes {a.shape} vs {b.shape}")


# --------------------------------------------------------------------------------------
# tiny model writer (HF layout)


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        if dtype == "BF16":
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        else:
            raw = t.to(torch.float32).numpy().astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_model(d, tied, dtype, shards, seed, arch="qwen2", HD=None, prefix="model."):
    L, C, NH, KVH, I, V = 3, 64, 4, 2, 176, 300
    HD = HD or C // NH
    g = torch.Generator().manual_seed(seed)

    def rn(*shape, s=0.1):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * s

    t = {"model.embed_tokens.weight": rn(V, C, s=0.5), "model.norm.weight": 1 + rn(C)}
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1 + rn(C)
        t[p + "post_attention_layernorm.weight"] = 1 + rn(C)
        t[p + "self_attn.q_proj.weight"] = rn(NH * HD, C, s=0.2)
        t[p + "self_attn.k_proj.weight"] = rn(KVH * HD, C, s=0.2)
        t[p + "self_attn.v_proj.weight"] = rn(KVH * HD, C, s=0.2)
        if arch == "qwen2":
            t[p + "self_attn.q_proj.bias"] = rn(NH * HD)
            t[p + "self_attn.k_proj.bias"] = rn(KVH * HD)
            t[p + "self_attn.v_proj.bias"] = rn(KVH * HD)
        else:
            t[p + "self_attn.q_norm.weight"] = 1 + rn(HD, s=0.3)
            t[p + "self_attn.k_norm.weight"] = 1 + rn(HD, s=0.3)
        t[p + "self_attn.o_proj.weight"] = rn(C, NH * HD, s=0.15)
        t[p + "mlp.gate_proj.weight"] = rn(I, C, s=0.15)
        t[p + "mlp.up_proj.weight"] = rn(I, C, s=0.15)
        t[p + "mlp.down_proj.weight"] = rn(C, I, s=0.1)
    if not tied:
        t["lm_head.weight"] = rn(V, C, s=0.3)
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "Qwen3ForCausalLM"], "model_type": arch,
           "hidden_act": "silu", "num_hidden_layers": L, "hidden_size": C, "num_attention_heads": NH,
           "num_key_value_heads": KVH, "intermediate_size": I, "vocab_size": V,
           "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": tied,
           "rope_scaling": None, "torch_dtype": "bfloat16" if dtype == "BF16" else "float32"}
    if arch == "qwen3":
        cfg.update(head_dim=HD, attention_bias=False)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    tw = {(prefix + n[len("model."):] if n.startswith("model.") else n): x for n, x in t.items()}
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tw, dtype)
    else:
        names = list(tw)
        wm = {}
        for s in range(shards):
            part = names[s::shards]
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(os.path.join(d, fn), {n: tw[n] for n in part}, dtype)
            wm.update({n: fn for n in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f)
    return t


# --------------------------------------------------------------------------------------
# independent naive forward (numpy loops) for the reshape / GQA / RoPE layout


def naive_logits(t, cfg, ids):
    L, C, NH, KVH = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HD, eps, th = cfg.get("head_dim") or C // NH, cfg["rms_norm_eps"], cfg["rope_theta"]
    q3 = cfg["model_type"] == "qwen3"
    W = {k: v.double().numpy() for k, v in t.items()}
    if cfg["bf16"]:
        W = {k: torch.from_numpy(v).to(torch.bfloat16).double().numpy() for k, v in W.items()}

    def rms(x, w):
        return w * x / np.sqrt(np.mean(x * x) + eps)

    def rot(vec, pos):
        out = np.empty_like(vec)
        h = HD // 2
        for i in range(h):
            a = pos * th ** (-2.0 * i / HD)
            c, s = math.cos(a), math.sin(a)
            out[i] = vec[i] * c - vec[i + h] * s
            out[i + h] = vec[i + h] * c + vec[i] * s
        return out

    T = len(ids)
    x = [W["model.embed_tokens.weight"][i].copy() for i in ids]
    for l in range(L):
        p = f"model.layers.{l}."
        q, k, v = [], [], []
        for pos in range(T):
            a = rms(x[pos], W[p + "input_layernorm.weight"])
            zq, zk = np.zeros(NH * HD), np.zeros(KVH * HD)
            qq = W[p + "self_attn.q_proj.weight"] @ a + W.get(p + "self_attn.q_proj.bias", zq)
            kk = W[p + "self_attn.k_proj.weight"] @ a + W.get(p + "self_attn.k_proj.bias", zk)
            vv = W[p + "self_attn.v_proj.weight"] @ a + W.get(p + "self_attn.v_proj.bias", zk)
            qh = [qq[h * HD:(h + 1) * HD] for h in range(NH)]
            kh = [kk[h * HD:(h + 1) * HD] for h in range(KVH)]
            if q3:  # per-head RMSNorm before rope
                qh = [rms(x_, W[p + "self_attn.q_norm.weight"]) for x_ in qh]
                kh = [rms(x_, W[p + "self_attn.k_norm.weight"]) for x_ in kh]
            q.append([rot(x_, pos) for x_ in qh])
            k.append([rot(x_, pos) for x_ in kh])
            v.append([vv[h * HD:(h + 1) * HD] for h in range(KVH)])
        nx = []
        for pos in range(T):
            o = np.zeros(NH * HD)
            for h in range(NH):
                kvh = h // (NH // KVH)
                sc = np.array([q[pos][h] @ k[j][kvh] / math.sqrt(HD) for j in range(pos + 1)])
                w = np.exp(sc - sc.max())
                w /= w.sum()
                o[h * HD:(h + 1) * HD] = sum(w[j] * v[j][kvh] for j in range(pos + 1))
            xx = x[pos] + W[p + "self_attn.o_proj.weight"] @ o
            m = rms(xx, W[p + "post_attention_layernorm.weight"])
            gt = W[p + "mlp.gate_proj.weight"] @ m
            up = W[p + "mlp.up_proj.weight"] @ m
            nx.append(xx + W[p + "mlp.down_proj.weight"] @ (gt / (1 + np.exp(-gt)) * up))
        x = nx
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return np.stack([head @ rms(xx, W["model.norm.weight"]) for xx in x])


# --------------------------------------------------------------------------------------


def rand_adapter(m, kind, seed, r=2, bscale=0.3, grad=False):
    g = torch.Generator().manual_seed(seed)
    if kind == "shared":
        A = torch.randn(m.C, r, generator=g, dtype=torch.float64)
        B = torch.randn(r, m.C, generator=g, dtype=torch.float64) * bscale
    else:
        A = torch.randn(m.L, m.C, r, generator=g, dtype=torch.float64)
        B = torch.randn(m.L, r, m.C, generator=g, dtype=torch.float64) * bscale
    A, B = A.to(m.dtype), B.to(m.dtype)
    if grad:
        A.requires_grad_(True)
        B.requires_grad_(True)
    return R.Adapter(kind, A, B, 2.0, m.L)


BATCH = [{"prompt": [5, 17, 200, 3, 99], "gen": [12, 250, 7, 41]},
         {"prompt": [8, 1, 260], "gen": [30, 299]},
         {"prompt": [11], "gen": []}]


def loss_grad(m, ad, mode="teacher-forced"):
    A = ad.A.detach().clone().requires_grad_(True)
    B = ad.B.detach().clone().requires_grad_(True)
    a2 = R.Adapter(ad.kind, A, B, ad.scaling, m.L)
    r = R.divergence_loss(m, BATCH, a2, 1.1, 0.3, mode)
    r["loss"].backward()
    return r, A.grad.clone(), B.grad.clone()


def loss_val(m, kind, A, B):
    with torch.no_grad():
        return float(R.divergence_loss(m, BATCH, R.Adapter(kind, A, B, 2.0, m.L), 1.1, 0.3)["loss"])


def check_model(d, t, tied, bf16):
    tag = f"[{'tied' if tied else 'untied'} {'bf16' if bf16 else 'f32'}]"
    m = R.Qwen2Ref(d, torch.float64)
    m32 = R.Qwen2Ref(d, torch.float32)
    cfg = dict(m.cfg, bf16=bf16)

    # reader: exact values (BF16 rounding as torch does it)
    ref_embed = t["model.embed_tokens.weight"]
    ref_embed = ref_embed.to(torch.bfloat16).double() if bf16 else ref_embed.double()
    check(torch.equal(m.embed, ref_embed), f"{tag} embed read exactly")
    check((m.lm_head is m.embed) == tied, f"{tag} lm_head tied iff tie_word_embeddings")

    ids = [3, 141, 59, 26, 5, 35, 299]
    logits, hid = m.forward(ids, want_hidden=True)
    close(logits.numpy(), naive_logits(t, cfg, ids), 1e-10, f"{tag} forward vs naive loop")
    close(m32.forward(ids)[0].numpy(), logits.numpy(), 1e-4, f"{tag} float32 vs float64 logits")
    close(m.forward(ids[:4])[0].numpy(), logits[:4].numpy(), 1e-12, f"{tag} causal: prefix logits")
    check(len(hid) == m.L and hid[0].shape == (len(ids), m.C), f"{tag} hidden shape")

    # hooks: B = 0 adapter is the identity; steering adds exactly scale * d_l in chosen blocks
    zero = R.Adapter("shared", torch.randn(m.C, 2, dtype=torch.float64), torch.zeros(2, m.C, dtype=torch.float64))
    _, hz = m.forward(ids, adapter=zero, want_hidden=True, want_logits=False)
    check(all(torch.equal(a, b) for a, b in zip(hz, hid)), f"{tag} B=0 adapter is identity")
    dirs = torch.randn(m.L, m.C, dtype=torch.float64)
    _, hs = m.forward(ids, steer=R.Steer(1.5, dirs, [1, 1]), want_hidden=True, want_logits=False)
    check(torch.equal(hs[0], hid[0]), f"{tag} steer leaves block 0 alone")
    close((hs[1] - hid[1]).numpy(), (1.5 * dirs[1]).expand(len(ids), -1).numpy(), 1e-12,
          f"{tag} steer adds scale*d_1 at block 1")
    check(not torch.allclose(hs[2], hid[2]), f"{tag} steer propagates to block 2")
    ad = rand_adapter(m, "shared", 7)
    hb = hid[0]
    _, ha = m.forward(ids, adapter=ad, want_hidden=True, want_logits=False)
    u = hb @ ad.A @ ad.B
    close((ha[0] - hb).numpy(), (2.0 * u / (u.norm(dim=-1, keepdim=True) + 1e-8)).numpy(), 1e-12,
          f"{tag} adapter update at block 0")
    close((ha[0] - hb).norm(dim=-1).numpy(), np.full(len(ids), 2.0), 1e-7, f"{tag} update norm = scaling")

    # loss: finite differences, incremental == teacher-forced, B = 0 gives KL = 0, dA = 0
    for kind in ("shared", "per-block"):
        ad = rand_adapter(m, kind, 11 if kind == "shared" else 12)
        r, dA, dB = loss_grad(m, ad)
        check(r["n_positions"] == 6, f"{tag} {kind} n_positions")
        check(float(r["kl"]) > 0, f"{tag} {kind} KL positive")
        A0, B0 = ad.A.detach(), ad.B.detach()
        h = 1e-6
        g = torch.Generator().manual_seed(3)
        for trial in range(2):
            DA = torch.randn(A0.shape, generator=g, dtype=torch.float64)
            DB = torch.randn(B0.shape, generator=g, dtype=torch.float64)
            fd = (loss_val(m, kind, A0 + h * DA, B0 + h * DB) - loss_val(m, kind, A0 - h * DA, B0 - h * DB)) / (2 * h)
            an = float((dA * DA).sum() + (dB * DB).sum())
            check(abs(fd - an) <= 1e-6 * (1 + abs(an)), f"{tag} {kind} directional FD {fd:.10g} vs {an:.10g}")
        for which, X0, dX in (("A", A0, dA), ("B", B0, dB)):
            flat = X0.reshape(-1)
            for idx in (0, flat.numel() // 3, flat.numel() - 1):
                E = torch.zeros_like(flat)
                E[idx] = h
                E = E.view(X0.shape)
                if which == "A":
                    fd = (loss_val(m, kind, A0 + E, B0) - loss_val(m, kind, A0 - E, B0)) / (2 * h)
                else:
                    fd = (loss_val(m, kind, A0, B0 + E) - loss_val(m, kind, A0, B0 - E)) / (2 * h)
                an = float(dX.reshape(-1)[idx])
                check(abs(fd - an) <= 1e-6 * (1 + abs(an)), f"{tag} {kind} d{which}[{idx}] FD {fd:.10g} vs {an:.10g}")
        # loss value from explicit numpy formulas over the teacher-forced logits
        kls, nlls = [], []
        with torch.no_grad():
            for item in BATCH:
                full, P0 = item["prompt"] + item["gen"], len(item["prompt"])
                lp_ = m.forward(full)[0].numpy()
                lq_ = m.forward(full, adapter=ad)[0].numpy()
                for j, tok in enumerate(item["gen"]):
                    a_, b_ = lp_[P0 - 1 + j], lq_[P0 - 1 + j]
                    p_ = np.exp(a_ - a_.max()); p_ /= p_.sum()
                    q_ = np.exp(b_ - b_.max()); q_ /= q_.sum()
                    kls.append(np.sum(p_ * (np.log(p_) - np.log(q_))))
                    nlls.append(-np.log(q_[tok]))
        close(float(r["kl"]), np.mean(kls), 1e-10, f"{tag} {kind} KL(P||Q) explicit")
        close(float(r["nll"]), np.mean(nlls), 1e-10, f"{tag} {kind} NLL explicit")
        close(float(r["loss"]), -1.1 * np.mean(kls) + 0.3 * np.mean(nlls), 1e-10, f"{tag} {kind} loss explicit")
        ri, dAi, dBi = loss_grad(m, ad, "incremental")
        for key in ("loss", "kl", "nll"):
            close(float(ri[key]), float(r[key]), 1e-12, f"{tag} {kind} incremental {key}")
        close(dAi.numpy(), dA.numpy(), 1e-10, f"{tag} {kind} incremental dA")
        close(dBi.numpy(), dB.numpy(), 1e-10, f"{tag} {kind} incremental dB")
        r32 = R.divergence_loss(m32, BATCH, R.Adapter(kind, A0.float(), B0.float(), 2.0), 1.1, 0.3)
        close(float(r32["loss"]), float(r["loss"]), 1e-4, f"{tag} {kind} float32 loss")

    ad0 = rand_adapter(m, "shared", 5, bscale=0.0)
    r0, dA0, _ = loss_grad(m, ad0)
    check(abs(float(r0["kl"])) < 1e-14, f"{tag} B=0: KL = 0")
    close(float(r0["loss"]), 0.3 * float(r0["nll"]), 1e-14, f"{tag} B=0: loss = beta*NLL")
    check(float(dA0.abs().max()) == 0.0, f"{tag} B=0: dA = 0")

    # generation: deterministic, consistent with logits, stop ids
    g1 = m.generate([4, 8, 15], 8)
    g2 = m.generate([4, 8, 15], 8)
    check(g1 == g2 and len(g1) == 8, f"{tag} greedy deterministic")
    lg = m.forward([4, 8, 15] + g1)[0]
    check([int(i) for i in lg[2:-1].argmax(-1)] == g1, f"{tag} greedy agrees with logits argmax")
    gs = m.generate([4, 8, 15], 8, stop=[g1[2]])
    check(gs == g1[:g1.index(g1[2]) + 1], f"{tag} stop id ends generation (included)")
    ads = rand_adapter(m, "per-block", 9, bscale=1.0)
    check(m.generate([4, 8, 15], 4, adapter=ads) == m.generate([4, 8, 15], 4, adapter=ads),
          f"{tag} adapted greedy deterministic")

    # directions: block 0 of activation-diff equals update-mean; manual means
    seqs = [[4, 8, 15, 16], [23, 42]]
    ad = rand_adapter(m, "shared", 21)
    dd = R.direction(m, seqs, ad, "activation-diff")
    du = R.direction(m, seqs, ad, "update-mean")
    close(dd[0].numpy(), du[0].numpy(), 1e-12, f"{tag} direction block 0: diff == update")
    hb = [m.forward(s, want_hidden=True)[1] for s in seqs]
    ha = [m.forward(s, adapter=ad, want_hidden=True)[1] for s in seqs]
    man = torch.stack([torch.cat([ha[i][l] - hb[i][l] for i in range(2)]).mean(0) for l in range(m.L)])
    close(dd.numpy(), man.detach().numpy(), 1e-12, f"{tag} activation-diff manual mean")
    man_u = torch.stack([torch.cat([ad.update(hb[i][l], l) for i in range(2)]).mean(0) for l in range(m.L)])
    close(du.numpy(), man_u.detach().numpy(), 1e-12, f"{tag} update-mean manual mean")
    return m


def check_qwen3(tmp):
    """Qwen3: per-head q/k norms, no biases, head_dim 24 (C/NH = 16), tensors with and without
    the "model." prefix; forward against the naive loop, loss gradient by finite differences."""
    tag = "[qwen3]"
    d = os.path.join(tmp, "qwen3")
    t = make_model(d, tied=True, dtype="F32", shards=1, seed=5, arch="qwen3", HD=24)
    m = R.Qwen2Ref(d, torch.float64)
    check(m.HD == 24 and m.qk_norm and not m.qkv_bias, f"{tag} config: head_dim 24, q/k norms, no biases")
    ids = [3, 141, 59, 26, 5, 35, 299]
    logits, _ = m.forward(ids)
    close(logits.numpy(), naive_logits(t, dict(m.cfg, bf16=False), ids), 1e-10, f"{tag} forward vs naive loop")
    # the norms matter: scaling a q_norm weight changes the logits
    m.layers[0]["qn"] = m.layers[0]["qn"] * 2
    check(not torch.allclose(m.forward(ids)[0], logits), f"{tag} q_norm weight is used")
    m.layers[0]["qn"] = m.layers[0]["qn"] / 2
    d2 = os.path.join(tmp, "qwen3_bare")
    make_model(d2, tied=True, dtype="F32", shards=1, seed=5, arch="qwen3", HD=24, prefix="")
    check(torch.equal(R.Qwen2Ref(d2).forward(ids)[0], logits), f"{tag} tensors without the model. prefix")
    ad = rand_adapter(m, "per-block", 13)
    r, dA, dB = loss_grad(m, ad)
    A0, B0 = ad.A.detach(), ad.B.detach()
    h, g = 1e-6, torch.Generator().manual_seed(4)
    DA = torch.randn(A0.shape, generator=g, dtype=torch.float64)
    DB = torch.randn(B0.shape, generator=g, dtype=torch.float64)
    fd = (loss_val(m, "per-block", A0 + h * DA, B0 + h * DB) - loss_val(m, "per-block", A0 - h * DA, B0 - h * DB)) / (2 * h)
    an = float((dA * DA).sum() + (dB * DB).sum())
    check(abs(fd - an) <= 1e-6 * (1 + abs(an)), f"{tag} directional FD {fd:.10g} vs {an:.10g}")


def check_rope():
    class M:
        HD, dtype = 16, torch.float64
        inv_freq = 10000.0 ** (-torch.arange(0, 8, dtype=torch.float64) * 2.0 / 16)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    y = R.Qwen2Ref.rope(M, x, 6)
    z = torch.complex(x[..., :8], x[..., 8:]) * torch.polar(
        torch.ones(6, 8, dtype=torch.float64), torch.arange(6, dtype=torch.float64)[:, None] * M.inv_freq)
    close(y.numpy(), torch.cat([z.real, z.imag], -1).numpy(), 1e-13, "rope vs complex rotation of (i, i+HD/2)")
    # relative: <rope(a)@m, rope(b)@n> depends only on m - n
    a = torch.randn(16, dtype=torch.float64).expand(1, 6, 16)
    b = torch.randn(16, dtype=torch.float64).expand(1, 6, 16)
    ra, rb = R.Qwen2Ref.rope(M, a, 6)[0], R.Qwen2Ref.rope(M, b, 6)[0]
    close(float(ra[4] @ rb[1]), float(ra[3] @ rb[0]), 1e-12, "rope relative position")


def check_bench_model(d):
    """bench_torch.FastQwen2 (batched, KV cache) agrees with the reference forward."""
    import bench_torch
    m = R.Qwen2Ref(d, torch.float32)
    fm = bench_torch.FastQwen2(m)
    ad = rand_adapter(m, "per-block", 4, bscale=1.0)
    ids = torch.tensor([[3, 141, 59, 26, 5, 35], [7, 7, 200, 1, 2, 299]])
    with torch.no_grad():
        full = torch.stack([m.forward(list(r), adapter=ad)[0] for r in ids])
        close(fm.forward(ids, adapter=ad).numpy(), full.numpy(), 1e-4, "bench FastQwen2 full forward")
        cache = fm.new_cache(2, 6)
        lg = [fm.forward(ids[:, :3], cache=cache, adapter=ad, last_only=True)]
        for i in range(3, 6):
            lg.append(fm.forward(ids[:, i:i + 1], cache=cache, pos0=i, adapter=ad, last_only=True))
        close(torch.stack(lg, 1).numpy(), full[:, 2:].numpy(), 1e-4, "bench FastQwen2 KV-cache decode")


def check_cli(d, tmp, m):
    np.save(os.path.join(tmp, "A.npy"), np.random.RandomState(1).randn(m.C, 2))
    np.save(os.path.join(tmp, "B.npy"), 0.3 * np.random.RandomState(2).randn(2, m.C))
    np.save(os.path.join(tmp, "D.npy"), np.random.RandomState(3).randn(m.L, m.C).astype(np.float32))
    ad = {"kind": "shared", "A": "A.npy", "B": "B.npy", "scaling": 2.0}
    req = {"model": d, "dtype": "float64", "tasks": [
        {"op": "logits", "name": "lg", "ids": [1, 2, 3], "steer": {"scale": 2.0, "directions": "D.npy", "blocks": [0, 2]}},
        {"op": "hidden", "name": "hd", "ids": [1, 2, 3], "adapter": ad},
        {"op": "generate", "name": "gen", "ids": [1, 2, 3], "n": 5, "stop": [299]},
        {"op": "loss", "name": "ls", "batch": BATCH, "adapter": ad, "alpha": 1.1, "beta": 0.3},
        {"op": "direction", "name": "dir", "seqs": [[1, 2, 3], [4, 5]], "adapter": ad, "mode": "update-mean"}]}
    with open(os.path.join(tmp, "req.json"), "w") as f:
        json.dump(req, f)
    out = os.path.join(tmp, "out")
    p = subprocess.run([sys.executable, os.path.join(HERE, "qwen2_ref.py"), os.path.join(tmp, "req.json"), out],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"CLI exit {p.returncode}: {p.stderr[-2000:]}")
    if p.returncode:
        return
    A = torch.from_numpy(np.load(os.path.join(tmp, "A.npy")))
    B = torch.from_numpy(np.load(os.path.join(tmp, "B.npy")))
    D = torch.from_numpy(np.load(os.path.join(tmp, "D.npy")).astype(np.float64))
    lg = np.load(os.path.join(out, "lg.npy"))
    check(lg.dtype == np.float64 and lg.shape == (3, m.V), "CLI logits dtype/shape")
    close(lg, m.forward([1, 2, 3], steer=R.Steer(2.0, D))[0].numpy(), 1e-12, "CLI steered logits")
    hd = np.load(os.path.join(out, "hd.npy"))
    close(hd, torch.stack(m.forward([1, 2, 3], adapter=R.Adapter("shared", A, B), want_hidden=True)[1]).numpy(),
          1e-12, "CLI hidden")
    gen = np.load(os.path.join(out, "gen.npy"))
    check(gen.dtype == np.int64 and list(gen) == json.load(open(os.path.join(out, "gen.json")))["ids"]
          and list(gen) == m.generate([1, 2, 3], 5, [299]), "CLI generate")
    meta = json.load(open(os.path.join(out, "ls.json")))
    r, dA, dB = loss_grad(m, R.Adapter("shared", A, B))
    close(meta["loss"], float(r["loss"]), 1e-12, "CLI loss")
    check(meta["n_positions"] == 6 and meta["shape_dA"] == [m.C, 2], "CLI loss meta")
    close(np.load(os.path.join(out, "ls.dA.npy")), dA.numpy(), 1e-12, "CLI dA")
    close(np.load(os.path.join(out, "ls.dB.npy")), dB.numpy(), 1e-12, "CLI dB")
    close(np.load(os.path.join(out, "dir.npy")),
          R.direction(m, [[1, 2, 3], [4, 5]], R.Adapter("shared", A, B), "update-mean").numpy(), 1e-12, "CLI direction")


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="sc_ref_selftest_")
    try:
        check_rope()
        d1 = os.path.join(tmp, "untied_bf16")
        t1 = make_model(d1, tied=False, dtype="BF16", shards=1, seed=1)
        m1 = check_model(d1, t1, tied=False, bf16=True)
        d2 = os.path.join(tmp, "tied_f32")
        t2 = make_model(d2, tied=True, dtype="F32", shards=2, seed=2)
        check_model(d2, t2, tied=True, bf16=False)
        d3 = os.path.join(tmp, "tied_f32_single")
        make_model(d3, tied=True, dtype="F32", shards=1, seed=2)
        ids = [7, 9, 250, 3]
        check(torch.equal(R.Qwen2Ref(d2).forward(ids)[0], R.Qwen2Ref(d3).forward(ids)[0]),
              "sharded model == single file")
        check_qwen3(tmp)
        check_bench_model(d1)
        check_cli(d1, tmp, m1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        return 1
    print("qwen2_ref selftest: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
