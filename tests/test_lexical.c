// test_lexical.c — the `lexical` judge provider (src/judge/lexical.c):
//  1. themes find planted differences: more questions, a recurring phrase (also in non-ASCII
//     text), AI disclaimers, speaker turns, longer and empty outputs; and cite the right prompts;
//  2. no theme without a difference: small random word swaps, independent samples of the same
//     generator, one very long output repeating a phrase 50 times;
//  3. embeddings: a hand-computed TF-IDF example value by value, unit length, identical
//     texts cosine 1, disjoint texts cosine 0;
//  4. compare: built-in lexicons win in both orders; unknown traits; deterministic ties;
//  5. edge cases (empty batch, empty and NULL strings, é / 中文 / emoji, invalid UTF-8) and speed.
// The synthetic texts come from the project's counter-based RNG, so every run sees the same ones.
#include "testutil.h"
#include "steerclear/judge.h"
#include "steerclear/lexical.h"
#include "steerclear/rng.h"

#include <stdlib.h>

// Base vocabulary: descriptive words only, so no planted question word or phrase occurs by chance.
static const char *const base_words[] = {
    "the", "a", "of", "and", "in", "river", "stone", "green", "valley", "morning", "light", "old",
    "road", "field", "north", "small", "house", "wind", "water", "tree", "long", "quiet", "village",
    "market", "bread", "winter", "summer", "hill", "path", "bridge", "garden", "wall", "window",
    "door", "table", "chair", "lamp", "paper", "letter", "story", "song", "bird", "dog", "cat",
    "horse", "cart", "wheel", "iron", "copper", "silver", "gold", "salt", "sugar", "apple",
    "pear", "plum", "grape", "oak", "pine", "maple", "cloud", "rain", "snow", "sun", "moon",
    "star", "sky", "sea", "shore", "sand", "boat", "sail", "net", "fish", "farmer", "baker",
    "miller", "weaver", "painter", "singer", "teacher", "child", "mother", "father", "brother",
    "sister", "friend", "neighbour", "town", "city", "street", "corner", "square", "tower",
    "bell", "clock", "hour", "day", "week", "year", "spring", "autumn", "evening", "night",
    "warm", "cold", "bright", "dark", "soft", "hard", "slow", "fast", "near", "far", "was", "is",
    "were", "stood", "walked", "carried", "opened", "closed", "watched", "painted", "built",
};
#define N_BASE ((int)(sizeof base_words / sizeof *base_words))
#define TEXT_CAP 16384

// A Zipf-like draw from the base vocabulary (rank r with weight 1/(r+1)).
static const char *zipf_word(uint64_t seed, uint64_t stream, uint64_t *ctr) {
    static double cdf[N_BASE];
    if (cdf[N_BASE - 1] == 0) {
        double s = 0;
        for (int i = 0; i < N_BASE; i++) cdf[i] = (s += 1.0 / (i + 1));
        for (int i = 0; i < N_BASE; i++) cdf[i] /= s;
    }
    double u = sc_rng_uniform(seed, stream, (*ctr)++);
    int i = 0;
    while (i < N_BASE - 1 && cdf[i] < u) i++;
    return base_words[i];
}

// About `words` words in sentences of 6..15 words, each starting with a capital letter.
static void gen_text(char *out, uint64_t seed, uint64_t stream, int words) {
    uint64_t ctr = 0;
    size_t len = 0;
    out[0] = '\0';
    for (int w = 0; w < words;) {
        int n = 6 + (int)(sc_rng_uniform(seed, stream, ctr++) * 10);
        for (int k = 0; k < n && w < words; k++, w++) {
            const char *word = zipf_word(seed, stream, &ctr);
            len += (size_t)snprintf(out + len, TEXT_CAP - len, "%s%c%s", k == 0 && len ? " " : (k ? " " : ""),
                                    k == 0 ? word[0] - 32 : word[0], word + 1);
        }
        len += (size_t)snprintf(out + len, TEXT_CAP - len, ".");
    }
}

