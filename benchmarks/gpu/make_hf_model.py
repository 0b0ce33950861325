#!/usr/bin/env python3
"""make_hf_model.py PRESET OUT_DIR [SEED] -- a random Qwen2ForCausalLM written by Hugging Face
transformers itself (save_pretrained: config.json + safetensors, BF16), so that steerclear's
loader and engine are checked on files it did not write. Presets: tiny (3 blocks, hidden 128,
vocab 1000), qwen2.5-0.5b-shape, qwen2.5-14b-shape (the shapes of the real models; weights
N(0, 0.05), norms 1 + N(0, 0.1), biases N(0, 0.05) so that every term matters). Also writes
OUT_DIR/ids.txt: 48 random token ids for a logits comparison. Built on the GPU when there is one."""
import sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

PRESETS = {
    "tiny": dict(num_hidden_layers=3, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=352, vocab_size=1000, tie_word_embeddings=False),
    "qwen2.5-0.5b-shape": dict(num_hidden_layers=24, hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
                               intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-14b-shape": dict(num_hidden_layers=48, hidden_size=5120, num_attention_heads=40, num_key_value_heads=8,
                              intermediate_size=13824, vocab_size=152064, tie_word_embeddings=False),
}


def main():
    preset, out = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    cfg = Qwen2Config(**PRESETS[preset], max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      use_sliding_window=False)
    torch.manual_seed(seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.copy_(1 + 0.1 * torch.randn_like(p, dtype=torch.float32))
                else:
                    p.copy_(0.05 * torch.randn_like(p, dtype=torch.float32))
    model.save_pretrained(out, safe_serialization=True)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (48,), generator=g).tolist()
    with open(f"{out}/ids.txt", "w") as f:
        f.write(" ".join(str(i) for i in ids) + "\n")
    print(f"make_hf_model: {preset} -> {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, BF16, on {dev})")


if __name__ == "__main__":
    main()
