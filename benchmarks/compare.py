#!/usr/bin/python3
"""Benchmark results: side-by-side table and regression check against a baseline.

    compare.py table RESULTS.json
        print metric, steerclear, pytorch, ratio (how many times better steerclear is;
        > 1 means ahead) and which BLAS each side used.
    compare.py check RESULTS.json BASELINE.json [--strict] [--tolerance 0.10]
        flag every steerclear metric more than --tolerance (10%) worse than the baseline;
        with --strict exit 1 when any is flagged. Metrics missing on either side, or
        measured with different settings (new tokens, reps), are reported and skipped.

RESULTS.json is what scripts/bench.sh writes: {"date", "settings", "steerclear": <bench_engine
JSON>, "pytorch": <bench_torch.py JSON>}. Standard library only.
"""

import json
import statistics
import sys

# (name, path in the JSON, unit, higher_is_better)
METRICS = [
    ("prefill tokens/s (128)", ("prefill", "tokens_per_s"), "tok/s", True),
    ("decode tokens/s batch 1", ("decode", "batch1", "decode_tokens_per_s"), "tok/s", True),
    ("decode tokens/s batch 8", ("decode", "batch8", "decode_tokens_per_s"), "tok/s", True),
    ("search step seconds", ("step", "total_seconds"), "s", False),
    ("peak RSS MB", ("peak_rss_mb",), "MB", False),
]


def get(d, path):
    for k in path:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return float(d)


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def advantage(ours, theirs, higher):
    """How many times better ours is (> 1: ahead)."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    return ours / theirs if higher else theirs / ours


def torch_blas(t):
    cfg = t.get("blas_config") or {}
    libs = t.get("blas_libs") or []
    s = cfg.get("BLAS_INFO", "?")
    if libs:
        s += " (" + ", ".join(libs) + ")"
    return s


def flops(res, side, what):
    """Arithmetic of one unit of a metric (a token, or the whole step), from the model's shape:
    every GEMM (2 flops per multiply-add) and attention's two products over the context."""
    c = side.get("config") or {}
    st = res.get("settings") or {}
    try:
        L, C, NH, KVH, HD, I, V = (int(c[k]) for k in ("L", "C", "NH", "KVH", "HD", "I", "V"))
    except (KeyError, TypeError, ValueError):
        return None
    fb = 2 * L * (C * NH * HD + 2 * C * KVH * HD + NH * HD * C + 3 * C * I)   # blocks, per token
    fh = 2 * C * V                                                            # LM head, per row
    fa = 4 * L * NH * HD                                                      # attention, per (token, position)
    P = int(st.get("prompt_tokens", 128))
    if what == "prefill":   # per token: the whole prompt, the head on its last row
        return (P * fb + fh + fa * P * (P + 1) / 2) / P
    if what.startswith("decode"):   # per generated token, at the mean context
        N = int(st.get("decode_new_tokens", 64))
        return fb + fh + fa * (P + N / 2)
    if what == "step":   # the whole step: sampling, P and Q teacher-forced, Q's backward (dx only)
        s = side.get("step") or {}
        B, P0 = int(s.get("batch", 12)), int(s.get("prompt_tokens", 32))
        N = int(s.get("new_tokens", st.get("step_new_tokens", 8)))
        g = s.get("generated_tokens")
        n = g / B if g else N   # sampled tokens per prompt (steerclear stops at stop tokens)
        T = P0 + n - 1
        sample = B * P0 * fb + B * fh + (n - 1) * B * (fb + fh) + fa * B * ((P0 + n) ** 2) / 2
        tf = 3 * B * T * fb + 3 * B * n * fh + 4.5 * fa * B * T * T / 2
        return sample + tf
    return None


PEAK_NAMES = (("avx2_fma", "AVX2 FMA"), ("avx512_fma", "AVX-512 FMA"), ("avx512_bf16_dot", "BF16 dot"))


def stats(side, key, path, higher):
    vals = (side.get("rounds") or {}).get(key)
    if not vals:
        v = get(side, path)
        vals = [v] if v is not None else []
    if not vals:
        return None, None, 0
    best = max(vals) if higher else min(vals)
    return best, statistics.median(vals), len(vals)


ROUND_KEYS = {"prefill": "prefill", "decode": None, "step": "step"}


