#!/usr/bin/python3
"""Independent PyTorch reference for steerclear's Qwen2 and Qwen3 numerics.

Computes, in float64 by default (float32 on request), with plain PyTorch and no
`transformers`: the Qwen2 / Qwen3 forward pass (logits and the residual stream after every
block), residual adapters (shared or per-block), the divergence loss
alpha * (-KL(P||Q)) + beta * NLL and its gradient with respect to the adapter
(teacher-forced, or the study's slow "incremental" re-run per generated token),
steering directions ("activation-diff" or "update-mean"), and greedy generation
with optional steering or adapter. It leaves out: KV caches, sampling, batching
with padding, sliding-window attention and rope scaling (a config that asks for
rope scaling is refused).

Written from the maths in the brief, not from the C engine, so that the engine can
be checked against it.

Model: a Hugging Face Qwen2 or Qwen3 directory (config.json; model.safetensors, or
model.safetensors.index.json and its shards; tensors F32, F16, BF16 or F64).
Tensor names with the "model." prefix (...ForCausalLM) or without it (a bare base model).

Qwen3 (model_type "qwen3") differs in the attention only: head_dim comes from config.json
(required; it need not be hidden / heads), q/k/v have biases only when "attention_bias" is
true, and after the projections each head of q and of k is RMS-normalised over its head_dim
values with its own weight (self_attn.q_norm.weight, self_attn.k_norm.weight, [head_dim],
eps rms_norm_eps), before RoPE:
    q[t, h, :] = q_norm * q[t, h, :] / sqrt(mean(q[t, h, :]^2) + eps)     (likewise k)

Adapter at the output h of every block l (before the next block / the final norm):
    u = h A_l B_l          A_l: [C, r], B_l: [r, C]
    h' = h + scaling * u / (||u|| + 1e-8)     (norm over C, per token)
  kind "shared": one A [C, r], B [r, C] for every block;
  kind "per-block": A [L, C, r], B [L, r, C].
Steering adds scale * d_l to the output of block l for l in blocks [first, last]
(both inclusive; default every block), after the adapter if both are given.

CLI (one request per process, the model loaded once):

    /usr/bin/python3 tests/ref/qwen2_ref.py REQUEST.json OUT_DIR

REQUEST.json:
    {"model": DIR, "dtype": "float64" | "float32", "tasks": [TASK, ...]}
Relative paths (model, .npy inputs) are resolved against the request file's folder.
Arrays may be given as a path to a .npy file or inline as nested lists.

An adapter object: {"kind": "shared" | "per-block", "A": ARRAY, "B": ARRAY,
"scaling": 2.0}. A steer object: {"scale": s, "directions": ARRAY [L, C],
"blocks": [first, last]}.

Tasks (every task has "op" and "name"; every task writes OUT_DIR/<name>.json with
at least {"op", "shape"} and, unless noted, OUT_DIR/<name>.npy; values are written
as float64, ids as int64):
  logits     {"ids": [...], "steer"?, "adapter"?}           -> <name>.npy [T, V]
  hidden     {"ids": [...], "steer"?, "adapter"?}           -> <name>.npy [L, T, C]
             (residual stream after every block, after adapter/steering)
  generate   {"ids": [...], "n": 32, "stop"?: [ids], "steer"?, "adapter"?}
             -> <name>.npy int64 [n_generated] (greedy argmax, full recompute per
             token; a stop id ends generation and is included), also "ids" in the json
  loss       {"batch": [{"prompt": [...], "gen": [...]}, ...], "adapter",
              "alpha": 1.1, "beta": 0.3, "mode": "teacher-forced" | "incremental"}
             -> <name>.json {"loss", "kl", "nll", "n_positions"},
                <name>.dA.npy and <name>.dB.npy (shapes of A and B); no <name>.npy
  direction  {"seqs": [[ids], ...], "adapter", "mode": "activation-diff" | "update-mean"}
             -> <name>.npy [L, C]

Loss: P = base model, Q = adapted model, both teacher-forced over prompt + gen. For
generated token g_{j+1} (j = 0..n-1) the logits at position len(prompt) - 1 + j are
used: KL = sum_v p_v (log p_v - log q_v), NLL = -log q[g_{j+1}]; loss, kl and nll
are means over all such positions of all sequences (every given generated token
counts; the caller truncates after a stop token).
"""

import json
import math
import mmap
import os
import struct
import sys

import numpy as np
import torch

ADAPTER_EPS = 1e-8

