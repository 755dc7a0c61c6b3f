/* train_resume.c: `cpt train --resume` compares the recipe a checkpoint was written with
 * (trainer_state.json "recipe", the effective config of that run) against the recipe
 * given now, and refuses a change that would silently remap the data stream: which
 * sequence a step trains on is a pure function of these values and the step, so changing
 * one moves every later step onto other data (skipped or repeated documents). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cpt/fileio.h"
#include "cpt/recipe.h"

/* One value as text ("unset" when absent); numbers with %.17g so equal values compare equal. */
static void val_text(const cpt_recipe *r, const char *key, int numeric, char *buf, size_t n) {
    if (!cpt_recipe_has(r, key)) snprintf(buf, n, "unset");
    else if (numeric) snprintf(buf, n, "%.17g", cpt_recipe_float(r, key));
    else snprintf(buf, n, "%s", cpt_recipe_str(r, key));
}

static void cmp(const cpt_recipe *a, const cpt_recipe *b, const char *key, int numeric, char *out, size_t cap, int *nch) {
    char va[512], vb[512];
    val_text(a, key, numeric, va, sizeof va);
    val_text(b, key, numeric, vb, sizeof vb);
    if (!strcmp(va, vb)) return;
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s%s %s -> %s", *nch ? "; " : "", key, va, vb);
    (*nch)++;
}

/* Sequences per step of one scope (the top level, or stage s >= 0, whose unset keys fall back
 * to the top level), with W ranks; mirrors cmd_train.c: a stage without grad_accum under
 * training.tokens_per_step takes tokens_per_step / seq_len. */
static double scope_batch(const cpt_recipe *r, int s, long long W, double *mb, double *ga) {
    char k[128];
    double T = cpt_recipe_has(r, "training.seq_len") ? cpt_recipe_float(r, "training.seq_len") : 1;
    *mb = cpt_recipe_has(r, "training.micro_batch") ? cpt_recipe_float(r, "training.micro_batch") : 1;
    *ga = cpt_recipe_has(r, "training.grad_accum") ? cpt_recipe_float(r, "training.grad_accum") : 1;
    if (s < 0) return *mb * *ga * (double)W;
    snprintf(k, sizeof k, "stages.%d.seq_len", s);
    if (cpt_recipe_has(r, k)) T = cpt_recipe_float(r, k);
    snprintf(k, sizeof k, "stages.%d.micro_batch", s);
    if (cpt_recipe_has(r, k)) *mb = cpt_recipe_float(r, k);
    snprintf(k, sizeof k, "stages.%d.grad_accum", s);
    if (cpt_recipe_has(r, k)) *ga = cpt_recipe_float(r, k);
    else if (cpt_recipe_has(r, "training.tokens_per_step")) return cpt_recipe_float(r, "training.tokens_per_step") / (T > 0 ? T : 1);
    return *mb * *ga * (double)W;
}

/* micro_batch and grad_accum matter only through the global batch (micro_batch x grad_accum
 * x ranks sequences per step, the unit of the data position): a resume on other ranks that
 * keeps it (np 2 x accum 2 -> np 1 x accum 4) is the same stream. A change of the rank count
 * alone is left to the trainer-state check (cpt_dp_check_resume), which names the grad_accum
 * that keeps the batch. */
static void cmp_batch(const cpt_recipe *a, long long Wa, const cpt_recipe *b, long long Wb, int s, char *out, size_t cap, int *nch) {
    double mba, gaa, mbb, gab;
    double Ga = scope_batch(a, s, Wa, &mba, &gaa), Gb = scope_batch(b, s, Wb, &mbb, &gab);
    if ((mba == mbb && gaa == gab) || Ga == Gb) return;
    char pre[64];
    if (s < 0) snprintf(pre, sizeof pre, "training.");
    else snprintf(pre, sizeof pre, "stages.%d.", s);
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s%smicro_batch %g -> %g, %sgrad_accum %g -> %g (global batch %g -> %g sequences per step on %lld -> %lld rank%s)",
             *nch ? "; " : "", pre, mba, mbb, pre, gaa, gab, Ga, Gb, Wa, Wb, Wb == 1 ? "" : "s");
    (*nch)++;
}

/* Names under prefix in either recipe, each compared as a number (key prefix.name[.leaf]). */
static void cmp_names(const cpt_recipe *a, const cpt_recipe *b, const char *prefix, const char *const *leaves, const int *numeric,
                      int n_leaves, char *out, size_t cap, int *nch) {
    const cpt_recipe *rs[2] = {a, b};
    char key[512];
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i < cpt_recipe_n_names(rs[w], prefix); i++) {
            const char *nm = cpt_recipe_name(rs[w], prefix, i);
            if (w == 1) { /* names of b already seen in a were compared */
                int seen = 0;
                for (size_t j = 0; j < cpt_recipe_n_names(a, prefix); j++) seen |= !strcmp(cpt_recipe_name(a, prefix, j), nm);
                if (seen) continue;
            }
            for (int l = 0; l < n_leaves; l++) {
                snprintf(key, sizeof key, leaves[l][0] ? "%s.%s.%s" : "%s.%s", prefix, nm, leaves[l]);
                cmp(a, b, key, numeric[l], out, cap, nch);
            }
        }
}

