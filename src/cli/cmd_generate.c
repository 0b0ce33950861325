// cmd_generate.c — `steerclear generate` (sample a continuation, optionally steered) and
// `steerclear logits` (write the logits of a text as .npy).
#include "steerclear/chat.h"
#include "steerclear/cli.h"
#include "steerclear/generate.h"
#include "steerclear/npy.h"
#include "steerclear/results.h"
#include "steerclear/safetensors.h"
#include "steerclear/steer.h"
#include "steerclear/tok.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sc_status load_model_and_tok(const char *dir, size_t budget, sc_device device, const char *precision, sc_backend **be,
                                    sc_model **m, sc_tokenizer **tok) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    sc_backend_opts bo;
    sc_backend_opts_default(&bo);
    bo.memory_budget = budget;
    bo.device = device;
    bo.precision = precision;
    SC_TRY(sc_backend_create(&bo, be));
    sc_status st = sc_model_load(dir, 0, -1, *be, m);
    if (!st) st = sc_tok_load(path, tok);
    if (st) { sc_model_free(*m); *m = NULL; sc_backend_free(*be); *be = NULL; }
    return st;
}

// Directions [L][C] from RUN_DIR:SEARCH (results.h5 /directions) or a safetensors file with
// direction.<l> tensors.
static sc_status load_directions(const char *spec, const char *file, int L, int C, float **out) {
    float *d = calloc((size_t)L * C, sizeof(float));
    if (!d) return sc_errorf(SC_ERR_MEM, "out of memory");
    if (spec) {
        const char *colon = strrchr(spec, ':');
        if (!colon || colon == spec) { free(d); return sc_errorf(SC_ERR_ARG, "--direction '%s': expected RUN_DIR:SEARCH, e.g. results/run1:3", spec); }
        int search = 0;
        if (!sc_cli_parse_int("--direction SEARCH", colon + 1, 0, &search)) { free(d); return SC_ERR_ARG; }
        char run_dir[4096];
        snprintf(run_dir, sizeof run_dir, "%.*s", (int)(colon - spec), spec);
        sc_run *run = NULL;
        sc_status st = sc_run_open(run_dir, SC_RUN_READ, NULL, &run);
        if (!st) st = sc_results_read_direction(run, search, L, C, d);   // search N, through /direction_searches
        sc_run_close(run);
        if (st) { free(d); return st; }
    } else {
        sc_safetensors *st_file = NULL;
        sc_status st = sc_st_open_file(file, &st_file);
        if (st) { free(d); return st; }
        int found = 0;
        for (size_t i = 0; i < sc_st_count(st_file); i++) {   // every direction.* tensor must be one of this model's blocks
            const char *name = sc_st_get(st_file, i)->name;
            int l = -1, end = 0;
            if (strncmp(name, "direction.", 10)) continue;
            if (sscanf(name + 10, "%d%n", &l, &end) != 1 || name[10 + end] || l < 0 || l >= L) {
                sc_st_close(st_file); free(d);
                return sc_errorf(SC_ERR_SHAPE, "%s: tensor %s is not direction.<block> for one of the model's %d blocks (0..%d)", file, name, L, L - 1);
            }
            found++;
        }
        if (!found) {
            sc_st_close(st_file); free(d);
            return sc_errorf(SC_ERR_FORMAT, "%s has no direction.<block> tensors: it is not a steering-direction file (see `steerclear extract`)", file);
        }
        for (int l = 0; l < L; l++) {
            char name[64];
            snprintf(name, sizeof name, "direction.%d", l);
            const sc_st_tensor *t = sc_st_find(st_file, name);
            if (!t) continue;   // blocks without a vector stay unsteered
            if (t->dtype != SC_DTYPE_F32 || t->ndim != 1 || t->shape[0] != C) { sc_st_close(st_file); free(d); return sc_errorf(SC_ERR_SHAPE, "%s: tensor %s must be F32 [%d]", file, name, C); }
            memcpy(d + (size_t)l * C, t->data, sizeof(float) * (size_t)C);
        }
        sc_st_close(st_file);
    }
    *out = d;
    return SC_OK;
}