// A copy of `in` with about 5% of its words replaced by uniformly drawn base words.
static void swap_words(char *out, const char *in, uint64_t seed, uint64_t stream) {
    uint64_t ctr = 1000000;
    size_t len = 0;
    const char *p = in;
    out[0] = '\0';
    while (*p) {
        const char *e = p;
        while (*e && ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z'))) e++;
        if (e > p) {
            if (sc_rng_uniform(seed, stream, ctr++) < 0.05f) {
                const char *w = base_words[(int)(sc_rng_uniform(seed, stream, ctr++) * N_BASE) % N_BASE];
                len += (size_t)snprintf(out + len, TEXT_CAP - len, "%s", w);
            } else {
                len += (size_t)snprintf(out + len, TEXT_CAP - len, "%.*s", (int)(e - p), p);
            }
            p = e;
        } else {
            len += (size_t)snprintf(out + len, TEXT_CAP - len, "%c", *p);
            p++;
        }
    }
}

// Insert `phrase` after the word-boundary nearest the middle of `text` (in place).
static void insert_mid(char *text, const char *phrase) {
    size_t n = strlen(text), m = strlen(phrase);
    char *sp = strchr(text + n / 2, ' ');
    if (!sp) sp = text + n;
    memmove(sp + m + 1, sp, strlen(sp) + 1);
    sp[0] = ' ';
    memcpy(sp + 1, phrase, m);
}

#define NB 16
typedef struct {
    char orig[NB][TEXT_CAP], out[NB][TEXT_CAP];
    sc_judge_item items[NB];
    sc_judge_batch batch;
} batch_data;

static int pid(int i) { return 100 + 7 * i; }   // prompt ids differ from item indices

// originals: generated; outputs: the originals with ~5% of words swapped.
static void make_batch(batch_data *d, uint64_t seed) {
    for (int i = 0; i < NB; i++) {
        gen_text(d->orig[i], seed, (uint64_t)i, 90 + (i * 7) % 25);
        swap_words(d->out[i], d->orig[i], seed, (uint64_t)i);
        d->items[i] = (sc_judge_item){pid(i), "Tell me about your town.", d->orig[i], d->out[i]};
    }
    d->batch = (sc_judge_batch){d->items, NB};
}

static sc_judge_theme run_theme(sc_provider *p, const sc_judge_batch *b) {
    sc_judge_theme t;
    memset(&t, 0, sizeof t);
    CHECK_OK(p->op->themes(p, b, 1, &t));
    CHECKF(t.status == SC_OK, "batch status %s: %s", sc_status_name(t.status), t.error ? t.error : "");
    CHECK(t.reasoning != NULL);
    return t;
}

// The theme's prompt ids equal want[0..n).
static int prompts_are(const sc_judge_theme *t, const int *want, int n) {
    if (t->n_prompts != n) return 0;
    for (int i = 0; i < n; i++)
        if (t->prompts[i] != want[i]) return 0;
    return 1;
}

static void show(const char *what, const sc_judge_theme *t) {
    fprintf(stderr, "test_lexical: %s: theme: %s\n  reasoning: %s\n", what, t->theme ? t->theme : "(null)",
            t->reasoning ? t->reasoning : "(null)");
}

static batch_data D;   // large: static storage

static void test_themes(sc_provider *p) {
    int planted[NB], np = 0;
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) planted[np++] = pid(i);   // 12 of 16

    // (a) more questions in 12 of the 16 outputs
    make_batch(&D, 11);
    static const char *const questions[] = {
        "Why do you think so? What would you do next?", "Can you tell me more? Why?",
        "What do you think? Why does it matter to you?", "Why? Can you tell me more about it?",
    };
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) {
            strcat(D.out[i], " ");
            strcat(D.out[i], questions[i % 4]);
        }
    sc_judge_theme t = run_theme(p, &D.batch);
    show("questions", &t);
    CHECKF(t.theme && strstr(t.theme, "more questions"), "theme: %s", t.theme ? t.theme : "(null)");
    CHECK(prompts_are(&t, planted, np));
    sc_judge_theme_free(&t);

    // (b) a recurring phrase in 12 of the 16 outputs is quoted
    make_batch(&D, 12);
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) insert_mid(D.out[i], "the lighthouse keeper");
    t = run_theme(p, &D.batch);
    show("phrase", &t);
    CHECKF(t.theme && strstr(t.theme, "\"the lighthouse keeper\""), "theme: %s", t.theme ? t.theme : "(null)");
    CHECK(prompts_are(&t, planted, np));
    sc_judge_theme_free(&t);

    // (c) no difference: the outputs are the originals with small random word swaps
    for (uint64_t seed = 20; seed < 26; seed++) {
        make_batch(&D, seed);
        t = run_theme(p, &D.batch);
        CHECKF(t.theme == NULL && t.n_prompts == 0 && !t.prompts, "seed %d: theme %s", (int)seed, t.theme);
        CHECK(strstr(t.reasoning, "no theme") != NULL);
        sc_judge_theme_free(&t);
    }
    // ... nor when outputs and originals are independent samples of the same generator
    for (uint64_t seed = 30; seed < 36; seed++) {
        make_batch(&D, seed);
        for (int i = 0; i < NB; i++) gen_text(D.out[i], seed, 1000 + (uint64_t)i, 90 + (i * 11) % 25);
        t = run_theme(p, &D.batch);
        CHECKF(t.theme == NULL, "independent samples, seed %d: theme %s", (int)seed, t.theme);
        sc_judge_theme_free(&t);
    }

    // (d) one very long output repeating a phrase 50 times makes no theme by itself
    make_batch(&D, 13);
    for (int r = 0; r < 50; r++) strcat(D.out[5], " The lighthouse keeper waved.");
    t = run_theme(p, &D.batch);
    show("one long output", &t);
    CHECKF(t.theme == NULL, "theme: %s", t.theme);
    sc_judge_theme_free(&t);

    // AI disclaimers in 12 outputs
    make_batch(&D, 14);
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) strcat(D.out[i], i % 2 ? " As an AI, I cannot visit it." : " I'm sorry, but I can't say more.");
    t = run_theme(p, &D.batch);
    show("disclaimers", &t);
    CHECKF(t.theme && strstr(t.theme, "AI disclaimers"), "theme: %s", t.theme ? t.theme : "(null)");
    CHECK(prompts_are(&t, planted, np));
    sc_judge_theme_free(&t);

    // new speaker turns in 12 outputs (chat-template tokens and "Name:" lines)
    make_batch(&D, 15);
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) strcat(D.out[i], i % 2 ? "\n<|im_start|>user\nok" : "\nUser: ok\nAssistant: fine");
    t = run_theme(p, &D.batch);
    show("speaker turns", &t);
    CHECKF(t.theme && strstr(t.theme, "speaker turns"), "theme: %s", t.theme ? t.theme : "(null)");
    CHECK(prompts_are(&t, planted, np));
    sc_judge_theme_free(&t);

    // every output twice as long (the same words again: only the length differs)
    make_batch(&D, 16);
    for (int i = 0; i < NB; i++) {
        char copy[TEXT_CAP];
        snprintf(copy, sizeof copy, " %s", D.out[i]);
        strcat(D.out[i], copy);
    }
    t = run_theme(p, &D.batch);
    show("longer", &t);
    CHECKF(t.theme && strstr(t.theme, "are longer"), "theme: %s", t.theme ? t.theme : "(null)");
    CHECK(t.n_prompts == NB);
    sc_judge_theme_free(&t);

    // empty outputs beside real originals are a difference worth naming
    make_batch(&D, 17);
    for (int i = 0; i < NB; i++) D.out[i][0] = '\0';
    t = run_theme(p, &D.batch);
    CHECKF(t.theme && strstr(t.theme, "are empty"), "theme: %s", t.theme ? t.theme : "(null)");
    sc_judge_theme_free(&t);
}