int cpt_train_check_resume_recipe(const cpt_recipe *now, const char *ckpt_dir, int ranks, int allow, FILE *log, cpt_err *err) {
    char path[4400], *txt = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/trainer_state.json", ckpt_dir);
    int rc = cpt_read_file(path, &txt, &len, err);
    if (rc) return rc;
    json_error_t je;
    json_t *o = json_loadb(txt, len, 0, &je);
    free(txt);
    if (!o) return cpt_err_set(err, CPT_EFORMAT, "%s:%d: %s", path, je.line, je.text);
    const char *rt = json_string_value(json_object_get(o, "recipe"));
    json_t *jw = json_object_get(json_object_get(o, "trainer"), "data_parallel_ranks");
    long long Wold = json_is_integer(jw) && json_integer_value(jw) > 0 ? json_integer_value(jw) : 1;
    if (!rt || !rt[0]) { /* an older checkpoint without its recipe: nothing to compare */
        json_decref(o);
        return CPT_OK;
    }
    cpt_recipe *old = NULL;
    cpt_err e2 = {0};
    rc = cpt_recipe_load_text(cpt_recipe_train_schema(), rt, strlen(rt), "checkpoint recipe", NULL, NULL, 0, &old, &e2);
    json_decref(o);
    if (rc) {
        if (allow) {
            if (log) fprintf(log, "cpt train: warning: the recipe stored in %s does not load (%s); resuming anyway (--resume-allow-changes)\n", path, e2.msg);
            return CPT_OK;
        }
        return cpt_err_set(err, CPT_ESTATE,
                           "%s: the recipe stored with the checkpoint does not load any more (%s), so the data stream cannot be checked. "
                           "HINT: pass --resume-allow-changes to resume anyway", path, e2.msg);
    }
    char ch[4096] = "";
    int nch = 0;
    static const char *top[] = {"training.seq_len", "training.tokens_per_step", "data.seed", "data.replay.fraction"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) cmp(old, now, top[i], 1, ch, sizeof ch, &nch);
    cmp_batch(old, Wold, now, ranks, -1, ch, sizeof ch, &nch);
    cmp(old, now, "data.replay.source", 0, ch, sizeof ch, &nch);
    static const char *src_leaves[] = {"path", "min_doc_tokens", "max_doc_tokens", "max_epochs"};
    static const int src_num[] = {0, 1, 1, 1};
    cmp_names(old, now, "data.sources", src_leaves, src_num, 4, ch, sizeof ch, &nch);
    static const char *mix_leaves[] = {""};
    static const int mix_num[] = {1};
    cmp_names(old, now, "data.mixture", mix_leaves, mix_num, 1, ch, sizeof ch, &nch);
    size_t ns = cpt_recipe_list_len(old, "stages"), nn = cpt_recipe_list_len(now, "stages");
    if (ns != nn) {
        size_t l = strlen(ch);
        snprintf(ch + l, sizeof ch - l, "%sstages: %zu -> %zu", nch ? "; " : "", ns, nn);
        nch++;
    }
    for (size_t s = 0; s < (ns < nn ? ns : nn); s++) {
        char key[128], pre[64];
        static const char *st[] = {"steps", "seq_len"};
        for (int i = 0; i < 2; i++) {
            snprintf(key, sizeof key, "stages.%zu.%s", s, st[i]);
            cmp(old, now, key, 1, ch, sizeof ch, &nch);
        }
        cmp_batch(old, Wold, now, ranks, (int)s, ch, sizeof ch, &nch);
        snprintf(pre, sizeof pre, "stages.%zu.mixture", s);
        cmp_names(old, now, pre, mix_leaves, mix_num, 1, ch, sizeof ch, &nch);
    }
    cpt_recipe_free(old);
    if (!nch) return CPT_OK;
    if (allow) {
        if (log) fprintf(log, "cpt train: warning: resuming with a recipe that remaps the data stream (--resume-allow-changes): %s\n", ch);
        return CPT_OK;
    }
    return cpt_err_set(err, CPT_ESTATE,
                       "%s was written with a recipe that orders the training data differently: %s. Resuming would move every later step "
                       "onto other data (documents skipped or repeated). HINT: resume with the recipe of the run (the \"recipe\" in %s), "
                       "or pass --resume-allow-changes to accept the change",
                       ckpt_dir, ch, path);
}
