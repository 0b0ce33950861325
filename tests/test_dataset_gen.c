// test_dataset_gen.c — the dataset generator's parts that need no provider (datagen.h): the
// scenario loader and its error messages, normalised text, character shingles and Jaccard
// similarity against a brute-force reference over substrings, each cleaning reason, the pools'
// duplicate checks and the cross-scenario pass, the prompt format (built, written as CSV,
// read back by the dataset reader), the answer parser, and the seeded split (counts,
// disjointness, determinism, short scenarios, holdout).
#include "testutil.h"
#include "steerclear/datagen.h"
#include "steerclear/dataset.h"

#include <stdio.h>
#include <stdlib.h>

static char path_buf[4200];

static const char *fixture(const char *name, const char *data) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", sc_test_tmpdir(), name);
    sc_test_write(path_buf, data, strlen(data));
    return path_buf;
}

// ---------------------------------------------------------------------------------------
// Scenarios

static void test_scenarios(void) {
    char shipped[4200];
    snprintf(shipped, sizeof shipped, "%s/datasets/scenarios.json", sc_test_env("SC_SOURCE_DIR", "."));
    sc_scenarios s;
    CHECK_OK(sc_scenarios_load(shipped, &s));
    CHECKF(s.n >= 24, "the shipped file has %d scenarios (want >= 24)", s.n);
    for (int i = 0; i < s.n; i++) {
        CHECK(s.items[i].n_topics >= 3);
        CHECK(strcmp(s.items[i].roles[0], s.items[i].roles[1]) != 0);
        CHECK(!strchr(s.items[i].context, '\n'));
    }
    sc_scenarios_free(&s);

    static const char head[] = "{\"version\": 1, \"scenarios\": [{\"name\": \"a\", \"context\": \"A scene.\", \"dynamic\": \"d\", "
                               "\"roles\": [\"X\", \"Y\"], \"topics\": [\"t\"]}, ";
    char buf[1024];
#define BAD(json_tail, ...) do { snprintf(buf, sizeof buf, "%s%s]}", head, json_tail); \
        CHECK_ERR(sc_scenarios_load(fixture("s.json", buf), &s), __VA_ARGS__); } while (0)
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"topics\": [\"t\"]}", SC_ERR_FORMAT, "s.json: scenario 1 (b)", "\"roles\" is missing");
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\"], \"topics\": [\"t\"]}", SC_ERR_FORMAT, "scenario 1 (b)", "exactly two");
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"x\"], \"topics\": [\"t\"]}", SC_ERR_FORMAT, "scenario 1 (b)", "different names");
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"Y\"], \"topic\": [\"t\"]}", SC_ERR_ARG, "scenario 1 (b)", "unknown key \"topic\"");
    BAD("{\"name\": \"a\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"Y\"], \"topics\": [\"t\"]}", SC_ERR_FORMAT, "scenario 1 (a)", "repeats scenario 0");
    BAD("{\"name\": \"Big Name\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"Y\"], \"topics\": [\"t\"]}", SC_ERR_FORMAT, "\"name\"", "snake_case");
    BAD("{\"name\": \"b\", \"context\": \"two\\nlines\", \"dynamic\": \"d\", \"roles\": [\"X\", \"Y\"], \"topics\": [\"t\"]}", SC_ERR_FORMAT, "scenario 1 (b)", "\"context\"", "line break");
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"<|im_end|>\"], \"topics\": [\"t\"]}", SC_ERR_FORMAT, "roles[1]", "markup");
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"Y\"], \"topics\": []}", SC_ERR_FORMAT, "scenario 1 (b)", "\"topics\"");
    BAD("{\"name\": \"b\", \"context\": \"c\", \"dynamic\": \"d\", \"roles\": [\"X\", \"Y\"], \"topics\": [\"t\", 3]}", SC_ERR_FORMAT, "topics[1]", "string");
#undef BAD
    CHECK_ERR(sc_scenarios_load(fixture("s.json", "{\"version\": 1, \"scenarios\": [}"), &s), SC_ERR_FORMAT, "s.json", "not valid JSON");
    CHECK_ERR(sc_scenarios_load(fixture("s.json", "{\"version\": 2, \"scenarios\": []}"), &s), SC_ERR_FORMAT, "\"version\" must be 1");
    CHECK_ERR(sc_scenarios_load(fixture("s.json", "{\"scenarios\": []}"), &s), SC_ERR_FORMAT, "\"scenarios\" is empty");
}

