// test_dataset.c — the prompt CSV reader: RFC 4180 parsing (multi-line quoted fields, "",
// commas, CRLF, BOM, column order, extra columns), every error path and its message, and
// the shipped datasets/train.csv and test.csv (counts, prompt shape, no scene in both).
#include "testutil.h"
#include "steerclear/dataset.h"

#include <stdlib.h>

static char path_buf[4200];

// Writes `data` to a fresh file named `name` in the test's temporary directory.
static const char *fixture(const char *name, const char *data) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", sc_test_tmpdir(), name);
    sc_test_write(path_buf, data, strlen(data));
    return path_buf;
}

static sc_status load_str(const char *name, const char *data, sc_dataset_kind kind, sc_dataset *ds) {
    return sc_dataset_load(fixture(name, data), kind, ds);
}

// ---------------------------------------------------------------------------------------
// Parsing

static void test_parsing(void) {
    sc_dataset ds;

    // Multi-line quoted fields, "" inside quotes, commas inside quotes, no trailing newline.
    CHECK_OK(load_str("basic.csv",
        "category,full_prompt\n"
        "night_shift,\"Two nurses talk.\n<|im_start|>Nurse Ada\nI said \"\"fine\"\", but, honestly, no.\n<|im_end|>\n\n<|im_start|>Dr. Osei\"\n"
        "forum,plain text without quotes",
        SC_DATASET_TRAIN, &ds));
    CHECK(ds.n == 2);
    if (ds.n == 2) {
        CHECK(!strcmp(ds.items[0].category, "night_shift"));
        CHECK(!strcmp(ds.items[0].full_prompt,
              "Two nurses talk.\n<|im_start|>Nurse Ada\nI said \"fine\", but, honestly, no.\n<|im_end|>\n\n<|im_start|>Dr. Osei"));
        CHECK(ds.items[0].prompt == NULL && ds.items[0].original_completion == NULL);
        CHECK(ds.items[0].line == 2);
        CHECK(!strcmp(ds.items[1].full_prompt, "plain text without quotes"));
        CHECK(ds.items[1].line == 8);  // the first record spans lines 2-7
    }
    sc_dataset_free(&ds);
    CHECK(ds.items == NULL && ds.n == 0);

    // CRLF line endings (CRLF inside a quoted field becomes LF), a BOM, trailing blank lines.
    CHECK_OK(load_str("crlf.csv",
        "\xEF\xBB\xBF" "category,full_prompt\r\n"
        "a,\"one\r\ntwo\"\r\n"
        "b,three\r\n\r\n\r\n",
        SC_DATASET_TRAIN, &ds));
    CHECK(ds.n == 2);
    if (ds.n == 2) {
        CHECK(!strcmp(ds.items[0].category, "a"));
        CHECK(!strcmp(ds.items[0].full_prompt, "one\ntwo"));
        CHECK(!strcmp(ds.items[1].full_prompt, "three"));
        CHECK(ds.items[1].line == 4);
    }
    sc_dataset_free(&ds);

    // Test kind: columns in another order, extra columns ignored, quoted header names,
    // optional original_completion (may be empty), UTF-8 text, a blank line between records.
    CHECK_OK(load_str("test_order.csv",
        "notes,full_prompt,\"prompt\",original_completion,category\n"
        "x,\"Scene.\n<|im_start|>user\nCafé — naïve? 你好\n<|im_end|>\n\n<|im_start|>assistant\",\"<|im_start|>user\",done,cafe\n"
        "\n"
        "y,full two,prompt two,,other\n",
        SC_DATASET_TEST, &ds));
    CHECK(ds.n == 2);
    if (ds.n == 2) {
        CHECK(!strcmp(ds.items[0].category, "cafe"));
        CHECK(!strcmp(ds.items[0].prompt, "<|im_start|>user"));
        CHECK(strstr(ds.items[0].full_prompt, "Café — naïve? 你好") != NULL);
        CHECK(!strcmp(ds.items[0].original_completion, "done"));
        CHECK(!strcmp(ds.items[1].category, "other"));
        CHECK(!strcmp(ds.items[1].prompt, "prompt two"));
        CHECK(!strcmp(ds.items[1].full_prompt, "full two"));
        CHECK(ds.items[1].original_completion && ds.items[1].original_completion[0] == '\0');
        CHECK(ds.items[1].line == 9);
    }
    sc_dataset_free(&ds);

    // Test file without original_completion; a train file may carry test columns (ignored).
    CHECK_OK(load_str("test_noorig.csv", "category,prompt,full_prompt\nc,p,f\n", SC_DATASET_TEST, &ds));
    CHECK(ds.n == 1 && ds.items[0].original_completion == NULL && !strcmp(ds.items[0].prompt, "p"));
    sc_dataset_free(&ds);
    CHECK_OK(load_str("train_extra.csv", "category,prompt,full_prompt\nc,p,f\n", SC_DATASET_TRAIN, &ds));
    CHECK(ds.n == 1 && ds.items[0].prompt == NULL && !strcmp(ds.items[0].full_prompt, "f"));
    sc_dataset_free(&ds);

    // Header names tolerate surrounding spaces; an empty quoted field next to others; empty last field.
    CHECK_OK(load_str("spaces.csv", " category , full_prompt ,extra\nc,\"f\",\"\"\nd,g,\n", SC_DATASET_TRAIN, &ds));
    CHECK(ds.n == 2 && !strcmp(ds.items[1].full_prompt, "g"));
    sc_dataset_free(&ds);
}

