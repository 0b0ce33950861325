// stage.c — building the stage context (see steerclear/stage.h): the backend, the run
// directory, the model and tokenizer, the prompt sets, with paths resolved once.
#include "steerclear/stage.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SC_DATASETS_DIR
#define SC_DATASETS_DIR "datasets"
#endif

const char *sc_default_dataset(const char *name) {
    static _Thread_local char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", SC_DATASETS_DIR, name);
    return buf;
}

// "/a/./b/../c" -> "/a/c" in place (an absolute path; no file system access).
static void normalize(char *p) {
    char *out = p, *in = p;
    while (*in) {
        while (*in == '/') in++;
        if (!*in) break;
        char *end = strchr(in, '/');
        size_t len = end ? (size_t)(end - in) : strlen(in);
        if (len == 1 && in[0] == '.') { in += len; continue; }
        if (len == 2 && in[0] == '.' && in[1] == '.') {
            while (out > p && *--out != '/') {}
            in += len;
            continue;
        }
        *out++ = '/';
        memmove(out, in, len);
        out += len;
        in += len;
    }
    if (out == p) *out++ = '/';
    *out = '\0';
}

sc_status sc_path_resolve(const char *path, const char *base_dir, char *out, size_t n) {
    char cwd[4096], joined[8192];
    if (!path || !*path) return sc_errorf(SC_ERR_ARG, "empty path");
    if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
    else {
        if (!base_dir) {
            if (!getcwd(cwd, sizeof cwd)) return sc_errorf(SC_ERR_IO, "cannot read the working directory (to resolve %s)", path);
            base_dir = cwd;
        }
        snprintf(joined, sizeof joined, "%s/%s", base_dir, path);
    }
    normalize(joined);
    if (strlen(joined) >= n) return sc_errorf(SC_ERR_ARG, "path too long: %.60s...", joined);
    memcpy(out, joined, strlen(joined) + 1);
    return SC_OK;
}

sc_status sc_path_dir_of(const char *file, char *out, size_t n) {
    char abs[4096];
    SC_TRY(sc_path_resolve(file, NULL, abs, sizeof abs));
    char *slash = strrchr(abs, '/');
    if (slash == abs) slash[1] = '\0';
    else *slash = '\0';
    if ((size_t)snprintf(out, n, "%s", abs) >= n) return sc_errorf(SC_ERR_ARG, "path too long: %.60s...", abs);
    return SC_OK;
}

void sc_stage_opts_default(sc_stage_opts *o) {
    memset(o, 0, sizeof *o);
    sc_backend_opts_default(&o->backend);
}

void sc_stage_free(sc_stage *s) {
    if (!s) return;
    sc_dataset_free(&s->train);
    sc_dataset_free(&s->test);
    sc_tok_free(s->tok);
    sc_model_free(s->model);
    sc_run_close(s->run);
    sc_backend_free(s->be);
    free(s);
}

// A string key of the run's config.json (absolute paths, as the search CLI writes them).
static const char *config_str(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

// One prompt set: the option, else the run config's key, else the shipped file.
static sc_status load_set(const char *opt, const cJSON *cfg, const char *key, const char *file, sc_dataset_kind kind,
                          char *path, size_t n, sc_dataset *out) {
    const char *p = opt ? opt : config_str(cfg, key);
    if (p) SC_TRY(sc_path_resolve(p, NULL, path, n));
    else snprintf(path, n, "%s", sc_default_dataset(file));
    return sc_dataset_load(path, kind, out);
}

sc_status sc_stage_open(const sc_stage_opts *o, sc_stage **out) {
    *out = NULL;
    sc_stage *s = sc_calloc(1, sizeof *s, "stage context");
    if (!s) return SC_ERR_MEM;
    char *config_text = NULL;
    cJSON *cfg = NULL;
    sc_results_meta meta = {0};
    sc_status st = sc_run_open(o->run_dir, o->run_mode, o->command, &s->run);
    if (!st) st = sc_run_read_config(s->run, &config_text);
    if (!st && config_text && !(cfg = cJSON_Parse(config_text))) {
        char path[4200];
        sc_run_path(s->run, "config.json", path, sizeof path);
        st = sc_errorf(SC_ERR_FORMAT, "%s: not valid JSON; restore it or start a new run directory", path);
    }
    if (!st && o->need_train) st = load_set(o->train_csv, cfg, "train", "train.csv", SC_DATASET_TRAIN, s->train_csv, sizeof s->train_csv, &s->train);
    if (!st && o->need_test) st = load_set(o->test_csv, cfg, "test", "test.csv", SC_DATASET_TEST, s->test_csv, sizeof s->test_csv, &s->test);
    if (!st && o->need_model) {
        const char *model = o->model_dir;
        if (!model && sc_results_exists(s->run) && (st = sc_results_read_meta(s->run, &meta)) == SC_OK) model = meta.model_dir;
        if (!st && !model) model = config_str(cfg, "model");
        if (!st && !model) {
            char res[4200];
            sc_run_path(s->run, "results.h5", res, sizeof res);
            if (!sc_results_exists(s->run)) st = sc_errorf(SC_ERR_IO, "%s does not exist: run `steerclear search` into this run directory first (or pass --model DIR)", res);
            else st = sc_errorf(SC_ERR_ARG, "%s names no model; pass --model DIR", res);
        }
        if (!st) st = sc_path_resolve(model, NULL, s->model_dir, sizeof s->model_dir);
    }
    if (!st) st = sc_backend_create(&o->backend, &s->be);
    if (!st && o->need_model) {
        char tpath[4200];
        snprintf(tpath, sizeof tpath, "%s/tokenizer.json", s->model_dir);
        if ((st = sc_model_load(s->model_dir, o->last > 0 ? o->first : 0, o->last > 0 ? o->last : -1, s->be, &s->model))) sc_error_wrap(st, "loading the model: ");
        else st = sc_tok_load(tpath, &s->tok);
    }
    sc_results_meta_free(&meta);
    cJSON_Delete(cfg);
    free(config_text);
    if (st) { sc_stage_free(s); return st; }
    *out = s;
    return SC_OK;
}