static void generate_usage(FILE *f) {
    fprintf(f, "usage: steerclear generate --model DIR --prompt TEXT [options]\n"
               "  --max-new-tokens N   (64)      --temperature T (1.0)   --top-k K (0 = off)\n"
               "  --top-p P (1.0 = off)          --seed S (0)            --greedy\n"
               "  --chat                wrap TEXT as a user turn of the model's chat template (its\n"
               "                        tokenizer_config.json; plain ChatML without one)\n"
               "  --system TEXT         with --chat: the system message (replaces the template's default;\n"
               "                        --system '' gives an empty system turn)\n"
               "  --no-system           with --chat: no system turn, not even the template's default\n"
               "  --no-think            with --chat, Qwen3: enable_thinking=false (empty think block)\n"
               "  --show-prompt         print the prompt as the model sees it, then a line\n"
               "                        '--- continuation ---', then the continuation\n"
               "  --direction RUN_DIR:SEARCH | --direction-file F.safetensors   steer with a direction\n"
               "  --scale X (2.0)       --blocks FIRST:LAST  (steer blocks [FIRST, LAST) only)\n"
               "  --memory-budget SIZE  memory this process may use, e.g. 16G\n"
               "  --device cpu|cuda     where the model runs (default cpu)\n"
               SC_CLI_PRECISION_HELP);
}