// ---------------------------------------------------------------------------------------
// Errors: each names the file and the line

static void test_errors(void) {
    sc_dataset ds;
    char name[64];

    CHECK_ERR(sc_dataset_load("/nonexistent/train.csv", SC_DATASET_TRAIN, &ds), SC_ERR_IO,
              "/nonexistent/train.csv", "cannot open");
    CHECK(ds.items == NULL && ds.n == 0);

    // Missing columns: named, with the header found.
    CHECK_ERR(load_str("nocol.csv", "category,text\nc,hello\n", SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT,
              "nocol.csv:1:", "missing required column 'full_prompt'", "header found is 'category,text'",
              "category,full_prompt");
    CHECK_ERR(load_str("nocol_test.csv", "full_prompt,category\nf,c\n", SC_DATASET_TEST, &ds), SC_ERR_FORMAT,
              "nocol_test.csv:1:", "missing required column 'prompt'", "'full_prompt,category'",
              "category,prompt,full_prompt");
    CHECK_ERR(load_str("nocat.csv", "\n\nprompt,full_prompt\np,f\n", SC_DATASET_TEST, &ds), SC_ERR_FORMAT,
              "nocat.csv:3:", "missing required column 'category'");
    CHECK_ERR(load_str("semicolon.csv", "category;full_prompt\nc;f\n", SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT,
              "semicolon.csv:1:", "missing required column 'category'", "save it with commas");
    CHECK_ERR(load_str("dup.csv", "category,full_prompt,full_prompt\nc,f,g\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "dup.csv:1:", "'full_prompt' appears twice");

    // Unterminated quote: the line where the quoted field started.
    CHECK_ERR(load_str("unterm.csv", "category,full_prompt\na,b\nc,\"open\nstill open\nand more\n",
              SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, "unterm.csv:3:", "unterminated quoted field",
              "opened on line 3");
    CHECK_ERR(load_str("unterm_hdr.csv", "\"category,full_prompt\n", SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT,
              "unterm_hdr.csv:1:", "unterminated");

    // Empty prompts, whitespace-only prompts, empty categories.
    CHECK_ERR(load_str("empty_prompt.csv", "category,full_prompt\na,ok\nb,\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "empty_prompt.csv:3:", "empty full_prompt");
    CHECK(ds.items == NULL && ds.n == 0);  // a failure after some rows leaves nothing behind
    CHECK_ERR(load_str("blank_prompt.csv", "category,full_prompt\na,ok\n\nb,\"  \n \"\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "blank_prompt.csv:4:", "empty full_prompt");
    CHECK_ERR(load_str("empty_test_prompt.csv", "category,prompt,full_prompt\na,,f\n", SC_DATASET_TEST, &ds),
              SC_ERR_FORMAT, "empty_test_prompt.csv:2:", "empty prompt");
    CHECK_ERR(load_str("empty_cat.csv", "category,full_prompt\na,x\n,y\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "empty_cat.csv:3:", "empty category");

    // Wrong number of fields (too few, too many: an unquoted comma).
    CHECK_ERR(load_str("few.csv", "category,prompt,full_prompt\na,b,c\nd,e\n", SC_DATASET_TEST, &ds),
              SC_ERR_FORMAT, "few.csv:3:", "record has 2 fields but the header has 3");
    CHECK_ERR(load_str("many.csv", "category,full_prompt\na,\"multi\nline\"\nb,hello, world\n",
              SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, "many.csv:4:", "record has 3 fields but the header has 2");
    CHECK_ERR(load_str("one.csv", "category,full_prompt\nlonely\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "one.csv:2:", "record has 1 field but");

    // Stray quotes: inside an unquoted field, text after a closing quote.
    CHECK_ERR(load_str("stray.csv", "category,full_prompt\na,b\nc,say \"hi\"\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "stray.csv:3:", "stray quote inside an unquoted field");
    CHECK_ERR(load_str("after.csv", "category,full_prompt\na,\"x\ny\" z\n", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "after.csv:3:", "text after the closing quote");

    // A bare CR (old Mac line endings) is ambiguous.
    CHECK_ERR(load_str("cr.csv", "category,full_prompt\ra,b\r", SC_DATASET_TRAIN, &ds),
              SC_ERR_FORMAT, "cr.csv:1:", "carriage return without a line feed");

    // Invalid UTF-8: truncated sequence, overlong '/', a UTF-16 surrogate, a lone continuation byte.
    static const char *const bad_utf8[] = {
        "category,full_prompt\na,ok\nb,caf\xC3\n",
        "category,full_prompt\na,ok\nb,\xC0\xAF\n",
        "category,full_prompt\na,ok\nb,\"x\xED\xA0\x80y\"\n",
        "category,full_prompt\na,ok\nb,\x80\n",
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        snprintf(name, sizeof name, "utf8_%zu.csv", i);
        CHECK_ERR(load_str(name, bad_utf8[i], SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, name, ":3:",
                  "invalid UTF-8", "save the file as UTF-8");
    }
    // UTF-16 and NUL bytes.
    static const char utf16[] = "\xFF\xFE" "c\0a\0";
    snprintf(path_buf, sizeof path_buf, "%s/utf16.csv", sc_test_tmpdir());
    sc_test_write(path_buf, utf16, sizeof utf16 - 1);
    CHECK_ERR(sc_dataset_load(path_buf, SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, "utf16.csv:1:", "UTF-16");
    static const char nul[] = "category,full_prompt\na,b\0c\n";
    snprintf(path_buf, sizeof path_buf, "%s/nul.csv", sc_test_tmpdir());
    sc_test_write(path_buf, nul, sizeof nul - 1);
    CHECK_ERR(sc_dataset_load(path_buf, SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, "nul.csv:2:", "NUL byte");

    // Empty file, BOM only, blank lines only, header only.
    CHECK_ERR(load_str("empty.csv", "", SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, "empty.csv:1:",
              "the file is empty", "category,full_prompt");
    CHECK_ERR(load_str("bom.csv", "\xEF\xBB\xBF", SC_DATASET_TEST, &ds), SC_ERR_FORMAT, "bom.csv:1:",
              "the file is empty", "category,prompt,full_prompt");
    CHECK_ERR(load_str("blank.csv", "\n\r\n\n", SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT, "blank.csv:1:",
              "the file is empty");
    CHECK_ERR(load_str("hdr.csv", "category,full_prompt\n\n", SC_DATASET_TRAIN, &ds), SC_ERR_FORMAT,
              "hdr.csv:1:", "header but no prompts");
}

// ---------------------------------------------------------------------------------------
// The shipped datasets

// full_prompt = scene line + "\n" + "<|im_start|>ROLE1\nTEXT\n<|im_end|>\n\n<|im_start|>ROLE2".
static int chat_part_ok(const char *chat) {
    if (strncmp(chat, "<|im_start|>", 12) != 0) return 0;
    const char *role1_end = strchr(chat + 12, '\n');
    if (!role1_end || role1_end == chat + 12) return 0;
    const char *end = strstr(role1_end + 1, "\n<|im_end|>\n\n<|im_start|>");
    if (!end || end == role1_end + 1) return 0;
    const char *role2 = end + strlen("\n<|im_end|>\n\n<|im_start|>");
    return *role2 && !strchr(role2, '\n') && !strstr(role2, "<|");
}

static int category_ok(const char *c) {
    if (!*c) return 0;
    for (; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}

// Number of distinct categories; fills names (pointers into ds).
static size_t categories(const sc_dataset *ds, const char **names, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < ds->n; i++) {
        size_t j = 0;
        while (j < n && strcmp(names[j], ds->items[i].category)) j++;
        if (j == n && n < cap) names[n++] = ds->items[i].category;
    }
    return n;
}

static void check_shape(const sc_dataset *ds, const char *which) {
    int bad = 0;
    for (size_t i = 0; i < ds->n && bad < 5; i++) {
        const sc_prompt *p = &ds->items[i];
        const char *nl = strchr(p->full_prompt, '\n');
        int ok = category_ok(p->category) && nl && nl != p->full_prompt && chat_part_ok(nl + 1);
        if (p->prompt) ok = ok && !strcmp(p->prompt, nl ? nl + 1 : "");
        if (!ok) { bad++; CHECKF(0, "%s line %d: prompt does not have the documented shape", which, p->line); }
    }
}

static void test_shipped(void) {
    const char *src = sc_test_env("SC_SOURCE_DIR", ".");
    char train_path[4200], test_path[4200];
    snprintf(train_path, sizeof train_path, "%s/datasets/train.csv", src);
    snprintf(test_path, sizeof test_path, "%s/datasets/test.csv", src);
    sc_dataset train, test;
    CHECK_OK(sc_dataset_load(train_path, SC_DATASET_TRAIN, &train));
    CHECK_OK(sc_dataset_load(test_path, SC_DATASET_TEST, &test));
    CHECKF(train.n >= 384, "train.csv has %zu prompts, need >= 384 (two searches of 192)", train.n);
    CHECKF(test.n == 96, "test.csv has %zu prompts, need 96 (six judge batches of 16)", test.n);
    check_shape(&train, "train.csv");
    check_shape(&test, "test.csv");

    const char *tr[128], *te[128];
    size_t ntr = categories(&train, tr, 128), nte = categories(&test, te, 128);
    CHECKF(ntr >= 36, "train.csv has %zu scenes", ntr);
    CHECKF(nte >= 8 && nte <= 12, "test.csv has %zu scenes", nte);
    for (size_t i = 0; i < nte; i++)
        for (size_t j = 0; j < ntr; j++)
            CHECKF(strcmp(te[i], tr[j]) != 0, "scene '%s' is in both train.csv and test.csv", te[i]);
    // No prompt text is repeated within either file.
    size_t dups = 0;
    for (size_t i = 0; i < train.n; i++)
        for (size_t j = i + 1; j < train.n; j++)
            if (!strcmp(train.items[i].full_prompt, train.items[j].full_prompt) && dups++ < 3)
                fprintf(stderr, "train.csv lines %d and %d repeat a prompt\n", train.items[i].line, train.items[j].line);
    for (size_t i = 0; i < test.n; i++)
        for (size_t j = i + 1; j < test.n; j++)
            if (!strcmp(test.items[i].full_prompt, test.items[j].full_prompt) && dups++ < 3)
                fprintf(stderr, "test.csv lines %d and %d repeat a prompt\n", test.items[i].line, test.items[j].line);
    CHECKF(dups == 0, "%zu repeated prompts", dups);
    // One record read back exactly (as Python's csv module reads it).
    if (test.n == 96) {
        const sc_prompt *p = &test.items[3];
        CHECK(!strcmp(p->category, "night_ferry_strangers"));
        CHECK(!strcmp(p->prompt, "<|im_start|>Traveller\nI am running away from a wedding. Not mine. I am the best "
                                 "man. I left a note.\n<|im_end|>\n\n<|im_start|>Stranger"));
        CHECK(p->line == 32 && p->original_completion == NULL);
    }
    sc_dataset_free(&train);
    sc_dataset_free(&test);
}

int main(void) {
    test_parsing();
    test_errors();
    test_shipped();
    return sc_test_finish("test_dataset");
}
