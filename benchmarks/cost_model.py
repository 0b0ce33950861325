#!/usr/bin/python3
"""A cost model of the study (`steerclear run`) on G GPUs: how long the 14B study takes with
search groups of P pipeline stages, from per-block arithmetic and memory traffic, GPU throughput and
link bandwidth. Every number below is an assumption (a flag changes it); nothing here is measured
on a GPU. What it models is what src/dist does (search groups, and pipelines of P stages: src/dist/pipeline.c):

  search stage   ceil(S / groups) waves of one search per group; a search is `steps` optimizer steps
  one step       sampling: max_new decode steps of the batch from Q; every decode step reads all
                 weights once (memory bound at batch 12) and crosses every stage boundary once
                 (one hidden row per sequence); the stages do not overlap while sampling
                 teacher forcing: forward P + forward Q + backward Q (input gradients only: the
                 adapter is tiny) = 3 passes of 2 * params * T flops, plus the LM head for P and Q
                 and its backward; with P stages and m micro-batches (GPipe) the compute takes
                 (work / P) * (m + P - 1) / m (bubble (P - 1) / m); bytes across each boundary:
                 3 * T * hidden * 4 (fp32 hidden states)
  later stages   the generation of extract and evaluate (decode bound: every decode step of a
                 chunk of gen_batch sequences reads all weights once) in whole chunks divided over
                 the groups (src/dist/later.c): ceil(chunks / groups) chunks each; with P > 1 a
                 chunk's decode steps cross the stages one after another (no overlap). The extract
                 stage's teacher-forced sums and the judge's API time are not modelled
  memory         bf16 weights / P + KV cache + saved activations must fit one GPU: the smallest
                 such P is used (G must be a multiple of P)

  /usr/bin/python3 benchmarks/cost_model.py                    # the table for 1..48 GPUs
  /usr/bin/python3 benchmarks/cost_model.py --check R1 RN N    # predicted vs measured CPU runs:
      R1 a run directory of S searches on 1 rank, RN the same study on N ranks; the model predicts
      RN's search stage from R1's per-search time (ceil(S / N) waves) and prints both
"""
import argparse, json, math, sys

P_BLOCK = lambda C, I, KVD: 2 * C * C + 2 * C * KVD + 3 * C * I      # weights of one Qwen2 block


def model_args(ap):
    ap.add_argument("--layers", type=int, default=48)          # Qwen2.5-14B
    ap.add_argument("--hidden", type=int, default=5120)
    ap.add_argument("--inter", type=int, default=13824)
    ap.add_argument("--kv-dim", type=int, default=1024)        # 8 KV heads x 128
    ap.add_argument("--vocab", type=int, default=152064)
    ap.add_argument("--searches", type=int, default=20)
    ap.add_argument("--steps", type=int, default=16)           # 192 prompts / batches of 12
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--prompt", type=int, default=70)          # mean prompt tokens (chat template included)
    ap.add_argument("--new", type=int, default=128)            # sampled tokens per prompt
    ap.add_argument("--extract-seqs", type=int, default=486 * 21)   # (train + test) x (20 searches + base)
    ap.add_argument("--extract-new", type=int, default=50)
    ap.add_argument("--eval-seqs", type=int, default=96 * 41)       # test x (base + 20 adapters + 20 directions)
    ap.add_argument("--eval-new", type=int, default=100)
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--tflops", type=float, default=989.0)     # bf16 dense peak per GPU (H100/H200 SXM)
    ap.add_argument("--mfu", type=float, default=0.35)         # fraction of peak reached in prefill/backward
    ap.add_argument("--hbm", type=float, default=4.0e12)       # bytes/s reached reading weights (H200: 4.8 peak)
    ap.add_argument("--gpu-mem", type=float, default=141e9)
    ap.add_argument("--link", type=float, default=25e9)        # bytes/s between stages (200 Gb/s InfiniBand)
    ap.add_argument("--latency", type=float, default=10e-6)    # s per message
    ap.add_argument("--gpus", default="1,2,3,4,6,8,12,16,20,24,32,40,48")