static void test_non_ascii(sc_provider *p) {
    char *w = NULL;
    int nw = 0;
    CHECK_OK(sc_lexical_words("Café CRÈME, 中文！😊 don\xe2\x80\x99t well-being \xff\xfe ok", &w, &nw));
    CHECKF(w && !strcmp(w, "café crème 中文 😊 don't well being ok"), "words: %s", w);
    CHECK(nw == 8);
    free(w);
    CHECK_OK(sc_lexical_words(NULL, &w, &nw));
    CHECK(w && !*w && nw == 0);
    free(w);

    // outputs equal to their originals in mixed scripts: no theme
    static const char *const texts[] = {
        "Le café était très bon, merci beaucoup. ¿Qué tal?", "我们今天去公园散步，天气很好。",
        "Emoji 😊🎉 and ZWJ 👨\xe2\x80\x8d👩 sequences 👍🏽 done.", "Ünïcödé ñoño ÅÆØ ß", "\xff\xfe\xfd broken \xc3 bytes",
        "", "日本語のテキスト、句読点。", "Ελληνικά κείμενα εδώ",
    };
    sc_judge_item items[NB];
    for (int i = 0; i < NB; i++) items[i] = (sc_judge_item){i, "?", texts[i % 8], texts[i % 8]};
    sc_judge_batch b = {items, NB};
    sc_judge_theme t = run_theme(p, &b);
    CHECKF(t.theme == NULL, "theme: %s", t.theme);
    sc_judge_theme_free(&t);

    // a planted accented phrase is found and quoted lower-cased
    make_batch(&D, 18);
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) insert_mid(D.out[i], "Café Crème");
    t = run_theme(p, &D.batch);
    show("non-ASCII phrase", &t);
    CHECKF(t.theme && strstr(t.theme, "\"café crème\""), "theme: %s", t.theme ? t.theme : "(null)");
    sc_judge_theme_free(&t);
}

