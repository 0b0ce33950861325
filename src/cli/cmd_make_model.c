// cmd_make_model.c — `steerclear make-model`: parse options, start from a preset, apply
// explicit overrides (the architecture too: --arch qwen2 | qwen3), write a random model
// directory (see src/model/make_model.c).
#include "steerclear/cli.h"
#include "steerclear/make_model.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: steerclear make-model --preset NAME --tokenizer PATH --out DIR [options]\n"
        "\n"
        "Write a random Qwen2-family model (qwen2 or qwen3) in the Hugging Face layout:\n"
        "config.json, model.safetensors (or shards + model.safetensors.index.json) and\n"
        "tokenizer.json. The same options and seed give the same files.\n"
        "\n"
        "  --preset NAME        tiny | qwen2.5-0.5b-shape | qwen2.5-14b-shape | qwen3-0.6b-shape\n"
        "                       (required)\n"
        "  --tokenizer PATH     tokenizer.json to copy; the vocab must cover its ids (required);\n"
        "                       tokenizer_config.json (the chat template) beside it is copied too\n"
        "  --out DIR            output directory, created if needed (required)\n"
        "  --seed S             random seed (default 1234)\n"
        "  --dtype T            bf16 | f16 | f32 (default: the preset's, bf16)\n"
        "  --shard-mb N         split into shards of at most N MB (1 MB = 10^6 bytes)\n"
        "overrides of the preset:\n"
        "  --arch A             qwen2 | qwen3 (default: the preset's; qwen2 except qwen3-0.6b-shape).\n"
        "                       qwen3 adds per-head q/k RMSNorms, drops the q/k/v biases and\n"
        "                       writes head_dim in config.json\n"
        "  --attention-bias     qwen3 only: keep q/k/v biases (\"attention_bias\": true)\n"
        "  --head-dim N         head size; need not be hidden / heads (default: the preset's,\n"
        "                       or hidden / heads when --hidden or --heads is given)\n"
        "  --layers N --hidden N --heads N --kv-heads N --intermediate N\n"
        "  --vocab N --rope-theta X --max-position N (the context) --tie-embeddings | --untie-embeddings\n");
}