# --------------------------------------------------------------------------------------
# safetensors reading (json + numpy; the `safetensors` package is not installed)


def _decode_tensor(raw, dtype, shape, where):
    if dtype == "F32":
        arr = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F64":
        arr = np.frombuffer(raw, dtype="<f8")
    elif dtype == "F16":
        arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        arr = bits.view(np.float32)
    else:
        raise ValueError(f"{where}: dtype {dtype} is not supported (F32, F16, BF16, F64)")
    n = int(np.prod(shape)) if shape else 1
    if arr.size != n:
        raise ValueError(f"{where}: {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def read_safetensors(path):
    """Returns {name: numpy array (float32 or float64)} for one .safetensors file."""
    with open(path, "rb") as f:
        data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (hlen,) = struct.unpack("<Q", data[:8])
    if 8 + hlen > len(data):
        raise ValueError(f"{path}: header length {hlen} runs past the end of the file")
    header = json.loads(bytes(data[8:8 + hlen]).decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if base + end > len(data) or start > end:
            raise ValueError(f"{path}: tensor {name}: data offsets {start}..{end} out of range")
        out[name] = _decode_tensor(data[base + start:base + end], info["dtype"],
                                   list(info["shape"]), f"{path}: tensor {name}")
    return out


def read_model_tensors(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        return read_safetensors(single)
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(wm.values())):
            out.update(read_safetensors(os.path.join(model_dir, shard)))
        return out
    raise FileNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")


# --------------------------------------------------------------------------------------
# model


class Qwen2Ref:
    """Qwen2 weights as torch tensors of one dtype, with a plain forward pass."""

    def __init__(self, model_dir, dtype=torch.float64):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.cfg = cfg
        self.dtype = dtype
        self.arch = cfg.get("model_type")
        if self.arch not in ("qwen2", "qwen3"):
            raise ValueError(f"{model_dir}/config.json: model_type {self.arch!r} is not qwen2 or qwen3")
        self.L = int(cfg["num_hidden_layers"])
        self.C = int(cfg["hidden_size"])
        self.NH = int(cfg["num_attention_heads"])
        self.KVH = int(cfg.get("num_key_value_heads") or self.NH)
        if self.arch == "qwen3" and not cfg.get("head_dim"):
            raise ValueError(f"{model_dir}/config.json: qwen3 needs head_dim")
        self.HD = int(cfg.get("head_dim") or self.C // self.NH)
        # qwen2 always has q/k/v biases; qwen3 only with attention_bias (default false)
        self.qkv_bias = self.arch == "qwen2" or bool(cfg.get("attention_bias", False))
        self.qk_norm = self.arch == "qwen3"
        self.I = int(cfg["intermediate_size"])
        self.V = int(cfg["vocab_size"])
        self.theta = float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        if cfg.get("rope_scaling") or (cfg.get("rope_parameters") or {}).get("rope_type", "default") != "default":
            raise ValueError(f"{model_dir}/config.json: rope_scaling is not supported")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{model_dir}/config.json: hidden_act {cfg['hidden_act']} is not silu")
        if self.NH % self.KVH:
            raise ValueError(f"{model_dir}/config.json: heads {self.NH} not a multiple of kv heads {self.KVH}")

        raw = read_model_tensors(model_dir)
        pre = "model." if any(k.startswith("model.") for k in raw) else ""

        def get(name, shape, optional=False):
            if name != "lm_head.weight":
                name = pre + name[len("model."):]
            if name not in raw:
                if optional:
                    return torch.zeros(shape, dtype=dtype)
                raise KeyError(f"{model_dir}: tensor {name} is missing")
            t = torch.from_numpy(np.array(raw[name])).to(dtype)
            if list(t.shape) != list(shape):
                raise ValueError(f"{model_dir}: tensor {name}: shape {list(t.shape)} != {list(shape)}")
            return t

        C, NH, KVH, HD, I, V = self.C, self.NH, self.KVH, self.HD, self.I, self.V
        self.embed = get("model.embed_tokens.weight", [V, C])
        self.layers = []
        for l in range(self.L):
            p = f"model.layers.{l}."
            nob = not self.qkv_bias  # no biases: zeros (a file's bias tensors are ignored)
            self.layers.append({
                "ln1": get(p + "input_layernorm.weight", [C]),
                "wq": get(p + "self_attn.q_proj.weight", [NH * HD, C]),
                "bq": torch.zeros(NH * HD, dtype=dtype) if nob else get(p + "self_attn.q_proj.bias", [NH * HD], optional=True),
                "wk": get(p + "self_attn.k_proj.weight", [KVH * HD, C]),
                "bk": torch.zeros(KVH * HD, dtype=dtype) if nob else get(p + "self_attn.k_proj.bias", [KVH * HD], optional=True),
                "wv": get(p + "self_attn.v_proj.weight", [KVH * HD, C]),
                "bv": torch.zeros(KVH * HD, dtype=dtype) if nob else get(p + "self_attn.v_proj.bias", [KVH * HD], optional=True),
                "qn": get(p + "self_attn.q_norm.weight", [HD]) if self.qk_norm else None,
                "kn": get(p + "self_attn.k_norm.weight", [HD]) if self.qk_norm else None,
                "wo": get(p + "self_attn.o_proj.weight", [C, NH * HD]),
                "ln2": get(p + "post_attention_layernorm.weight", [C]),
                "wg": get(p + "mlp.gate_proj.weight", [I, C]),
                "wu": get(p + "mlp.up_proj.weight", [I, C]),
                "wd": get(p + "mlp.down_proj.weight", [C, I]),
            })
        self.norm = get("model.norm.weight", [C])
        if self.tied or "lm_head.weight" not in raw:
            if not self.tied:
                raise KeyError(f"{model_dir}: lm_head.weight is missing and embeddings are not tied")
            self.lm_head = self.embed
        else:
            self.lm_head = get("lm_head.weight", [V, C])
        inv = self.theta ** (-torch.arange(0, HD // 2, dtype=torch.float64) * 2.0 / HD)
        self.inv_freq = inv  # [HD/2], float64

    # ---------------------------------------------------------------------------------

    def rmsnorm(self, x, w):
        return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)

    def rope(self, x, T):
        # x: [H, T, HD]; positions 0..T-1; "rotate half" layout.
        ang = torch.arange(T, dtype=torch.float64)[:, None] * self.inv_freq[None, :]  # [T, HD/2]
        ang = torch.cat([ang, ang], dim=-1)  # [T, HD]
        cos, sin = ang.cos().to(self.dtype), ang.sin().to(self.dtype)
        h = self.HD // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin

    def block(self, x, l):
        """One decoder block on x [T, C] -> [T, C] (before any adapter)."""
        W = self.layers[l]
        T = x.shape[0]
        a = self.rmsnorm(x, W["ln1"])
        q = (a @ W["wq"].T + W["bq"]).view(T, self.NH, self.HD)    # [T, NH, HD]
        k = (a @ W["wk"].T + W["bk"]).view(T, self.KVH, self.HD)   # [T, KVH, HD]
        if self.qk_norm:  # qwen3: every head's vector normalised over its HD values
            q, k = self.rmsnorm(q, W["qn"]), self.rmsnorm(k, W["kn"])
        q, k = q.transpose(0, 1), k.transpose(0, 1)                 # [NH, T, HD], [KVH, T, HD]
        v = (a @ W["wv"].T + W["bv"]).view(T, self.KVH, self.HD).transpose(0, 1)  # [KVH, T, HD]
        q, k = self.rope(q, T), self.rope(k, T)
        g = self.NH // self.KVH
        k = k.repeat_interleave(g, dim=0)  # query head h uses kv head h // g
        v = v.repeat_interleave(g, dim=0)
        s = q @ k.transpose(1, 2) / math.sqrt(self.HD)  # [NH, T, T]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float("-inf"))
        att = torch.softmax(s, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, self.NH * self.HD)
        x = x + o @ W["wo"].T
        m = self.rmsnorm(x, W["ln2"])
        gate = m @ W["wg"].T
        up = m @ W["wu"].T
        return x + (torch.nn.functional.silu(gate) * up) @ W["wd"].T

    def forward(self, ids, adapter=None, steer=None, want_hidden=False, want_logits=True):
        """ids: list/1-D tensor [T]. Returns (logits [T, V] or None, hidden list of [T, C])."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        x = self.embed[ids]
        hidden = []
        for l in range(self.L):
            x = self.block(x, l)
            if adapter is not None:
                x = adapter.apply(x, l)
            if steer is not None:
                x = steer.apply(x, l)
            if want_hidden:
                hidden.append(x)
        logits = None
        if want_logits:
            logits = self.rmsnorm(x, self.norm) @ self.lm_head.T
        return logits, hidden

    def generate(self, ids, n, stop=(), adapter=None, steer=None):
        seq = list(int(i) for i in ids)
        out = []
        stop = set(int(s) for s in stop)
        with torch.no_grad():
            for _ in range(n):
                logits, _ = self.forward(seq, adapter=adapter, steer=steer)
                tok = int(torch.argmax(logits[-1]).item())
                out.append(tok)
                seq.append(tok)
                if tok in stop:
                    break
        return out


class Adapter:
    """Residual rank-r adapter: h + scaling * (h A B) / (||h A B|| + 1e-8)."""

    def __init__(self, kind, A, B, scaling=2.0, L=None):
        if kind not in ("shared", "per-block"):
            raise ValueError(f"adapter kind {kind!r} is not 'shared' or 'per-block'")
        self.kind, self.A, self.B, self.scaling = kind, A, B, float(scaling)
        if kind == "shared" and (A.dim() != 2 or B.dim() != 2):
            raise ValueError("shared adapter: A must be [C, r] and B [r, C]")
        if kind == "per-block":
            if A.dim() != 3 or B.dim() != 3:
                raise ValueError("per-block adapter: A must be [L, C, r] and B [L, r, C]")
            if L is not None and (A.shape[0] != L or B.shape[0] != L):
                raise ValueError(f"per-block adapter: first dimension must be L = {L}")

    def ab(self, l):
        if self.kind == "shared":
            return self.A, self.B
        return self.A[l], self.B[l]

    def update(self, h, l):
        A, B = self.ab(l)
        u = h @ A @ B
        return self.scaling * u / (u.norm(dim=-1, keepdim=True) + ADAPTER_EPS)

    def apply(self, h, l):
        return h + self.update(h, l)


class Steer:
    """Adds scale * d_l to the output of blocks first..last (inclusive)."""

    def __init__(self, scale, directions, blocks=None):
        self.scale, self.d = float(scale), directions
        L = directions.shape[0]
        self.first, self.last = (0, L - 1) if blocks is None else (int(blocks[0]), int(blocks[1]))

    def apply(self, h, l):
        if self.first <= l <= self.last:
            return h + self.scale * self.d[l]
        return h


# --------------------------------------------------------------------------------------
# divergence loss and directions


def _kl_nll(p_logits, q_logits, targets):
    """Sums over positions of KL(P||Q) and of -log q[target]."""
    lp = torch.log_softmax(p_logits, dim=-1)
    lq = torch.log_softmax(q_logits, dim=-1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    nll = -lq.gather(-1, targets[:, None])[:, 0]
    return kl.sum(), nll.sum()


def divergence_loss(model, batch, adapter, alpha=1.1, beta=0.3, mode="teacher-forced"):
    """batch: list of {"prompt": ids, "gen": ids}. Returns dict with tensors loss (with
    grad through adapter.A/B), kl, nll (means) and n_positions."""
    kl_sum = nll_sum = 0.0
    n = 0
    for i, item in enumerate(batch):
        prompt, gen = list(item["prompt"]), list(item["gen"])
        if not prompt:
            raise ValueError(f"batch[{i}]: empty prompt")
        if not gen:
            continue
        full = prompt + gen
        P0 = len(prompt)
        if mode == "teacher-forced":
            pos = torch.arange(P0 - 1, P0 - 1 + len(gen))
            tgt = torch.tensor(gen, dtype=torch.long)
            with torch.no_grad():
                pl, _ = model.forward(full[:-1])
            ql, _ = model.forward(full[:-1], adapter=adapter)
            k, nl = _kl_nll(pl[pos], ql[pos], tgt)
            kl_sum, nll_sum = kl_sum + k, nll_sum + nl
        elif mode == "incremental":
            for j in range(len(gen)):
                prefix = full[:P0 + j]
                with torch.no_grad():
                    pl, _ = model.forward(prefix)
                ql, _ = model.forward(prefix, adapter=adapter)
                k, nl = _kl_nll(pl[-1:], ql[-1:], torch.tensor([gen[j]], dtype=torch.long))
                kl_sum, nll_sum = kl_sum + k, nll_sum + nl
        else:
            raise ValueError(f"loss mode {mode!r} is not 'teacher-forced' or 'incremental'")
        n += len(gen)
    if n == 0:
        raise ValueError("loss: the batch has no generated tokens")
    kl, nll = kl_sum / n, nll_sum / n
    loss = alpha * (-kl) + beta * nll
    return {"loss": loss, "kl": kl, "nll": nll, "n_positions": n}


def direction(model, seqs, adapter, mode="activation-diff"):
    """Per-block mean over all tokens of all sequences -> [L, C]."""
    total = torch.zeros(model.L, model.C, dtype=model.dtype)
    n = 0
    with torch.no_grad():
        for s in seqs:
            if not s:
                continue
            _, hb = model.forward(s, want_hidden=True, want_logits=False)
            if mode == "activation-diff":
                _, ha = model.forward(s, adapter=adapter, want_hidden=True, want_logits=False)
                for l in range(model.L):
                    total[l] += (ha[l] - hb[l]).sum(0)
            elif mode == "update-mean":
                for l in range(model.L):
                    total[l] += adapter.update(hb[l], l).sum(0)
            else:
                raise ValueError(f"direction mode {mode!r} is not 'activation-diff' or 'update-mean'")
            n += len(s)
    if n == 0:
        raise ValueError("direction: no tokens")
    return total / n


# --------------------------------------------------------------------------------------
# request handling


class Request:
    def __init__(self, path):
        with open(path) as f:
            self.req = json.load(f)
        self.base = os.path.dirname(os.path.abspath(path))
        dt = self.req.get("dtype", "float64")
        if dt not in ("float64", "float32"):
            raise ValueError(f"{path}: dtype {dt!r} is not 'float64' or 'float32'")
        self.dtype = torch.float64 if dt == "float64" else torch.float32
        self.model = Qwen2Ref(self.path(self.req["model"]), self.dtype)

    def path(self, p):
        return p if os.path.isabs(p) else os.path.join(self.base, p)

    def array(self, v):
        a = np.load(self.path(v)) if isinstance(v, str) else np.array(v, dtype=np.float64)
        return torch.from_numpy(np.array(a, dtype=np.float64)).to(self.dtype)

    def adapter(self, spec, grad=False):
        if spec is None:
            return None
        A, B = self.array(spec["A"]), self.array(spec["B"])
        if grad:
            A.requires_grad_(True)
            B.requires_grad_(True)
        return Adapter(spec.get("kind", "shared"), A, B, spec.get("scaling", 2.0), self.model.L)

    def steer(self, spec):
        if spec is None:
            return None
        d = self.array(spec["directions"])
        if list(d.shape) != [self.model.L, self.model.C]:
            raise ValueError(f"steer: directions shape {list(d.shape)} != [{self.model.L}, {self.model.C}]")
        return Steer(spec.get("scale", 1.0), d, spec.get("blocks"))

    def run(self, task, out_dir):
        op, name = task["op"], task["name"]
        m = self.model
        meta = {"op": op}
        arrays = {}
        if op in ("logits", "hidden"):
            with torch.no_grad():
                logits, hidden = m.forward(task["ids"], adapter=self.adapter(task.get("adapter")),
                                           steer=self.steer(task.get("steer")),
                                           want_hidden=(op == "hidden"), want_logits=(op == "logits"))
            arrays[""] = (logits if op == "logits" else torch.stack(hidden)).double().numpy()
        elif op == "generate":
            ids = m.generate(task["ids"], int(task.get("n", 32)), task.get("stop", ()),
                             adapter=self.adapter(task.get("adapter")), steer=self.steer(task.get("steer")))
            arrays[""] = np.array(ids, dtype=np.int64)
            meta["ids"] = ids
        elif op == "loss":
            ad = self.adapter(task["adapter"], grad=True)
            r = divergence_loss(m, task["batch"], ad, float(task.get("alpha", 1.1)),
                                float(task.get("beta", 0.3)), task.get("mode", "teacher-forced"))
            r["loss"].backward()
            meta.update(loss=float(r["loss"]), kl=float(r["kl"]), nll=float(r["nll"]),
                        n_positions=r["n_positions"])
            arrays[".dA"] = ad.A.grad.double().numpy()
            arrays[".dB"] = ad.B.grad.double().numpy()
        elif op == "direction":
            d = direction(m, task["seqs"], self.adapter(task["adapter"]), task.get("mode", "activation-diff"))
            arrays[""] = d.double().numpy()
        else:
            raise ValueError(f"task {name}: op {op!r} is not logits, hidden, generate, loss or direction")
        for suffix, a in arrays.items():
            np.save(os.path.join(out_dir, name + suffix + ".npy"), a)
            meta["shape" + suffix.replace(".", "_")] = list(a.shape)
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(meta, f)
        return meta


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 2
    torch.set_num_threads(int(os.environ.get("SC_REF_THREADS", "2")))
    req = Request(argv[1])
    os.makedirs(argv[2], exist_ok=True)
    for task in req.req["tasks"]:
        req.run(task, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