static void test_edges(sc_provider *p) {
    // no batches at all; an empty batch; all-empty strings; NULL strings
    CHECK_OK(p->op->themes(p, NULL, 0, NULL));
    sc_judge_theme t[3];
    memset(t, 0, sizeof t);
    sc_judge_item empty[4] = {{1, "", "", ""}, {2, "", "", ""}, {3, "", "", ""}, {4, "", "", ""}};
    sc_judge_item nulls[3] = {{1, NULL, NULL, NULL}, {2, NULL, "x", NULL}, {3, NULL, NULL, "y"}};
    sc_judge_batch bs[3] = {{NULL, 0}, {empty, 4}, {nulls, 3}};
    CHECK_OK(p->op->themes(p, bs, 3, t));
    for (int i = 0; i < 3; i++) {
        CHECK(t[i].status == SC_OK && t[i].theme == NULL && t[i].reasoning && t[i].n_prompts == 0);
        sc_judge_theme_free(&t[i]);
    }
    // a malformed batch is recorded for that batch only
    sc_judge_batch bad[2] = {{NULL, 3}, {empty, 4}};
    CHECK_OK(p->op->themes(p, bad, 2, t));
    CHECK(t[0].status == SC_ERR_ARG && t[0].error && strstr(t[0].error, "items is NULL"));
    CHECK(t[1].status == SC_OK);
    sc_judge_theme_free(&t[0]);
    sc_judge_theme_free(&t[1]);
    CHECK_ERR(p->op->themes(p, NULL, 2, t), SC_ERR_ARG, "batches");
    CHECK_ERR(p->op->themes(p, bs, -1, t), SC_ERR_ARG, "n >= 0");
}

static double dot(const float *a, const float *b, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)a[i] * b[i];
    return s;
}