def step_time(a, P):
    """Seconds of one optimizer step of one search on a group of P stages, and bytes moved per step."""
    W = a.layers * P_BLOCK(a.hidden, a.inter, a.kv_dim) + 2 * a.vocab * a.hidden   # parameters
    T = a.batch * (a.prompt + a.new)
    flop = a.tflops * 1e12 * a.mfu
    # sampling: new decode steps, each reading every weight once (bf16), plus the prompt prefill
    decode = a.new * (2 * W / a.hbm + (P - 1) * (a.latency + a.batch * a.hidden * 4 / a.link))
    prefill = 2 * W * a.batch * a.prompt / flop
    # teacher forcing: 3 passes through the blocks, the head twice forward and once backward
    blocks = 3 * 2 * (W - 2 * a.vocab * a.hidden) * T / flop
    head = 3 * 2 * a.vocab * a.hidden * T / flop
    m = min(a.batch, 4 * P) if P > 1 else 1                    # micro-batches (sequences)
    bubble = (m + P - 1) / m
    tf = (blocks / P) * bubble + head
    bytes_step = 3 * T * a.hidden * 4 * (P - 1) + a.new * a.batch * a.hidden * 4 * (P - 1)
    comm = bytes_step / a.link + 3 * (P - 1) * m * a.latency
    return decode + prefill + tf + comm, bytes_step


def fits(a, P):
    W = a.layers * P_BLOCK(a.hidden, a.inter, a.kv_dim) + 2 * a.vocab * a.hidden
    T = a.batch * (a.prompt + a.new)
    kv = 2 * a.layers / P * a.batch * (a.prompt + a.new) * a.kv_dim * 4
    acts = a.layers / P * T * (4 * a.hidden + 2 * a.inter) * 4          # saved activations, fp32
    return 2 * W / P + kv + acts + 4 * T * a.hidden * 4 < 0.9 * a.gpu_mem


def later_time(a, groups):
    W = a.layers * P_BLOCK(a.hidden, a.inter, a.kv_dim) + 2 * a.vocab * a.hidden
    per_batch = lambda new: new * 2 * W / a.hbm
    return (math.ceil(math.ceil(a.extract_seqs / a.gen_batch) / groups) * per_batch(a.extract_new)
            + math.ceil(math.ceil(a.eval_seqs / a.gen_batch) / groups) * per_batch(a.eval_new))


def table(a):
    print("| GPUs | stages P | groups | step (s) | MB / step | search stage (min) | later stages (min) | total (min) | speed-up |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = None
    for G in [int(g) for g in a.gpus.split(",")]:
        P = next((p for p in range(1, G + 1) if G % p == 0 and fits(a, p)), None)
        if P is None:
            print("| %d | - | - | - | - | does not fit | | | |" % G)
            continue
        groups = G // P
        t, b = step_time(a, P)
        search = math.ceil(a.searches / groups) * a.steps * t
        r0 = later_time(a, groups)
        total = search + r0
        base = base or total
        print("| %d | %d | %d | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f |" % (G, P, groups, t, b / 1e6, search / 60, r0 / 60, total / 60, base / total))


def check(r1, rn, n):
    def load(d):
        st = json.load(open(d + "/stages.json"))["stages"]["search"]["wall_s"]
        searches = json.load(open(d + "/config.json"))["search"]["searches"]
        return st, searches
    t1, s1 = load(r1)
    tn, sn = load(rn)
    per = t1 / s1
    pred = math.ceil(sn / n) * per
    print("1 rank: %d searches in %.1f s (%.2f s each); %d ranks, %d searches: predicted %.1f s, measured %.1f s (measured / predicted %.2f)"
          % (s1, t1, per, n, sn, pred, tn, tn / pred))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_args(ap)
    ap.add_argument("--check", nargs=3, metavar=("RUN_1", "RUN_N", "N"))
    a = ap.parse_args()
    if a.check:
        check(a.check[0], a.check[1], int(a.check[2]))
    else:
        table(a)


if __name__ == "__main__":
    sys.exit(main())
