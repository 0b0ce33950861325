// fuzz_checkpoint_cfg.h — the small search configuration that fuzz_checkpoint loads against
// and make_seeds writes its seed checkpoints with (they must agree for the seeds to be valid).
#ifndef STEERCLEAR_FUZZ_CHECKPOINT_CFG_H
#define STEERCLEAR_FUZZ_CHECKPOINT_CFG_H

#include "steerclear/search.h"

#define FUZZ_CKPT_L 2
#define FUZZ_CKPT_C 8

static inline void fuzz_checkpoint_config(sc_search_config *cfg) {
    sc_search_config_default(cfg);
    cfg->adapter = SC_ADAPTER_SHARED;
    cfg->rank = 2;
    cfg->batch_size = 2;
    cfg->prompts_per_search = 4;   // 2 steps
    cfg->epochs = 1;
    cfg->max_new_tokens = 4;
    cfg->searches = 2;
}

#endif