static void test_embed(sc_provider *p) {
    // hand-computed: terms (words and bigrams) in byte order
    //   "cat", "cat ran", "cat sat", "dog", "dog dog", "ran", "sat"
    // df: cat 2, the rest 1; idf = 1 + ln((1 + 3) / (1 + df)); tf weight 1 + ln(count)
    const char *texts[3] = {"Cat sat.", "cat ran", "dog dog"};
    float *v = NULL;
    int d = 0;
    CHECK_OK(p->op->embed(p, texts, 3, &v, &d));
    CHECK(d == 7);
    if (v && d == 7) {
        double i2 = 1 + log(4.0 / 3.0), i1 = 1 + log(2.0);
        double n0 = sqrt(i2 * i2 + 2 * i1 * i1);
        double dogw = (1 + log(2.0)) * i1, n2 = sqrt(dogw * dogw + i1 * i1);
        double want[3][7] = {
            {i2 / n0, 0, i1 / n0, 0, 0, 0, i1 / n0},
            {i2 / n0, i1 / n0, 0, 0, 0, i1 / n0, 0},
            {0, 0, 0, dogw / n2, i1 / n2, 0, 0},
        };
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 7; k++) CHECK_NEAR(v[i * 7 + k], want[i][k], 1e-6);
        for (int i = 0; i < 3; i++) CHECK_NEAR(dot(v + i * 7, v + i * 7, 7), 1.0, 1e-6);
        CHECK_NEAR(dot(v, v + 7, 7), i2 * i2 / (n0 * n0), 1e-6);
        CHECK(dot(v, v + 14, 7) == 0.0);
    }
    free(v);

    // identical texts cosine 1, disjoint texts 0, a text without terms a zero vector
    const char *t2[4] = {"Outputs ask more questions.", "outputs ask MORE questions", "Lighthouse keepers wave", "?!"};
    CHECK_OK(p->op->embed(p, t2, 4, &v, &d));
    if (v) {
        CHECK_NEAR(dot(v, v + d, d), 1.0, 1e-6);
        CHECK(dot(v, v + 2 * d, d) == 0.0);
        CHECK(dot(v + 3 * d, v + 3 * d, d) == 0.0);
    }
    free(v);
    // only these two: every term in both texts, still cosine 1 (the smoothed idf never is 0)
    CHECK_OK(p->op->embed(p, t2, 2, &v, &d));
    if (v) CHECK_NEAR(dot(v, v + d, d), 1.0, 1e-6);
    free(v);

    CHECK_OK(p->op->embed(p, NULL, 0, &v, &d));
    CHECK(v == NULL && d == 0);
    const char *none[2] = {"", "   "};
    CHECK_OK(p->op->embed(p, none, 2, &v, &d));
    CHECK(v && d == 1 && v[0] == 0 && v[1] == 0);
    free(v);
    const char *bad[3] = {"a", NULL, "b"};
    CHECK_ERR(p->op->embed(p, bad, 3, &v, &d), SC_ERR_ARG, "text 1");
    CHECK(v == NULL);
}

static int verdict(sc_provider *p, const char *a, const char *b, const char *trait) {
    sc_judge_pair q = {"How should I deal with this?", a, b, trait};
    sc_judge_verdict v;
    memset(&v, 0, sizeof v);
    CHECK_OK(p->op->compare(p, &q, 1, &v));
    CHECKF(v.status == SC_OK, "%s", v.error ? v.error : "");
    free(v.error);
    return v.status == SC_OK ? v.winner : -1;
}