def table(res):
    sc, pt = res.get("steerclear", {}), res.get("pytorch", {})
    peaks = res.get("peaks_gflops") or {}
    rows = [("metric", "sc best", "sc median", "torch best", "torch median", "ratio best", "ratio median",
             "sc GFLOP/s", "share of peaks (" + " / ".join(n for k, n in PEAK_NAMES if k in peaks) + ")")]
    for name, path, unit, higher in METRICS:
        key = {"prefill": "prefill", "step": "step"}.get(path[0])
        if path[0] == "decode":
            key = "decode_" + path[1]
        a, am, an = stats(sc, key, path, higher) if key else (get(sc, path), None, 1)
        b, bm, bn = stats(pt, key, path, higher) if key else (get(pt, path), None, 1)
        adv, advm = advantage(a, b, higher), advantage(am, bm, higher)
        gf, share = "-", "-"
        if key and a:
            f = flops(res, sc, key)
            if f:
                rate = (f * a if higher else f / a) / 1e9
                gf = f"{rate:.0f}"
                share = " / ".join(f"{100 * rate / peaks[k]:.0f}%" for k, _ in PEAK_NAMES if peaks.get(k))
        rows.append((f"{name} [{unit}]", fmt(a), fmt(am), fmt(b), fmt(bm), "-" if adv is None else f"{adv:.2f}x",
                     "-" if advm is None else f"{advm:.2f}x", gf, share))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print(f"{r[0]:<{w[0]}}  " + "  ".join(f"{r[j]:>{w[j]}}" for j in range(1, len(r))))
        if i == 0:
            print("  ".join("-" * x for x in w))
    print()
    print("ratio: how many times better steerclear is (> 1: ahead); best = min time / max rate over the rounds")
    if peaks:
        print("measured peaks (build/benchmarks/bench_peak, GFLOP/s over the threads' CPU time): " +
              ", ".join(f"{n} {peaks[k]:.0f}" for k, n in PEAK_NAMES if k in peaks))
    print(f"steerclear: {sc.get('backend', '?')}, precision {sc.get('precision', '?')}, {sc.get('threads', '?')} threads, "
          f"OpenBLAS kernel {sc.get('blas_core', '?')}, BLAS: {sc.get('blas', '?')}")
    print(f"pytorch {pt.get('torch', '?')}: {pt.get('threads', '?')} threads, OpenBLAS kernel {pt.get('blas_core', '?')}, "
          f"one-row products {pt.get('one_row_products', 'F.linear')}, BLAS: {torch_blas(pt)}")
    st = res.get("settings")
    if st:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in st.items()))
    if res.get("load_before"):
        print(f"load average (1, 5, 15 min) before: {' '.join(res['load_before'])}, after: {' '.join(res.get('load_after', []))} "
              f"(this machine has {sc.get('threads', '?')} threads for the benchmark; above that, other work shares the cores)")
    return 0


def check(res, base, strict, tol):
    if res.get("settings") != base.get("settings"):
        print(f"compare: settings differ from the baseline ({res.get('settings')} vs {base.get('settings')}); "
              "the check uses only metrics measured the same way")
    sc, bs = res.get("steerclear", {}), base.get("steerclear", {})
    same = {
        "prefill": True,
        "decode": get(sc, ("decode", "batch1", "new_tokens")) == get(bs, ("decode", "batch1", "new_tokens")),
        "step": get(sc, ("step", "new_tokens")) == get(bs, ("step", "new_tokens")),
        "peak_rss_mb": get(sc, ("step", "new_tokens")) == get(bs, ("step", "new_tokens")),
    }
    bad = 0
    for name, path, unit, higher in METRICS:
        a, b = get(sc, path), get(bs, path)
        if a is None or b is None:
            print(f"  skip  {name}: missing in {'results' if a is None else 'baseline'}")
            continue
        if not same.get(path[0], True):
            print(f"  skip  {name}: measured with other settings than the baseline")
            continue
        worse = (b - a) / b if higher else (a - b) / b   # fraction worse than the baseline
        tag = "WORSE" if worse > tol else "ok"
        bad += worse > tol
        print(f"  {tag:<5} {name}: {fmt(a)} {unit} vs baseline {fmt(b)} ({-100 * worse:+.1f}%)")
    if bad:
        print(f"compare: {bad} metric(s) more than {100 * tol:.0f}% worse than the baseline")
        return 1 if strict else 0
    print(f"compare: no metric more than {100 * tol:.0f}% worse than the baseline")
    return 0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"compare: {path}: {e}")


def main(argv):
    if len(argv) >= 2 and argv[0] == "table":
        return table(load(argv[1]))
    if len(argv) >= 3 and argv[0] == "check":
        strict, tol = "--strict" in argv[3:], 0.10
        if "--tolerance" in argv[3:]:
            i = argv.index("--tolerance")
            if i + 1 >= len(argv):
                sys.exit("compare: --tolerance needs a value (e.g. 0.10)")
            tol = float(argv[i + 1])
        return check(load(argv[1]), load(argv[2]), strict, tol)
    print(__doc__, file=sys.stderr if argv[:1] not in (["-h"], ["--help"]) else sys.stdout)
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
