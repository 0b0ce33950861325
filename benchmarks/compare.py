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


def table(res):
    sc, pt = res.get("steerclear", {}), res.get("pytorch", {})
    rows = [("metric", "steerclear", "pytorch", "sc advantage")]
    for name, path, unit, higher in METRICS:
        a, b = get(sc, path), get(pt, path)
        adv = advantage(a, b, higher)
        rows.append((f"{name} [{unit}]", fmt(a), fmt(b), "-" if adv is None else f"{adv:.2f}x"))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}")
        if i == 0:
            print("  ".join("-" * x for x in w))
    print()
    print(f"steerclear: {sc.get('threads', '?')} threads, BLAS: {sc.get('blas', '?')}")
    print(f"pytorch {pt.get('torch', '?')}: {pt.get('threads', '?')} threads, BLAS: {torch_blas(pt)}")
    st = res.get("settings")
    if st:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in st.items()))
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