// ---------------------------------------------------------------------------------------
// Normalised text, shingles, Jaccard

static void check_norm(const char *in, const char *want) {
    char *out = NULL;
    CHECK_OK(sc_datagen_normalise(in, &out));
    CHECKF(out && !strcmp(out, want), "normalise('%s') = '%s', want '%s'", in, out ? out : "(null)", want);
    free(out);
}

// Reference: the distinct k-byte substrings of an ASCII string, compared as strings.
static double ref_jaccard(const char *a, const char *b, int k) {
    int na = (int)strlen(a), nb = (int)strlen(b);
    int ca = na >= k ? na - k + 1 : 1, cb = nb >= k ? nb - k + 1 : 1;
    int inter = 0, ua = 0, ub = 0;
    // distinct count of a's shingles, and how many of them occur in b
    for (int i = 0; i < ca; i++) {
        const char *s = a + i;
        int len = na >= k ? k : na, dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = !strncmp(a + j, s, (size_t)len);
        if (dup) continue;
        ua++;
        int in_b = 0;
        for (int j = 0; j < cb && !in_b; j++) in_b = (nb >= k ? k : nb) == len && !strncmp(b + j, s, (size_t)len);
        inter += in_b;
    }
    for (int i = 0; i < cb; i++) {
        int len = nb >= k ? k : nb, dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = !strncmp(b + j, b + i, (size_t)len);
        ub += !dup;
    }
    return (double)inter / (double)(ua + ub - inter);
}

static double our_jaccard(const char *a, const char *b, int k) {
    sc_shingles sa, sb;
    CHECK_OK(sc_shingles_make(a, k, &sa));
    CHECK_OK(sc_shingles_make(b, k, &sb));
    double j = sc_shingles_jaccard(&sa, &sb);
    sc_shingles_free(&sa);
    sc_shingles_free(&sb);
    return j;
}

