#!/usr/bin/env python3
"""summary.py OUT_DIR -- the GPU check's comparison of one search: this project's method
(gpu_bench's "step": sampling with a KV cache, then one teacher-forced pass) against the study's
method in PyTorch (study_torch.py: every new token re-runs the whole prefix through both models),
on the same GPU, for each model shape that has both OUT_DIR/bench-SHAPE.json and
OUT_DIR/study-SHAPE.json. Prints one line per shape with the ratio and its inputs, and the
issue's goal (one search >= 50x faster than the study's method); a second line SHAPE/K for
gpu_bench's "step_lockstep" (K searches sampled together, as the trainer runs a rank's searches:
a search's share of the sampling is 1/K of it). A shape marked * comes from a gpu_bench run that a
time limit cut off after its step (the sections it finished are kept). The study's step is an estimate
from measured token iterations (study_torch.py's "extrapolated"), unless it measured the full
step too; this project's step is measured and its search is 16 (steps_per_search) times it.
Exit status 0 even when a file is missing or the goal is not met (the check records, it does
not judge); 2 on a usage error."""
import glob
import json
import os
import sys

GOAL = 50.0


def load(path):
    """(object, None) or (None, why). A gpu_bench run cut off by its time limit leaves its
    finished sections, one per line, each ending in ',': closed here and marked "truncated"."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        return None, f"{os.path.basename(path)}: {e}"
    try:
        return json.loads(text), None
    except ValueError as e:
        try:
            obj = json.loads(text.rstrip().rstrip(",") + "\n}")
            obj["truncated"] = True
            return obj, None
        except ValueError:
            return None, f"{os.path.basename(path)}: {e}"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    shapes = sorted({os.path.basename(p)[len("bench-"):-len(".json")] for p in glob.glob(f"{out}/bench-*.json")} |
                    {os.path.basename(p)[len("study-"):-len(".json")] for p in glob.glob(f"{out}/study-*.json")})
    print("one search, the study's method / this project's (same GPU; 192 prompts x 128 new tokens unless said):")
    print(f"{'shape':<8} {'ratio':>9}  {'study s/search':>14} {'ours s/search':>13}  inputs")
    for sh in shapes:
        b, eb = load(f"{out}/bench-{sh}.json")
        s, es = load(f"{out}/study-{sh}.json")
        if eb or es or not b.get("step") or not s.get("extrapolated"):
            why = eb or es or ("bench-%s.json has no step (gpu_bench failed before it: %s)" % (sh, b.get("error")) if not b.get("step")
                               else f"study-{sh}.json has no estimate")
            print(f"{sh:<8} {'n/a':>9}  {why}")
            continue
        ex, sp = s["extrapolated"], s["step_shape"]
        full = s["measured"].get("full_step")
        study_search = full["seconds"] * ex["steps_per_search"] if full else ex["search_seconds"]   # measured beats estimated
        its = ", ".join(f"{i['prefix_tokens']}:{i['total']:.4g}" for i in s["measured"]["iterations"])
        study_in = (f"study ({s.get('impl')}, {s.get('dtype')}): "
                    + (f"full step measured {full['seconds']:.4g} s (estimate {ex['step_seconds']:.4g}, ratio {full['estimate_over_measured']})"
                       if full else f"step estimated {ex['step_seconds']:.4g} s")
                    + f" from s/iteration at prefix {its} + AdamW {s['measured']['adamw_seconds']:.3g} s, x {ex['steps_per_search']}")
        for key in ("step", "step_lockstep"):
            st = b.get(key)
            if not st:
                continue
            mismatch = [k for k in ("prompts", "prompt_tokens", "new_tokens") if st.get(k) != sp.get(k)]
            if st.get("steps_per_search") != ex.get("steps_per_search"):
                mismatch.append("steps_per_search")
            K = st.get("searches_sampled_together", 1)
            ratio = study_search / st["search_seconds"] if st["search_seconds"] > 0 else float("inf")
            label = sh if K == 1 else f"{sh}/{K}"
            if b.get("truncated"):
                label += "*"   # gpu_bench did not finish (time limit): its finished sections only
            print(f"{label:<8} {ratio:>8.1f}x  {study_search:>14.2f} {st['search_seconds']:>13.3f}  "
                  f"ours{' alone' if K == 1 else f' in lock-step with {K} searches'}: step {st['seconds']:.4g} s "
                  f"(sampling {st['sampling_seconds']:.4g}{f' / {K}' if K > 1 else ''} + teacher-forced {st['teacher_forced_seconds']:.4g}) "
                  f"x {st['steps_per_search']}; {study_in}; shape {sp['prompts']} prompts x {sp['prompt_tokens']} + {sp['new_tokens']} tokens"
                  + (f"; SHAPES DIFFER in {', '.join(mismatch)}" if mismatch else "")
                  + f"; goal >= {GOAL:.0f}x {'met' if ratio >= GOAL and not mismatch else 'NOT met'}")
    gpus = {s.get("gpu") for sh in shapes for s in [load(f"{out}/study-{sh}.json")[0]] if s}
    names = ", ".join(str(g) if g else "none (cpu)" for g in gpus)
    print("GPU: " + (names or "unknown"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
