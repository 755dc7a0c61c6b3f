/* train_lora.c: the recipe's lora.* block for `cpt train`: the adapter configuration
 * (PEFT's LoraConfig fields), checked against the rest of the recipe, and the adapter
 * built on the loaded model. The trainer then trains lo->pm (cpt/train.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cpt/lora.h"
#include "cpt/recipe.h"

/* One name of lora.targets / lora.modules_to_save into the config. */
static int add_name(cpt_lora_cfg *c, const char *name, int mts, const char *key, cpt_err *err) {
    if (mts) {
        if (!strcmp(name, "embed_tokens")) c->save_embed = 1;
        else if (!strcmp(name, "lm_head")) c->save_lm_head = 1;
        else
            return cpt_err_set(err, CPT_EINVAL, "%s: '%s' is not a module cpt trains in full next to LoRA. HINT: embed_tokens or lm_head", key, name);
        return CPT_OK;
    }
    unsigned bit = cpt_lora_target_bits(name);
    if (!bit)
        return cpt_err_set(err, CPT_EINVAL, "%s: '%s' is not a linear layer LoRA can adapt. HINT: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear",
                           key, name);
    c->targets |= bit;
    return CPT_OK;
}

/* A key given as "a,b" (a scalar) or as a YAML list (key.0, key.1, ...). *given: set at all. */
static int read_names(const cpt_recipe *r, const char *key, int mts, cpt_lora_cfg *c, int *given, cpt_err *err) {
    *given = 0;
    int rc = CPT_OK;
    if (cpt_recipe_has(r, key)) {
        *given = 1;
        char *list = strdup(cpt_recipe_str(r, key)), *save = NULL;
        if (!list) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
        for (char *t = strtok_r(list, ", ", &save); t && !rc; t = strtok_r(NULL, ", ", &save)) rc = add_name(c, t, mts, key, err);
        free(list);
        return rc;
    }
    size_t n = cpt_recipe_list_len(r, key);
    char k[128];
    for (size_t i = 0; i < n && !rc; i++) {
        snprintf(k, sizeof k, "%s.%zu", key, i);
        if (!cpt_recipe_has(r, k)) continue;
        *given = 1;
        rc = add_name(c, cpt_recipe_str(r, k), mts, k, err);
    }
    return rc;
}

int cpt_train_lora_setup(const cpt_recipe *r, cpt_model *m, FILE *log, cpt_lora **out, cpt_err *err) {
    *out = NULL;
    long long rank = cpt_recipe_int(r, "lora.rank");
    if (rank <= 0) {
        /* keys without a default: set by the user, so LoRA was meant */
        static const char *const keys[] = {"lora.alpha", "lora.targets", "lora.modules_to_save"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            if (cpt_recipe_has(r, keys[i]) || cpt_recipe_list_len(r, keys[i]) > 0)
                return cpt_err_set(err, CPT_EINVAL, "%s is set but lora.rank is 0 (full-parameter training). HINT: set lora.rank (e.g. 16) to train LoRA adapters, or drop %s",
                                   keys[i], keys[i]);
        return CPT_OK;
    }
    /* The base is frozen as a whole: freezing parts of it or training rows of it is another
     * kind of run. */
    static const char *const excl[] = {"regularization.freeze.embeddings", "regularization.freeze.first_layers"};
    for (size_t i = 0; i < 2; i++)
        if (cpt_recipe_has(r, excl[i]) && (i ? cpt_recipe_int(r, excl[i]) > 0 : cpt_recipe_bool(r, excl[i])))
            return cpt_err_set(err, CPT_EINVAL, "%s with LoRA: the base model is frozen already and only the adapters train. HINT: drop %s (or lora.rank)",
                               excl[i], excl[i]);
    if (strcmp(cpt_recipe_str(r, "training.train_only"), "all"))
        return cpt_err_set(err, CPT_EINVAL, "training.train_only = %s with LoRA. HINT: train new embedding rows in a full-parameter run (lora.rank: 0), or list embed_tokens in lora.modules_to_save",
                           cpt_recipe_str(r, "training.train_only"));
    char key[128];
    size_t ns = cpt_recipe_list_len(r, "stages");
    for (size_t s = 0; s < ns; s++) {
        static const char *const sk[] = {"train_only", "freeze.embeddings", "freeze.first_layers"};
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "stages.%zu.%s", s, sk[i]);
            if (cpt_recipe_has(r, key))
                return cpt_err_set(err, CPT_EINVAL, "%s with LoRA: stages cannot freeze or select parts of a LoRA run. HINT: drop %s", key, key);
        }
    }
    cpt_lora_cfg c;
    memset(&c, 0, sizeof c);
    c.rank = (int)rank;
    c.alpha = cpt_recipe_has(r, "lora.alpha") ? cpt_recipe_float(r, "lora.alpha") : 2.0 * (double)rank;
    c.dropout = cpt_recipe_float(r, "lora.dropout");
    c.use_rslora = cpt_recipe_bool(r, "lora.rslora");
    int given = 0, rc = read_names(r, "lora.targets", 0, &c, &given, err);
    if (!rc && !given) c.targets = CPT_LORA_ALL_LINEAR;
    if (!rc) rc = read_names(r, "lora.modules_to_save", 1, &c, &given, err);
    if (rc) return rc;
    cpt_lora *lo = NULL;
    if ((rc = cpt_lora_create(&lo, m, &c, (uint64_t)cpt_recipe_int(r, "lora.seed"), err))) return cpt_err_wrap(err, "lora.*");
    if (log) {
        fprintf(log, "LoRA: rank %d, alpha %g (scale %g%s), targets", c.rank, c.alpha, (double)lo->scale, c.use_rslora ? ", rsLoRA" : "");
        for (int t = 0; t < CPT_LORA_NT; t++)
            if (c.targets & (1u << t)) fprintf(log, " %s", cpt_lora_target_name(t));
        if (c.save_embed || c.save_lm_head)
            fprintf(log, "; trained in full:%s%s", c.save_embed ? " embed_tokens" : "", c.save_lm_head ? " lm_head" : "");
        size_t nt = cpt_lora_n_trainable(lo);
        fprintf(log, "; %zu trainable parameters (%.3f%% of %zu)\n", nt, 100.0 * (double)nt / (double)m->n_params, m->n_params);
        if (c.dropout > 0) fprintf(log, "LoRA: dropout %g on the adapters' input\n", c.dropout);
    }
    *out = lo;
    return CPT_OK;
}
