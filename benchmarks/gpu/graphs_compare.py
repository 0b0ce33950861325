"""Decode op by op against decode steps in CUDA graphs (SC_CUDA_GRAPHS=1), from the gpu_bench
runs check.sh appends to OUT/graphs-bB-gG.jsonl (G = 0 off, 1 on; the sides alternated): one line
per batch size with the best ms per step of each side and their ratio.
Usage: graphs_compare.py OUT_DIR"""
import json
import sys


def decodes(out, b, g):
    try:
        text = open(f"{out}/graphs-b{b}-g{g}.jsonl").read()
    except OSError:
        return []
    runs, dec = [], json.JSONDecoder()
    i = 0
    while True:   # gpu_bench prints one pretty JSON object per run; the runs follow each other
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            break   # a run cut off by its time limit
        runs.append(obj)
    return [r["decode"] for r in runs if r.get("ok") and r.get("decode")]


def main():
    out = sys.argv[1]
    for b in (1, 8):
        off, on = decodes(out, b, 0), decodes(out, b, 1)
        if not off or not on:
            print(f"decode 0.5b batch {b}: no result with and without CUDA graphs")
            continue
        mo = min(r["ms_per_step"] for r in off)
        mg = min(r["ms_per_step"] for r in on)
        print(f"decode 0.5b batch {b}: {mo:.3f} ms/step op by op, {mg:.3f} ms/step in CUDA graphs "
              f"({on[-1].get('graphs', 0)} graphs in the last run): graphs {mo / mg:.2f}x (best of {len(off)} and {len(on)} runs)")


if __name__ == "__main__":
    main()