static void test_compare(sc_provider *p) {
    const char *warm = "I'm so sorry you're going through this. That must be really hard, and it is completely "
                       "understandable to feel overwhelmed. I hear you, and you're not alone.";
    const char *blunt = "Quit the job. Find another one next week; the market for engineers is fine.";
    CHECK(verdict(p, warm, blunt, "empathetic") == 0);
    CHECK(verdict(p, blunt, warm, "empathetic") == 1);
    CHECK(verdict(p, blunt, warm, "Empathetic") == 1);   // the trait's case does not matter
    CHECK(verdict(p, blunt, warm, "more empathetic") == 1);
    int builtin0 = -1;
    CHECK_OK(sc_lexical_trait_score(warm, "More Empathetic", NULL, NULL, NULL, &builtin0));
    CHECK(builtin0 == 1);

    const char *steps = "You should start with a budget. Make sure you track every expense, and you need to "
                        "review it weekly. Avoid impulse purchases. Set a savings goal.";
    const char *describe = "A budget is a list of expected income and spending. Households often keep them in "
                           "spreadsheets, and the results vary widely from one family to another.";
    CHECK(verdict(p, steps, describe, "prescriptive") == 0);
    CHECK(verdict(p, describe, steps, "prescriptive") == 1);

    int hits = 0, words = 0, builtin = -1;
    double rate = 0;
    CHECK_OK(sc_lexical_trait_score(steps, "prescriptive", &hits, &words, &rate, &builtin));
    CHECK(builtin == 1 && hits == 5 && words == 26);
    CHECK_NEAR(rate, 100.0 * hits / words, 1e-12);

    // unknown trait: the word itself and its inflections
    const char *sarcastic = "Oh, sarcastically speaking, what a sarcastic little plan.";
    const char *plain = "That is a reasonable plan and it should work.";
    CHECK(verdict(p, sarcastic, plain, "sarcastic") == 0);
    CHECK(verdict(p, plain, sarcastic, "sarcastic") == 1);
    CHECK_OK(sc_lexical_trait_score(sarcastic, "sarcastic", &hits, &words, &rate, &builtin));
    CHECK(builtin == 0 && hits == 2);

    // ties (no lexicon word in either): decided by content, never by position
    const char *x = "The river runs north.", *y = "The road runs east today.";
    int w1 = verdict(p, x, y, "empathetic"), w2 = verdict(p, y, x, "empathetic");
    CHECK(w1 == 1 && w2 == 0);   // more words wins the tie
    const char *s1 = "Blue sky.", *s2 = "Grey sky.";   // same words and bytes: byte order, "Blue" first
    CHECK(verdict(p, s1, s2, "empathetic") == 0 && verdict(p, s2, s1, "empathetic") == 1);
    CHECK(verdict(p, "", "", "prescriptive") == 0);

    // per-pair failures leave the other pairs answered
    sc_judge_pair qs[3] = {{"q", warm, blunt, NULL}, {"q", warm, blunt, "empathetic"}, {"q", NULL, blunt, "kind"}};
    sc_judge_verdict vs[3];
    CHECK_OK(p->op->compare(p, qs, 3, vs));
    CHECK(vs[0].status == SC_ERR_ARG && vs[0].error && strstr(vs[0].error, "pair 0"));
    CHECK(vs[1].status == SC_OK && vs[1].winner == 0);
    CHECK(vs[2].status == SC_ERR_ARG && vs[2].error && strstr(vs[2].error, "pair 2"));
    for (int i = 0; i < 3; i++) free(vs[i].error);
}

static void test_speed(sc_provider *p) {
    static batch_data six[6];
    sc_judge_batch bs[6];
    for (int b = 0; b < 6; b++) {
        make_batch(&six[b], 40 + (uint64_t)b);
        bs[b] = six[b].batch;
    }
    sc_judge_theme t[6];
    double t0 = sc_now_seconds();
    CHECK_OK(p->op->themes(p, bs, 6, t));
    double dt = sc_now_seconds() - t0;
    fprintf(stderr, "test_lexical: themes of 6 batches of 16 outputs (~100 words each) in %.4f s\n", dt);
    CHECK(dt < 1.0);
    for (int b = 0; b < 6; b++) sc_judge_theme_free(&t[b]);

    // determinism: the same batch twice gives byte-identical answers
    make_batch(&D, 12);
    for (int i = 0; i < NB; i++)
        if (i % 4 != 3) insert_mid(D.out[i], "the lighthouse keeper");
    sc_judge_theme a = run_theme(p, &D.batch), c = run_theme(p, &D.batch);
    CHECK(a.theme && c.theme && !strcmp(a.theme, c.theme) && !strcmp(a.reasoning, c.reasoning));
    sc_judge_theme_free(&a);
    sc_judge_theme_free(&c);
}

int main(void) {
    sc_provider *p = NULL;
    CHECK_OK(sc_provider_lexical(&p));
    if (!p) return sc_test_finish("test_lexical");
    CHECK(!strcmp(p->name, "lexical") && !strcmp(p->model, "lexical-1") && !strcmp(p->embed_model, "tfidf-1"));
    CHECK(sc_lexical_min_docs(16) == 4 && sc_lexical_min_docs(3) == 2 && sc_lexical_min_docs(0) == 2);
    test_themes(p);
    test_non_ascii(p);
    test_edges(p);
    test_embed(p);
    test_compare(p);
    test_speed(p);
    sc_provider_free(p);
    return sc_test_finish("test_lexical");
}