int sc_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *dir_spec = NULL, *dir_file = NULL;
    sc_sample_opts so;
    sc_sample_opts_default(&so);
    so.max_new_tokens = 64;
    float scale = 2.0f;
    int chat = 0, first = 0, last = -1, no_system = 0, no_think = 0, show_prompt = 0;
    const char *system_msg = NULL;
    size_t budget = 0;
    sc_device device = SC_DEVICE_CPU;
    const char *precision = NULL;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"max-new-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 't'},
        {"top-k", required_argument, 0, 'k'}, {"top-p", required_argument, 0, 'P'}, {"seed", required_argument, 0, 's'},
        {"greedy", no_argument, 0, 'g'}, {"chat", no_argument, 0, 'c'}, {"direction", required_argument, 0, 'd'},
        {"direction-file", required_argument, 0, 'f'}, {"scale", required_argument, 0, 'x'},
        {"blocks", required_argument, 0, 'b'}, {"memory-budget", required_argument, 0, 'M'},
        {"system", required_argument, 0, 'S'}, {"no-system", no_argument, 0, 'N'}, {"no-think", no_argument, 0, 'T'},
        {"show-prompt", no_argument, 0, 'w'}, {"device", required_argument, 0, 'D'}, {"precision", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': ok = sc_cli_parse_int("--max-new-tokens", optarg, 1, &so.max_new_tokens); break;
        case 't': ok = sc_cli_parse_float("--temperature", optarg, &so.temperature); break;
        case 'k': ok = sc_cli_parse_int("--top-k", optarg, 0, &so.top_k); break;
        case 'P': ok = sc_cli_parse_float("--top-p", optarg, &so.top_p); break;
        case 's': ok = sc_cli_parse_seed("--seed", optarg, &so.seed); break;
        case 'g': so.greedy = 1; break;
        case 'c': chat = 1; break;
        case 'S': system_msg = optarg; break;
        case 'N': no_system = 1; break;
        case 'T': no_think = 1; break;
        case 'w': show_prompt = 1; break;
        case 'd': dir_spec = optarg; break;
        case 'f': dir_file = optarg; break;
        case 'x': ok = sc_cli_parse_float("--scale", optarg, &scale); break;
        case 'M': ok = sc_cli_parse_size("--memory-budget", optarg, &budget); break;
        case 'D': ok = sc_device_parse(optarg, "--device", &device) == SC_OK; break;
        case 'R': ok = sc_cli_parse_precision("--precision", optarg, &precision); break;
        case 'b': ok = sc_cli_parse_range("--blocks", optarg, &first, &last); break;
        case 'h': generate_usage(stdout); return 0;
        default: generate_usage(stderr); return SC_EXIT_BAD_INPUT;
        }
        if (!ok) return sc_cli_bad_input("generate");
    }
    if (!sc_cli_no_positional("generate", argc, argv, optind)) return sc_cli_bad_input("generate");
    if (!model || !prompt) { fprintf(stderr, "steerclear generate: --model and --prompt are required\n"); generate_usage(stderr); return 2; }
    if (so.max_new_tokens < 1 || !(so.temperature > 0) || so.top_k < 0 || !(so.top_p > 0 && so.top_p <= 1)) {
        fprintf(stderr, "steerclear generate: need --max-new-tokens >= 1, --temperature > 0, --top-k >= 0 and 0 < --top-p <= 1\n");
        return 2;
    }
    if (dir_spec && dir_file) { fprintf(stderr, "steerclear generate: give --direction or --direction-file, not both\n"); return 2; }
    if (!chat && (system_msg || no_system || no_think)) { fprintf(stderr, "steerclear generate: --system, --no-system and --no-think need --chat\n"); return 2; }
    if (system_msg && no_system) { fprintf(stderr, "steerclear generate: give --system or --no-system, not both\n"); return 2; }
    sc_chat *tmpl = NULL;
    if (chat && sc_chat_load(model, &tmpl)) return sc_cli_bad_input("generate");
    sc_backend *be = NULL;
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    if (load_model_and_tok(model, budget, device, precision, &be, &m, &tok)) { sc_chat_free(tmpl); return sc_cli_bad_input("generate"); }
    int rc = SC_EXIT_BAD_INPUT;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *dirs = NULL, *dirs_dev = NULL;
    sc_gen_out out = {0};
    char *text = NULL, *wrapped = NULL;
    if (last > m->cfg.n_layers) {
        fprintf(stderr, "steerclear generate: --blocks %d:%d reaches past the model's %d blocks (0..%d)\n", first, last, m->cfg.n_layers, m->cfg.n_layers - 1);
        goto done;
    }
    const char *input = prompt;
    if (chat) {
        const sc_chat_msg msgs[2] = {{SC_CHAT_SYSTEM, system_msg}, {SC_CHAT_USER, prompt}};
        const sc_chat_opts co = {.no_default_system = no_system, .no_thinking = no_think};
        if (sc_chat_render(tmpl, &co, system_msg ? msgs : msgs + 1, system_msg ? 2 : 1, &wrapped)) { sc_cli_fail("generate"); goto done; }   // bad input (exit 2)
        sc_log(SC_LOG_DEBUG, "generate: chat template %s (%s)", sc_chat_family(tmpl), sc_chat_source(tmpl));
        input = wrapped;
    }
    if (sc_tok_encode(tok, input, strlen(input), &ids, &n_ids)) { sc_cli_fail("generate"); goto done; }
    if (show_prompt) {
        const size_t n_in = strlen(input);
        printf("%s%s--- continuation ---\n", input, n_in && input[n_in - 1] == '\n' ? "" : "\n");
        fflush(stdout);
    }
    if (n_ids == 0) { fprintf(stderr, "steerclear generate: the prompt is empty\n"); goto done; }
    int32_t stops[2];
    sc_sample_opts_for_tokenizer(&so, tok, stops);
    sc_steer_variant var = {0};
    sc_steer steer = {&var, 1, m->cfg.n_layers};
    sc_hook hook = sc_steer_hook(&steer);
    if (dir_spec || dir_file) {
        const size_t LC = (size_t)m->cfg.n_layers * m->cfg.hidden;
        if (load_directions(dir_spec, dir_file, m->cfg.n_layers, m->cfg.hidden, &dirs) ||
            sc_backend_alloc_floats(be, LC, "directions", &dirs_dev) || be->op->upload(be, dirs_dev, dirs, sizeof(float) * LC)) {
            sc_cli_fail("generate");
            goto done;
        }
        var.directions = dirs_dev; var.scale = scale; var.first = first; var.last = last;
    }
    int len = (int)n_ids;
    const int32_t *pp = ids;
    if (sc_gen_check_context(m, len, so.max_new_tokens, "the prompt")) { sc_cli_fail("generate"); goto done; }
    rc = SC_EXIT_FAILED;
    if (sc_generate(m, be, &pp, &len, 1, NULL, NULL, &so, dirs ? &hook : NULL, &out)) { sc_cli_fail("generate"); goto done; }
    if (sc_tok_decode(tok, out.ids, (size_t)out.n, 1, &text)) { sc_cli_fail("generate"); goto done; }
    printf("%s\n", text);
    rc = SC_EXIT_OK;
