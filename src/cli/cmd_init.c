/* cmd_init.c: `cpt init`: a randomly initialised model directory from a config.json
 * (for pretraining from scratch, benchmarks and the self-contained demo). */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/model.h"
#include "cpt/safetensors.h"
#include "cpt/tokenizer.h"

int cpt_cmd_init(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *tok = NULL;
    int bytetok = 0;
    long long seed = 0;
    double std = 0.02;
    cpt_opt opts[] = {
        {"--config", CPT_OPT_STR, &config, "FILE", "config.json of a Llama/Mistral/Qwen2/Qwen3 model", 1, 0, 0, NULL, 0},
        {"--out", CPT_OPT_STR, &out, "DIR", "output Hugging Face model directory", 1, 0, 0, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "random seed", 0, 0, 9.2e18, NULL, 0},
        {"--std", CPT_OPT_FLOAT, &std, "X", "standard deviation of the normal init of matrices", 0, 1e-6, 10, NULL, 0},
        {"--tokenizer", CPT_OPT_STR, &tok, "DIR", "copy tokenizer files from this directory", 0, 0, 0, NULL, 0},
        {"--byte-tokenizer", CPT_OPT_FLAG, &bytetok, NULL, "write a byte-level tokenizer (ids 0-255 = bytes, 256 <|bos|>, 257 <|eos|>)", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"init", "Write a randomly initialised model (norms 1, biases 0, matrices N(0, std)) as a HF directory.",
                         NULL, opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    cpt_err err = {0};
    cpt_config cfg;
    cpt_model *m = NULL;
    int rc = cpt_config_load(&cfg, config, &err);
    if (!rc) {
        rc = cpt_model_create(&m, &cfg, &err);
        cpt_config_free(&cfg);
    }
    if (!rc) {
        cpt_model_init_random(m, (uint64_t)seed, (float)std);
        rc = cpt_model_save_hf(m, out, CPT_DT_F32, 0, tok, &err);
    }
    if (!rc && bytetok) {
        if (m->cfg.vocab_size < 258)
            rc = cpt_err_set(&err, CPT_EINVAL, "--byte-tokenizer needs vocab_size >= 258 in %s (it has %d)", config, m->cfg.vocab_size);
        else
            rc = cpt_tok_write_bytelevel(out, &err);
    }
    if (!rc) fprintf(stderr, "cpt init: wrote %s (%d tensors)\n", out, m->n_tensors);
    cpt_model_free(m);
    return rc ? cpt_cli_fail("init", &err) : 0;
}
