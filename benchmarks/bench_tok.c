// bench_tok.c — tokenizer throughput: encodes the whole text of datasets/train.csv (or the test
// corpus when it is absent) N times and prints one JSON line:
//   {"bench":"tokenizer_encode","bytes":...,"tokens":...,"seconds":...,"mb_per_s":...,"load_seconds":...}
// bytes, tokens and seconds are totals over the N repeats; load_seconds is one sc_tok_load.
//
// usage: bench_tok [--tokenizer PATH] [--text FILE] [--repeat N]
// Defaults: $SC_TOKENIZER, else $SC_SOURCE_DIR/.cache/tokenizer/tokenizer.json; the text is
// $SC_SOURCE_DIR/datasets/train.csv, else tests/data/tok_corpus.txt ($SC_SOURCE_DIR defaults to
// the current directory); N = 20.
#include "steerclear/core.h"
#include "steerclear/tok.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, NULL, 't'},
        {"text", required_argument, NULL, 'x'},
        {"repeat", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *src = getenv("SC_SOURCE_DIR") ? getenv("SC_SOURCE_DIR") : ".";
    char tok_default[4200], text_default[4200];
    snprintf(tok_default, sizeof tok_default, "%s/.cache/tokenizer/tokenizer.json", src);
    const char *tok_path = getenv("SC_TOKENIZER") ? getenv("SC_TOKENIZER") : tok_default;
    snprintf(text_default, sizeof text_default, "%s/datasets/train.csv", src);
    if (!sc_file_exists(text_default)) snprintf(text_default, sizeof text_default, "%s/tests/data/tok_corpus.txt", src);
    const char *text_path = text_default;
    long repeat = 20;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': tok_path = optarg; break;
        case 'x': text_path = optarg; break;
        case 'n': repeat = strtol(optarg, NULL, 10); break;
        case 'h': printf("usage: bench_tok [--tokenizer PATH] [--text FILE] [--repeat N]\n"); return 0;
        default: fprintf(stderr, "usage: bench_tok [--tokenizer PATH] [--text FILE] [--repeat N]\n"); return 2;
        }
    }
    if (repeat < 1) { fprintf(stderr, "bench_tok: --repeat must be at least 1\n"); return 2; }

    double t0 = sc_now_seconds();
    sc_tokenizer *tok = NULL;
    if (sc_tok_load(tok_path, &tok) != SC_OK) { fprintf(stderr, "bench_tok: %s\n", sc_last_error()); return 1; }
    double load = sc_now_seconds() - t0;
    char *text = NULL;
    size_t len = 0;
    if (sc_read_file(text_path, &text, &len) != SC_OK) {
        fprintf(stderr, "bench_tok: %s\n", sc_last_error());
        sc_tok_free(tok);
        return 1;
    }
    size_t tokens = 0;
    double t1 = sc_now_seconds();
    for (long r = 0; r < repeat; r++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (sc_tok_encode(tok, text, len, &ids, &n) != SC_OK) {
            fprintf(stderr, "bench_tok: %s: %s\n", text_path, sc_last_error());
            free(text);
            sc_tok_free(tok);
            return 1;
        }
        tokens += n;
        free(ids);
    }
    double secs = sc_now_seconds() - t1;
    double bytes = (double)len * (double)repeat;
    printf("{\"bench\":\"tokenizer_encode\",\"bytes\":%.0f,\"tokens\":%zu,\"seconds\":%.6f,\"mb_per_s\":%.3f,\"load_seconds\":%.4f}\n",
           bytes, tokens, secs, bytes / 1e6 / (secs > 0 ? secs : 1e-9), load);
    free(text);
    sc_tok_free(tok);
    return 0;
}
