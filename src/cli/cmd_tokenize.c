// cmd_tokenize.c — `steerclear tokenize`: text to token ids and back with a model's
// tokenizer.json. Batch mode (--jsonl) serves the reference comparison in tests; it leaves out
// anything beyond ids and text (no offsets, no chat templates).
#include "steerclear/cli.h"
#include "steerclear/core.h"
#include "steerclear/tok.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: steerclear tokenize (--model DIR | --tokenizer PATH) (--text S | --file F) [--decode] [--skip-special] [--jsonl]\n"
        "\n"
        "  --model DIR       model directory holding tokenizer.json\n"
        "  --tokenizer PATH  a tokenizer.json file (instead of --model)\n"
        "  --text S          the input text (or, with --decode, a JSON array of ids)\n"
        "  --file F          read the input from file F ('-' for standard input)\n"
        "  --decode          input is a JSON array of ids; print the decoded text (without a newline added)\n"
        "  --skip-special    with --decode, drop special tokens such as <|im_end|>\n"
        "  --jsonl           one JSON value per input line: a string to encode (prints one JSON array\n"
        "                    per line) or, with --decode, an array of ids (prints one JSON string per line)\n"
        "\n"
        "Encoding prints the ids as a JSON array on one line. Added tokens (<|im_start|>, ...) in the\n"
        "text are recognised. Invalid UTF-8 is an error naming the byte offset.\n");
}

static sc_status read_input(const char *file, char **out, size_t *len) {
    if (strcmp(file, "-")) return sc_read_file(file, out, len);
    size_t cap = 1 << 16, n = 0;
    char *buf = sc_malloc(cap, "standard input");
    if (!buf) return SC_ERR_MEM;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return sc_errorf(SC_ERR_MEM, "standard input: out of memory"); }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) { free(buf); return sc_errorf(SC_ERR_IO, "standard input: read error"); }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SC_OK;
}

static void print_ids(const int32_t *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    fputs("]\n", stdout);
}

// Parses a JSON array of integer ids (malloc'ed into *ids).
static sc_status parse_ids(const cJSON *arr, const char *what, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!cJSON_IsArray(arr)) return sc_errorf(SC_ERR_ARG, "%s: expected a JSON array of token ids", what);
    size_t cnt = (size_t)cJSON_GetArraySize(arr);
    int32_t *v = sc_malloc((cnt ? cnt : 1) * sizeof *v, "token ids");
    if (!v) return SC_ERR_MEM;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)e->valueint) {
            free(v);
            return sc_errorf(SC_ERR_ARG, "%s: element %zu of the id array is not an integer", what, i);
        }
        v[i++] = e->valueint;
    }
    *ids = v;
    *n = cnt;
    return SC_OK;
}

static sc_status decode_json(const sc_tokenizer *tok, const char *json, size_t len, const char *what, int skip, char **text) {
    cJSON *arr = cJSON_ParseWithLength(json, len);
    if (!arr) return sc_errorf(SC_ERR_ARG, "%s: not valid JSON; expected an array of token ids like [9707,11]", what);
    int32_t *ids = NULL;
    size_t n = 0;
    sc_status st = parse_ids(arr, what, &ids, &n);
    cJSON_Delete(arr);
    if (st == SC_OK) st = sc_tok_decode(tok, ids, n, skip, text);
    free(ids);
    if (st != SC_OK && !strstr(sc_last_error(), what)) sc_error_wrap(st, "%s: ", what);
    return st;
}

static sc_status run_jsonl(const sc_tokenizer *tok, char *buf, size_t len, const char *what, int decode, int skip) {
    size_t line = 0;
    char label[4200];
    for (size_t pos = 0; pos < len;) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        snprintf(label, sizeof label, "%s line %zu", what, line);
        if (end > pos) {
            if (decode) {
                char *text = NULL;
                SC_TRY(decode_json(tok, buf + pos, end - pos, label, skip, &text));
                cJSON *s = cJSON_CreateString(text);
                free(text);
                char *js = s ? cJSON_PrintUnformatted(s) : NULL;
                cJSON_Delete(s);
                if (!js) return sc_errorf(SC_ERR_MEM, "%s: out of memory", label);
                puts(js);
                free(js);
            } else {
                cJSON *s = cJSON_ParseWithLength(buf + pos, end - pos);
                if (!cJSON_IsString(s)) {
                    cJSON_Delete(s);
                    return sc_errorf(SC_ERR_ARG, "%s: expected a JSON string per line", label);
                }
                int32_t *ids = NULL;
                size_t n = 0;
                sc_status st = sc_tok_encode(tok, s->valuestring, strlen(s->valuestring), &ids, &n);
                cJSON_Delete(s);
                if (st != SC_OK) return sc_error_wrap(st, "%s: ", label);
                print_ids(ids, n);
                free(ids);
            }
        }
        pos = end + 1;
    }
    return SC_OK;
}

int sc_cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"tokenizer", required_argument, NULL, 't'},
        {"text", required_argument, NULL, 's'},
        {"file", required_argument, NULL, 'f'},
        {"decode", no_argument, NULL, 'd'},
        {"skip-special", no_argument, NULL, 'k'},
        {"jsonl", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *tok_path = NULL, *text = NULL, *file = NULL;
    int decode = 0, skip = 0, jsonl = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': tok_path = optarg; break;
        case 's': text = optarg; break;
        case 'f': file = optarg; break;
        case 'd': decode = 1; break;
        case 'k': skip = 1; break;
        case 'j': jsonl = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        sc_errorf(SC_ERR_ARG, "unexpected argument '%s' (see --help)", argv[optind]);
        return sc_cli_fail("tokenize");
    }
    if (!!model == !!tok_path) {
        sc_errorf(SC_ERR_ARG, "give exactly one of --model DIR or --tokenizer PATH (see --help)");
        return sc_cli_fail("tokenize");
    }
    if (!!text == !!file) {
        sc_errorf(SC_ERR_ARG, "give exactly one of --text S or --file F (see --help)");
        return sc_cli_fail("tokenize");
    }
    char path_buf[4200];
    if (model) {
        snprintf(path_buf, sizeof path_buf, "%s/tokenizer.json", model);
        tok_path = path_buf;
    }
    sc_tokenizer *tok = NULL;
    if (sc_tok_load(tok_path, &tok) != SC_OK) return sc_cli_fail("tokenize");

    char *buf = NULL;
    size_t len = 0;
    const char *what = file ? (strcmp(file, "-") ? file : "standard input") : "--text";
    sc_status st = SC_OK;
    if (file) st = read_input(file, &buf, &len);
    else { buf = sc_strdup(text); len = strlen(text); st = buf ? SC_OK : SC_ERR_MEM; }

    if (st == SC_OK && jsonl) {
        st = run_jsonl(tok, buf, len, what, decode, skip);
    } else if (st == SC_OK && decode) {
        char *out = NULL;
        st = decode_json(tok, buf, len, what, skip, &out);
        if (st == SC_OK) { fputs(out, stdout); free(out); }
    } else if (st == SC_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        st = sc_tok_encode(tok, buf, len, &ids, &n);
        if (st == SC_OK) print_ids(ids, n);
        else sc_error_wrap(st, "%s: ", what);
        free(ids);
    }
    free(buf);
    sc_tok_free(tok);
    if (fflush(stdout) != 0 && st == SC_OK) st = sc_errorf(SC_ERR_IO, "standard output: write failed");
    return st == SC_OK ? 0 : sc_cli_fail("tokenize");
}
