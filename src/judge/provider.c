// provider.c — what every judge provider shares: freeing answers and providers.
#include "steerclear/judge.h"

#include <stdlib.h>

void sc_judge_theme_free(sc_judge_theme *t) {
    if (!t) return;
    free(t->error);
    free(t->reasoning);
    free(t->theme);
    free(t->prompts);
    t->error = t->reasoning = t->theme = NULL;
    t->prompts = NULL;
    t->n_prompts = 0;
}

void sc_provider_free(sc_provider *p) {
    if (p && p->op && p->op->free) p->op->free(p);
}

void sc_provider_outcomes_free(sc_provider_outcome *out, int n) {
    if (!out) return;
    for (int i = 0; i < n; i++) { free(out[i].error); out[i].error = NULL; }
}