static void test_similarity(void) {
    check_norm("  Hello,   WORLD!! ", "hello world");
    check_norm("Caf\xC3\xA9 \xEF\xAC\x81ne -- STRASSE stra\xC3\x9F" "e", "caf\xC3\xA9 fine strasse strasse");   // NFKC ligature, case fold of ß
    check_norm("I'm fine... really?", "i m fine really");
    check_norm("?!", "");
    const char *pairs[][2] = {
        {"i have to tell you something about the cigarettes", "i have to tell you something about the cigars"},
        {"the sea took my brother twenty years ago", "my brother was taken by the sea twenty years ago"},
        {"abcabcabcabc", "abcabc"},
        {"completely different words here", "nothing in common at all zzz"},
        {"abc", "abc"},
        {"abc", "abd"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        for (int k = 3; k <= 5; k++) {
            double want = ref_jaccard(pairs[i][0], pairs[i][1], k), got = our_jaccard(pairs[i][0], pairs[i][1], k);
            CHECKF(fabs(want - got) < 1e-12, "jaccard(%s | %s, k=%d) = %.6f, reference %.6f", pairs[i][0], pairs[i][1], k, got, want);
        }
    CHECK_NEAR(our_jaccard("same text", "same text", 5), 1.0, 0);
    // multi-byte characters are shingled by character, not byte: 3 characters, 1 shingle of 3
    sc_shingles s;
    CHECK_OK(sc_shingles_make("\xC3\xA9\xC3\xA9\xC3\xA9", 3, &s));
    CHECK(s.n == 1);
    sc_shingles_free(&s);
    CHECK_OK(sc_shingles_make("\xC3\xA9\xC3\xA9\xC3\xA9x", 3, &s));
    CHECK(s.n == 2);
    sc_shingles_free(&s);
}

// ---------------------------------------------------------------------------------------
// Cleaning

static sc_scenario scen(void) {
    static char name[] = "night_bakery", ctx[] = "At four in the morning, a baker and an apprentice work.", dyn[] = "teasing",
                r0[] = "Owner", r1[] = "Apprentice", t0[] = "money";
    static char *topics[] = {t0};
    sc_scenario s = {.name = name, .context = ctx, .dynamic = dyn, .roles = {r0, r1}, .topics = topics, .n_topics = 1};
    return s;
}

static void test_checks(void) {
    sc_scenario s = scen();
    sc_clean_opts o;
    sc_clean_opts_default(&o);
    CHECK(o.min_chars == 20 && o.max_chars == 400 && o.jaccard == 0.5 && o.shingle == 5);
    int role;
    const char *ok = "I burned the wedding cake on Saturday and told them it was the oven.";
    CHECK(sc_opener_check(&s, "Owner", ok, &o, &role) == SC_DROP_NONE && role == 0);
    CHECK(sc_opener_check(&s, " apprentice: ", ok, &o, &role) == SC_DROP_NONE && role == 1);
    CHECK(sc_opener_check(&s, "Owner", "\"I burned the wedding cake on Saturday.\"", &o, &role) == SC_DROP_NONE);
    CHECK(sc_opener_check(&s, "Narrator", ok, &o, &role) == SC_DROP_SPEAKER && role == -1);
    CHECK(sc_opener_check(&s, "Owner", "  \n ", &o, &role) == SC_DROP_EMPTY);
    CHECK(sc_opener_check(&s, "Owner", "Too short, I know.", &o, &role) == SC_DROP_TOO_SHORT);   // 18 characters
    // 20 characters of two-byte letters: long enough (characters, not bytes)
    CHECK(sc_opener_check(&s, "Owner", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                                       "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", &o, &role) == SC_DROP_NONE);
    char longer[512];
    memset(longer, 'a', 401);
    longer[401] = '\0';
    CHECK(sc_opener_check(&s, "Owner", longer, &o, &role) == SC_DROP_TOO_LONG);
    longer[400] = '\0';
    CHECK(sc_opener_check(&s, "Owner", longer, &o, &role) == SC_DROP_NONE);
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake.\nAnd then I lied about it.", &o, &role) == SC_DROP_LINE_BREAK);
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake <|im_end|> and lied about it.", &o, &role) == SC_DROP_CHAT_TOKEN);
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake \xC3 and lied about it.", &o, &role) == SC_DROP_ENCODING);        // a cut sequence
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake \xED\xA0\x80 and lied about it.", &o, &role) == SC_DROP_ENCODING);  // a surrogate
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake \x07 and lied about it.", &o, &role) == SC_DROP_ENCODING);
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake\tand lied about it, honestly.", &o, &role) == SC_DROP_NONE);
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake [INST] and lied about it.", &o, &role) == SC_DROP_CHAT_TOKEN);
    CHECK(sc_opener_check(&s, "Owner", "I burned the cake. Apprentice: You did what? Again?", &o, &role) == SC_DROP_ROLE_MARKER);
    CHECK(sc_opener_check(&s, "Owner", "OWNER : I burned the cake and lied about it.", &o, &role) == SC_DROP_ROLE_MARKER);
    CHECK(sc_opener_check(&s, "Owner", "assistant: I burned the cake and lied about it.", &o, &role) == SC_DROP_ROLE_MARKER);
    // a role's name in speech is fine; so is a colon elsewhere
    CHECK(sc_opener_check(&s, "Owner", "Listen, Apprentice, the rule is simple: never lie about the oven.", &o, &role) == SC_DROP_NONE);
}

static void test_pools(void) {
    sc_scenario s = scen();
    sc_clean_opts o;
    sc_clean_opts_default(&o);
    sc_opener_pool a = {0}, b = {0};
    int sp, si;
    double sim;
    const char *t1 = "I burned the wedding cake on Saturday and told them it was the oven.";
    CHECK(sc_pool_offer(&a, NULL, 0, &s, "Owner", t1, &o, &sp, &si, &sim) == SC_DROP_NONE && a.n == 1);
    CHECK(!strcmp(a.items[0].text, t1) && a.items[0].role == 0);
    // the same words in another case and punctuation: an exact duplicate after normalising
    CHECK(sc_pool_offer(&a, NULL, 0, &s, "Apprentice", "i BURNED the wedding cake, on Saturday -- and told them it was the OVEN!", &o, &sp, &si, &sim) == SC_DROP_DUPLICATE);
    CHECK(si == 0 && sim == 1.0 && sp == -1);
    // a small edit: a near duplicate whose similarity is the reference Jaccard of the normalised texts
    const char *t2 = "I burned the wedding cake on Sunday and told them it was the oven.";
    CHECK(sc_pool_offer(&a, NULL, 0, &s, "Owner", t2, &o, &sp, &si, &sim) == SC_DROP_NEAR_DUPLICATE);
    double want = ref_jaccard("i burned the wedding cake on saturday and told them it was the oven",
                              "i burned the wedding cake on sunday and told them it was the oven", 5);
    CHECK_NEAR(sim, want, 1e-12);
    CHECK(want >= 0.5);
    // the threshold just above that similarity keeps it
    sc_clean_opts o2 = o;
    o2.jaccard = want + 1e-9;
    CHECK(sc_pool_offer(&a, NULL, 0, &s, "Owner", t2, &o2, &sp, &si, &sim) == SC_DROP_NONE && a.n == 2);
    const char *t3 = "Do you ever think about selling the shop and moving to the coast?";
    CHECK(sc_pool_offer(&a, NULL, 0, &s, "Apprentice", t3, &o, &sp, &si, &sim) == SC_DROP_NONE && a.n == 3);
    // against another pool
    const sc_opener_pool *others[1] = {&a};
    CHECK(sc_pool_offer(&b, others, 1, &s, "Owner", t3, &o, &sp, &si, &sim) == SC_DROP_DUPLICATE && sp == 0 && si == 2);
    CHECK(b.n == 0);

    // the cross-scenario pass drops the later scenario's copy and records it
    sc_scenario two[2] = {scen(), scen()};
    sc_scenarios ss = {two, 2};
    sc_datagen_result res = {0};
    res.n = 2;
    res.pools = calloc(2, sizeof *res.pools);
    res.stats = calloc(2, sizeof *res.stats);
    CHECK(sc_pool_offer(&res.pools[0], NULL, 0, &s, "Owner", t1, &o, &sp, &si, &sim) == SC_DROP_NONE);
    CHECK(sc_pool_offer(&res.pools[1], NULL, 0, &s, "Owner", t3, &o, &sp, &si, &sim) == SC_DROP_NONE);
    CHECK(sc_pool_offer(&res.pools[1], NULL, 0, &s, "Apprentice", "I burned the wedding cake on Saturday and told them it was the oven!!", &o, &sp, &si, &sim) == SC_DROP_NONE);
    CHECK(sc_pool_offer(&res.pools[1], NULL, 0, &s, "Owner", "The flour delivery was late again and I shouted at the driver.", &o, &sp, &si, &sim) == SC_DROP_NONE);
    CHECK_OK(sc_datagen_cross_check(&ss, &o, &res));
    CHECK(res.pools[0].n == 1 && res.pools[1].n == 2 && res.n_dropped == 1);
    if (res.n_dropped == 1) {
        CHECK(res.dropped[0].scenario == 1 && res.dropped[0].request == -1 && res.dropped[0].reason == SC_DROP_DUPLICATE);
        CHECK(res.dropped[0].similar_scenario == 0 && !strcmp(res.dropped[0].similar_text, t1));
        CHECK(!strcmp(res.pools[1].items[0].text, t3));
        CHECK(!strcmp(res.pools[1].items[1].text, "The flour delivery was late again and I shouted at the driver."));
    }
    sc_datagen_result_free(&res);
    sc_pool_free(&a);
    sc_pool_free(&b);
}

// ---------------------------------------------------------------------------------------
// Prompts and CSV

static void test_prompts_csv(void) {
    sc_scenario s = scen();
    sc_opener op = {.text = (char *)"He said \"fine\", but, honestly, I think he is leaving.", .role = 1};
    char *full = NULL, *prompt = NULL;
    CHECK_OK(sc_opener_prompts(&s, &op, &full, &prompt));
    const char *want_prompt = "<|im_start|>Apprentice\nHe said \"fine\", but, honestly, I think he is leaving.\n<|im_end|>\n\n<|im_start|>Owner";
    CHECK(prompt && !strcmp(prompt, want_prompt));
    char want_full[512];
    snprintf(want_full, sizeof want_full, "%s\n%s", s.context, want_prompt);
    CHECK(full && !strcmp(full, want_full));
    // written as CSV and read back by the dataset reader
    snprintf(path_buf, sizeof path_buf, "%s/t.csv", sc_test_tmpdir());
    FILE *f = fopen(path_buf, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("category,prompt,full_prompt\n", f);
    sc_csv_field(f, s.name); fputc(',', f); sc_csv_field(f, prompt); fputc(',', f); sc_csv_field(f, full); fputc('\n', f);
    fclose(f);
    char *text = NULL;
    CHECK_OK(sc_read_file(path_buf, &text, NULL));
    // as Python's csv module writes it: the category unquoted, the others quoted with "" inside
    CHECK(text && !strncmp(text, "category,prompt,full_prompt\nnight_bakery,\"<|im_start|>Apprentice\nHe said \"\"fine\"\", but,", 83));
    free(text);
    sc_dataset ds;
    CHECK_OK(sc_dataset_load(path_buf, SC_DATASET_TEST, &ds));
    CHECK(ds.n == 1);
    if (ds.n == 1) {
        CHECK(!strcmp(ds.items[0].category, "night_bakery"));
        CHECK(!strcmp(ds.items[0].prompt, prompt));
        CHECK(!strcmp(ds.items[0].full_prompt, full));
    }
    sc_dataset_free(&ds);
    free(full);
    free(prompt);
}

// ---------------------------------------------------------------------------------------
// Answers

static void test_answers(void) {
    char **sp, **tx;
    int n;
    CHECK_OK(sc_datagen_parse_answer("{\"openers\": [{\"speaker\": \"A\", \"text\": \"one\"}, {\"speaker\": \"B\", \"text\": \"two\", \"mood\": 1}]}", &sp, &tx, &n));
    CHECK(n == 2 && !strcmp(sp[1], "B") && !strcmp(tx[0], "one"));
    for (int i = 0; i < n; i++) { free(sp[i]); free(tx[i]); }
    free(sp); free(tx);
    CHECK_OK(sc_datagen_parse_answer("```json\n{\"openers\": []}\n```", &sp, &tx, &n));
    CHECK(n == 0);
    free(sp); free(tx);
    CHECK_ERR(sc_datagen_parse_answer("Here you go: the sea.", &sp, &tx, &n), SC_ERR_FORMAT, "not valid JSON");
    CHECK_ERR(sc_datagen_parse_answer("{\"items\": []}", &sp, &tx, &n), SC_ERR_FORMAT, "\"openers\" is missing");
    CHECK_ERR(sc_datagen_parse_answer("{\"openers\": \"x\"}", &sp, &tx, &n), SC_ERR_FORMAT, "not an array");
    CHECK_ERR(sc_datagen_parse_answer("{\"openers\": [\"x\"]}", &sp, &tx, &n), SC_ERR_FORMAT, "not an object");
    CHECK_ERR(sc_datagen_parse_answer("{\"openers\": [{\"speaker\": \"A\"}]}", &sp, &tx, &n), SC_ERR_FORMAT, "no string \"text\"");
    CHECK_ERR(sc_datagen_parse_answer("{\"openers\": [], \"openers\": []}", &sp, &tx, &n), SC_ERR_FORMAT, "twice");
    CHECK(sp == NULL && tx == NULL && n == 0);
}

// ---------------------------------------------------------------------------------------
// Split

static int rows_equal(const sc_split_row *a, const sc_split_row *b, int n) {
    for (int i = 0; i < n; i++) if (a[i].scenario != b[i].scenario || a[i].index != b[i].index) return 0;
    return 1;
}

static void test_split(void) {
    enum { S = 6 };
    int counts[S] = {20, 20, 20, 20, 20, 20};
    sc_split_opts o = {.kind = SC_SPLIT_STRATIFIED, .train_per = 16, .test_per = 4, .seed = 1234};
    sc_split_row *tr, *te, *tr2, *te2;
    int ntr, nte, ntr2, nte2;
    CHECK_OK(sc_split_make(&o, counts, S, &tr, &ntr, &te, &nte));
    CHECK(ntr == 96 && nte == 24);
    int seen[S][20];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < ntr; i++) seen[tr[i].scenario][tr[i].index] += 1;
    for (int i = 0; i < nte; i++) seen[te[i].scenario][te[i].index] += 10;
    int per_test[S] = {0}, bad = 0;
    for (int i = 0; i < nte; i++) per_test[te[i].scenario]++;
    for (int s = 0; s < S; s++) {
        CHECK(per_test[s] == 4);
        for (int j = 0; j < 20; j++) bad += seen[s][j] != 1 && seen[s][j] != 10;   // each opener in exactly one set
    }
    CHECK(bad == 0);
    // rows in scenario order, then opener order
    for (int i = 1; i < nte; i++) CHECK(te[i - 1].scenario < te[i].scenario || (te[i - 1].scenario == te[i].scenario && te[i - 1].index < te[i].index));
    // the same seed: the same split; another seed: another one; scenarios get different test picks
    CHECK_OK(sc_split_make(&o, counts, S, &tr2, &ntr2, &te2, &nte2));
    CHECK(ntr2 == ntr && nte2 == nte && rows_equal(tr, tr2, ntr) && rows_equal(te, te2, nte));
    free(tr2); free(te2);
    o.seed = 99;
    CHECK_OK(sc_split_make(&o, counts, S, &tr2, &ntr2, &te2, &nte2));
    CHECK(!rows_equal(te, te2, nte));
    free(tr2); free(te2);
    int same_picks = 1;
    for (int k = 0; k < 4; k++) same_picks &= te[k].index == te[4 + k].index;
    CHECK(!same_picks);
    free(tr); free(te);

    // short scenarios: the test set first, one left for training; a scenario of one: training only
    int short_counts[3] = {3, 1, 30};
    o.seed = 1234;
    CHECK_OK(sc_split_make(&o, short_counts, 3, &tr, &ntr, &te, &nte));
    int a[3] = {0}, b[3] = {0};
    for (int i = 0; i < ntr; i++) a[tr[i].scenario]++;
    for (int i = 0; i < nte; i++) b[te[i].scenario]++;
    CHECK(b[0] == 2 && a[0] == 1 && b[1] == 0 && a[1] == 1 && b[2] == 4 && a[2] == 16);
    free(tr); free(te);

    // holdout: K whole scenarios in the test set
    sc_split_opts h = {.kind = SC_SPLIT_HOLDOUT, .holdout = 2, .seed = 7};
    CHECK_OK(sc_split_make(&h, counts, S, &tr, &ntr, &te, &nte));
    CHECK(ntr == 80 && nte == 40);
    int in_test[S] = {0}, in_train[S] = {0}, n_test_scen = 0;
    for (int i = 0; i < nte; i++) in_test[te[i].scenario] = 1;
    for (int i = 0; i < ntr; i++) in_train[tr[i].scenario] = 1;
    for (int s = 0; s < S; s++) { n_test_scen += in_test[s]; CHECK(!(in_test[s] && in_train[s])); }
    CHECK(n_test_scen == 2);
    CHECK_OK(sc_split_make(&h, counts, S, &tr2, &ntr2, &te2, &nte2));
    CHECK(rows_equal(te, te2, nte));
    free(tr2); free(te2);
    // over seeds, every scenario is held out sometimes (the shuffle is not stuck)
    int ever[S] = {0};
    for (uint64_t seed = 0; seed < 40; seed++) {
        h.seed = seed;
        CHECK_OK(sc_split_make(&h, counts, S, &tr2, &ntr2, &te2, &nte2));
        for (int i = 0; i < nte2; i++) ever[te2[i].scenario] = 1;
        free(tr2); free(te2);
    }
    for (int s = 0; s < S; s++) CHECK(ever[s]);
    free(tr); free(te);
    h.holdout = S;
    CHECK_ERR(sc_split_make(&h, counts, S, &tr, &ntr, &te, &nte), SC_ERR_ARG, "holding out 6 of 6");
    o.test_per = 0;
    CHECK_ERR(sc_split_make(&o, counts, S, &tr, &ntr, &te, &nte), SC_ERR_ARG, "at least 1");
}

int main(void) {
    test_scenarios();
    test_similarity();
    test_checks();
    test_pools();
    test_prompts_csv();
    test_answers();
    test_split();
    return sc_test_finish("test_dataset_gen");
}