int sc_cmd_make_model(int argc, char **argv) {
    enum { O_PRESET = 1000, O_TOK, O_OUT, O_SEED, O_DTYPE, O_SHARD, O_LAYERS, O_HIDDEN, O_HEADS, O_KVH,
           O_HD, O_INTER, O_VOCAB, O_THETA, O_TIE, O_UNTIE, O_MAXPOS, O_ARCH, O_ABIAS, O_HELP };
    static const struct option longopts[] = {
        {"preset", required_argument, 0, O_PRESET}, {"tokenizer", required_argument, 0, O_TOK},
        {"out", required_argument, 0, O_OUT}, {"seed", required_argument, 0, O_SEED},
        {"dtype", required_argument, 0, O_DTYPE}, {"shard-mb", required_argument, 0, O_SHARD},
        {"layers", required_argument, 0, O_LAYERS}, {"hidden", required_argument, 0, O_HIDDEN},
        {"heads", required_argument, 0, O_HEADS}, {"kv-heads", required_argument, 0, O_KVH},
        {"head-dim", required_argument, 0, O_HD}, {"intermediate", required_argument, 0, O_INTER},
        {"vocab", required_argument, 0, O_VOCAB}, {"rope-theta", required_argument, 0, O_THETA},
        {"tie-embeddings", no_argument, 0, O_TIE}, {"untie-embeddings", no_argument, 0, O_UNTIE},
        {"max-position", required_argument, 0, O_MAXPOS}, {"arch", required_argument, 0, O_ARCH},
        {"attention-bias", no_argument, 0, O_ABIAS},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
    };
    const char *preset = NULL, *tokenizer = NULL, *out = NULL, *dtype = NULL, *arch = NULL;
    int attention_bias = 0;
    unsigned long long seed = 1234;
    int shard_mb = 0, layers = 0, hidden = 0, heads = 0, kvh = 0, hd = 0, inter = 0, vocab = 0, tie = -1;
    float theta = 0;
    int max_pos = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case O_PRESET: preset = optarg; break;
        case O_TOK: tokenizer = optarg; break;
        case O_OUT: out = optarg; break;
        case O_DTYPE: dtype = optarg; break;
        case O_SEED: ok = sc_cli_parse_u64("--seed", optarg, &seed); break;
        case O_SHARD: ok = sc_cli_parse_int("--shard-mb", optarg, 1, &shard_mb); break;
        case O_LAYERS: ok = sc_cli_parse_int("--layers", optarg, 1, &layers); break;
        case O_HIDDEN: ok = sc_cli_parse_int("--hidden", optarg, 1, &hidden); break;
        case O_HEADS: ok = sc_cli_parse_int("--heads", optarg, 1, &heads); break;
        case O_KVH: ok = sc_cli_parse_int("--kv-heads", optarg, 1, &kvh); break;
        case O_HD: ok = sc_cli_parse_int("--head-dim", optarg, 1, &hd); break;
        case O_INTER: ok = sc_cli_parse_int("--intermediate", optarg, 1, &inter); break;
        case O_VOCAB: ok = sc_cli_parse_int("--vocab", optarg, 1, &vocab); break;
        case O_THETA:
            ok = sc_cli_parse_float("--rope-theta", optarg, &theta);
            if (ok && !(theta > 0)) { sc_errorf(SC_ERR_ARG, "--rope-theta '%s' is not a positive number", optarg); ok = 0; }
            break;
        case O_MAXPOS: ok = sc_cli_parse_int("--max-position", optarg, 1, &max_pos); break;
        case O_ARCH: arch = optarg; break;
        case O_ABIAS: attention_bias = 1; break;
        case O_TIE: tie = 1; break;
        case O_UNTIE: tie = 0; break;
        case 'h': case O_HELP: usage(stdout); return 0;
        default:
            sc_errorf(SC_ERR_ARG, "unknown or incomplete option '%s' (see steerclear make-model --help)", argv[optind - 1]);
            ok = 0;
        }
        if (!ok) return sc_cli_bad_input("make-model");
    }
    if (!sc_cli_no_positional("make-model", argc, argv, optind)) return sc_cli_bad_input("make-model");
    if (!preset) { sc_errorf(SC_ERR_ARG, "--preset is required (" SC_MAKE_MODEL_PRESETS ")"); return sc_cli_fail("make-model"); }
    if (!tokenizer) { sc_errorf(SC_ERR_ARG, "--tokenizer PATH (a tokenizer.json) is required"); return sc_cli_fail("make-model"); }
    if (!out) { sc_errorf(SC_ERR_ARG, "--out DIR is required"); return sc_cli_fail("make-model"); }

    sc_make_model_opts o;
    memset(&o, 0, sizeof o);
    if (sc_make_model_preset(preset, &o) != SC_OK) return sc_cli_fail("make-model");
    sc_model_config *cfg = &o.cfg;
    if (arch) {
        if (!strcmp(arch, "qwen2")) cfg->arch = SC_ARCH_QWEN2;
        else if (!strcmp(arch, "qwen3")) cfg->arch = SC_ARCH_QWEN3;
        else { sc_errorf(SC_ERR_ARG, "--arch '%s' is not one of qwen2, qwen3", arch); return sc_cli_fail("make-model"); }
    }
    if (attention_bias) {
        if (cfg->arch != SC_ARCH_QWEN3) {
            sc_errorf(SC_ERR_ARG, "--attention-bias is for --arch qwen3 (qwen2 models always have q/k/v biases)");
            return sc_cli_fail("make-model");
        }
        cfg->attention_bias = 1;
    }
    if (layers) cfg->n_layers = layers;
    if (hidden) cfg->hidden = hidden;
    if (heads) cfg->n_heads = heads;
    if (kvh) cfg->n_kv_heads = kvh;
    if (inter) cfg->intermediate = inter;
    if (vocab) cfg->vocab = vocab;
    if (theta > 0) cfg->rope_theta = theta;
    if (max_pos) cfg->max_position = max_pos;
    if (tie >= 0) cfg->tie_embeddings = tie;
    // head dim: explicit, else derived again when the hidden size or head count changed
    if (hd) cfg->head_dim = hd;
    else if (hidden || heads) cfg->head_dim = 0;
    if (dtype) {
        if (!strcmp(dtype, "bf16")) o.dtype = SC_DTYPE_BF16;
        else if (!strcmp(dtype, "f16")) o.dtype = SC_DTYPE_F16;
        else if (!strcmp(dtype, "f32")) o.dtype = SC_DTYPE_F32;
        else { sc_errorf(SC_ERR_ARG, "--dtype '%s' is not one of bf16, f16, f32", dtype); return sc_cli_fail("make-model"); }
    }
    o.seed = (uint64_t)seed;
    o.shard_bytes = (size_t)shard_mb * 1000000u;
    o.tokenizer = tokenizer;
    if (sc_make_model(out, &o) != SC_OK) return sc_cli_fail("make-model");
    printf("%s\n", out);
    return 0;
}