done:
    if (be) be->op->free(be, dirs_dev);
    free(ids); free(dirs); free(out.ids); free(text); free(wrapped);
    sc_chat_free(tmpl);
    sc_tok_free(tok);
    sc_model_free(m);
    sc_backend_free(be);
    return rc;
}

int sc_cmd_logits(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL, *precision = NULL;
    sc_device device = SC_DEVICE_CPU;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"text", required_argument, 0, 't'},
                                         {"device", required_argument, 0, 'D'}, {"precision", required_argument, 0, 'R'},
                                         {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'm') model = optarg;
        else if (c == 't') text = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'D') { if (sc_device_parse(optarg, "--device", &device)) { fprintf(stderr, "steerclear logits: %s\n", sc_last_error()); return SC_EXIT_BAD_INPUT; } }
        else if (c == 'R') { if (!sc_cli_parse_precision("--precision", optarg, &precision)) return sc_cli_bad_input("logits"); }
        else { fprintf(c == 'h' ? stdout : stderr, "usage: steerclear logits --model DIR --text TEXT --out F.npy [--device cpu|cuda] [--precision auto|f32|bf16]\n  writes float32 logits [tokens, vocab]\n"); return c == 'h' ? 0 : SC_EXIT_BAD_INPUT; }
    }
    if (!sc_cli_no_positional("logits", argc, argv, optind)) return sc_cli_bad_input("logits");
    if (!model || !text || !out) { fprintf(stderr, "steerclear logits: --model, --text and --out are required\n"); return SC_EXIT_BAD_INPUT; }
    sc_backend *be = NULL;
    sc_model *m = NULL;
    sc_tokenizer *tok = NULL;
    if (load_model_and_tok(model, 0, device, precision, &be, &m, &tok)) return sc_cli_fail("logits");
    int rc = 1;
    int32_t *ids = NULL;
    size_t n = 0;
    float *hidden = NULL, *logits = NULL;
    if (sc_tok_encode(tok, text, strlen(text), &ids, &n)) { sc_cli_fail("logits"); goto done; }
    if (n == 0) { fprintf(stderr, "steerclear logits: the text is empty\n"); goto done; }
    int ss[2] = {0, (int)n};
    sc_batch b = {.n_seq = 1, .seq_start = ss};
    logits = malloc(sizeof(float) * n * (size_t)m->cfg.vocab);
    if (sc_backend_alloc_floats(be, n * (size_t)m->cfg.hidden, "hidden states", &hidden) || !logits) { fprintf(stderr, "steerclear logits: out of memory for %zu x %d logits\n", n, m->cfg.vocab); goto done; }
    float *dlogits = NULL;
    if (sc_backend_alloc_floats(be, n * (size_t)m->cfg.vocab, "logits", &dlogits) ||
        sc_forward(m, be, &b, ids, hidden, NULL, NULL, NULL) || sc_head(m, be, hidden, NULL, (int)n, NULL, dlogits) ||
        be->op->download(be, logits, dlogits, sizeof(float) * n * (size_t)m->cfg.vocab)) {
        be->op->free(be, dlogits);
        sc_cli_fail("logits");
        goto done;
    }
    be->op->free(be, dlogits);
    int64_t shape[2] = {(int64_t)n, m->cfg.vocab};
    if (sc_npy_write_f32(out, logits, 2, shape)) { sc_cli_fail("logits"); goto done; }
    fprintf(stderr, "steerclear logits: wrote %s [%zu, %d]\n", out, n, m->cfg.vocab);
    rc = 0;
done:
    if (be) be->op->free(be, hidden);
    free(ids); free(logits);
    sc_tok_free(tok);
    sc_model_free(m);
    sc_backend_free(be);
    return rc;
}
