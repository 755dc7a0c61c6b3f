/* test_presets.c: every .yaml file in recipes/ validates against the cpt train schema (model
 * from ../shared, shard directories stood in by empty directories), round-trips
 * through its dump, and holds the values its comments promise (the ranges of the
 * seed notes and methods.md). Skips when ../shared is absent. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/recipe.h"
#include "testutil.h"

static char g_data[4096];

static int in(double v, double lo, double hi) { return v >= lo && v <= hi; }

static cpt_recipe *load_preset(const char *src, const char *name, cpt_err *e) {
    char path[4300], ov[4][4400];
    snprintf(path, sizeof path, "%s/recipes/%s", src, name);
    const char *ovp[4];
    size_t n = 0;
    if (!strcmp(name, "demo.yaml")) {
        /* the demo's shards live in <repo>/runs after `cpt data prepare`; stand-ins here */
        snprintf(ov[0], sizeof ov[0], "data.sources.domain.path=%s/domain", g_data);
        snprintf(ov[1], sizeof ov[1], "data.sources.replay.path=%s/replay", g_data);
        snprintf(ov[2], sizeof ov[2], "data.validation.domain=%s/domain-val", g_data);
        snprintf(ov[3], sizeof ov[3], "data.validation.stories=%s/general-val", g_data);
        for (n = 0; n < 4; n++) ovp[n] = ov[n];
    }
    cpt_recipe *r = NULL;
    memset(e, 0, sizeof *e);
    int rc = cpt_recipe_load(cpt_recipe_train_schema(), path, ovp, n, &r, e);
    CHECKF(rc == 0, "%s: %s", name, e->msg);
    return r;
}

static void check_round_trip(const char *name, cpt_recipe *r) {
    cpt_err e = {0};
    char *d = NULL, *d2 = NULL;
    cpt_recipe *r2 = NULL;
    CHECK_OK(cpt_recipe_dump(r, &d, &e), &e);
    if (!d) return;
    CHECK_OK(cpt_recipe_load_text(cpt_recipe_train_schema(), d, strlen(d), cpt_recipe_name_of(r),
                                  "/", NULL, 0, &r2, &e),
             &e);
    if (r2) {
        CHECK_OK(cpt_recipe_dump(r2, &d2, &e), &e);
        /* the same values: equal lr, steps, mixture and every source path */
        CHECK(cpt_recipe_float(r2, "optim.lr") == cpt_recipe_float(r, "optim.lr"));
        CHECK(cpt_recipe_int(r2, "training.max_steps") == cpt_recipe_int(r, "training.max_steps"));
        size_t ns = cpt_recipe_n_names(r, "data.sources");
        CHECK(cpt_recipe_n_names(r2, "data.sources") == ns);
        for (size_t i = 0; i < ns; i++) {
            char k[600];
            snprintf(k, sizeof k, "data.sources.%s.path", cpt_recipe_name(r, "data.sources", i));
            CHECKF(!strcmp(cpt_recipe_str(r, k), cpt_recipe_str(r2, k)), "%s: %s", name, k);
        }
    }
    free(d);
    free(d2);
    cpt_recipe_free(r2);
}

static void check_values(const char *name, cpt_recipe *r, const char *shared) {
    double w[8];
    double tok[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    cpt_err e = {0};
    if (!strcmp(name, "cpt-base.yaml")) {
        /* base models: LR 1e-4..5e-4, cosine to 10%, warmup 1%, replay 5-10% */
        CHECK(in(cpt_recipe_float(r, "optim.lr"), 1e-4, 5e-4));
        CHECK(!strcmp(cpt_recipe_str(r, "schedule.type"), "cosine"));
        CHECK(cpt_recipe_float(r, "schedule.min_lr_ratio") == 0.1);
        CHECK(cpt_recipe_float(r, "schedule.warmup_frac") == 0.01);
        CHECK(in(cpt_recipe_float(r, "data.replay.fraction"), 0.05, 0.10));
        CHECK_OK(cpt_recipe_mixture(r, -1, tok, w, &e), &e);
        CHECK(fabs(w[0] + w[1] - 1) < 1e-12 && in(w[1], 0.05, 0.10)); /* domain, replay */
    } else if (!strcmp(name, "cpt-instruct.yaml")) {
        /* instruct models: LR 2e-5..1e-4, 100-500 steps, replay + 1-5% instruction data */
        CHECK(in(cpt_recipe_float(r, "optim.lr"), 2e-5, 1e-4));
        CHECK(in((double)cpt_recipe_int(r, "training.max_steps"), 100, 500));
        CHECK(in(cpt_recipe_float(r, "data.mixture.instruct"), 0.01, 0.05));
        CHECK(in(cpt_recipe_float(r, "data.mixture.replay"), 0.05, 0.10));
    } else if (!strcmp(name, "pit.yaml")) {
        /* stage 1: QA only; stage 2: documents with QA mixed in */
        CHECK(cpt_recipe_list_len(r, "stages") == 2);
        CHECK(cpt_recipe_n_names(r, "stages.0.mixture") == 1 &&
              cpt_recipe_float(r, "stages.0.mixture.qa") == 1.0);
        CHECK(cpt_recipe_has(r, "stages.1.mixture.docs") && cpt_recipe_has(r, "stages.1.mixture.qa"));
        CHECK(cpt_recipe_float(r, "stages.1.mixture.docs") > cpt_recipe_float(r, "stages.1.mixture.qa"));
        CHECK(cpt_recipe_float(r, "stages.1.mixture.qa") > 0);
        CHECK(cpt_recipe_int(r, "training.max_steps") ==
              cpt_recipe_int(r, "stages.0.steps") + cpt_recipe_int(r, "stages.1.steps"));
    } else if (!strcmp(name, "knowledge-instruct.yaml")) {
        /* synthetic QA only (no raw documents), 5-10% replay, an instruct-model LR, ifeval watched */
        CHECK(!cpt_recipe_has(r, "data.sources.docs"));
        CHECKF(cpt_recipe_float(r, "data.mixture.qa") > 0.8, "knowledge-instruct qa share %g", cpt_recipe_float(r, "data.mixture.qa"));
        CHECK(in(cpt_recipe_float(r, "data.mixture.replay"), 0.05, 0.10));
        CHECK(in(cpt_recipe_float(r, "optim.lr"), 2e-5, 1e-4));
        CHECK(cpt_recipe_int(r, "eval.ifeval.every") > 0 && cpt_recipe_float(r, "eval.ifeval.budget") > 0);
    } else if (!strcmp(name, "demo.yaml")) {
        char model[4200];
        snprintf(model, sizeof model, "%s/data/models/stories260K-hf", shared);
        char *real = realpath(model, NULL);
        CHECK(real && !strcmp(cpt_recipe_str(r, "model"), real));
        free(real);
        CHECK(cpt_recipe_float(r, "data.replay.fraction") == 0.1);
        CHECK(!strcmp(cpt_recipe_str(r, "data.replay.source"), "replay"));
        CHECK(!strcmp(cpt_recipe_str(r, "out_dir"), "runs/demo"));
    } else if (!strcmp(name, "demo-smollm2.yaml")) {
        /* a short re-warm of an instruct model: LR 2e-5..1e-4, 5-25% replay (methods §5.1),
         * warmup ~10% of the steps, paths from the script's variables */
        CHECK(in(cpt_recipe_float(r, "optim.lr"), 2e-5, 1e-4));
        CHECK(in(cpt_recipe_float(r, "data.mixture.general"), 0.05, 0.25));
        CHECK(fabs(cpt_recipe_float(r, "data.mixture.domain") + cpt_recipe_float(r, "data.mixture.general") - 1) < 1e-12);
        CHECK(cpt_recipe_int(r, "schedule.warmup_steps") * 10 == cpt_recipe_int(r, "training.max_steps"));
        CHECK(strstr(cpt_recipe_str(r, "out_dir"), "smollm2-demo/cpt") != NULL);
        CHECK(cpt_recipe_has(r, "data.validation.domain") && cpt_recipe_has(r, "data.validation.general"));
    } else if (!strcmp(name, "long-context.yaml")) {
        /* 4K -> 8K -> 16K; the same tokens per step in every stage; ProLong's 60/40
         * long/short mix; rope_theta raised (never lowered) with the length, the context
         * covering each stage; LR 5e-6..5e-5; long documents of at least the final length */
        static const long long T[] = {4096, 8192, 16384};
        CHECK(cpt_recipe_list_len(r, "stages") == 3);
        long long tps = cpt_recipe_int(r, "training.tokens_per_step"), sum = 0;
        double theta = 10000;
        char k[128];
        for (int s = 0; s < 3; s++) {
            snprintf(k, sizeof k, "stages.%d.seq_len", s);
            CHECK(cpt_recipe_int(r, k) == T[s] && tps % T[s] == 0);
            snprintf(k, sizeof k, "stages.%d.mixture.long", s);
            CHECK(in(cpt_recipe_float(r, k), 0.5, 0.7));
            snprintf(k, sizeof k, "stages.%d.rope.theta", s);
            if (cpt_recipe_has(r, k)) {
                CHECK(cpt_recipe_float(r, k) > theta);
                theta = cpt_recipe_float(r, k);
                snprintf(k, sizeof k, "stages.%d.rope.max_position_embeddings", s);
                CHECK(cpt_recipe_has(r, k) && cpt_recipe_int(r, k) >= T[s]);
            }
            snprintf(k, sizeof k, "stages.%d.steps", s);
            sum += cpt_recipe_int(r, k);
        }
        CHECK(theta >= 5e5);
        CHECK(sum == cpt_recipe_int(r, "training.max_steps"));
        CHECK(in(cpt_recipe_float(r, "optim.lr"), 5e-6, 5e-5));
        CHECK(cpt_recipe_int(r, "data.sources.long.min_doc_tokens") >= 16384);
        CHECK(cpt_recipe_bool(r, "training.block_causal"));
        /* eval.long checks the native length and every stage's length */
        CHECK(cpt_recipe_has(r, "eval.long.lengths") && !strcmp(cpt_recipe_str(r, "eval.long.lengths"), "4096,8192,16384"));
    } else if (!strcmp(name, "lora-cpt.yaml")) {
        /* LoRA CPT: a high rank on every linear, rsLoRA, a LoRA LR 1e-4..5e-4, replay 5-10% */
        CHECK(cpt_recipe_int(r, "lora.rank") >= 64);
        CHECK(cpt_recipe_bool(r, "lora.rslora"));
        CHECK(!strcmp(cpt_recipe_str(r, "lora.targets"), "all-linear"));
        CHECK(in(cpt_recipe_float(r, "optim.lr"), 1e-4, 5e-4));
        CHECK(in(cpt_recipe_float(r, "data.replay.fraction"), 0.05, 0.10));
    } else {
        CHECKF(0, "recipes/%s: a preset without value checks in test_presets.c", name);
    }
}

int main(void) {
    const char *shared = tu_env("CPT_SHARED"), *src = tu_env("CPT_SRC"), *tmp = tu_env("CPT_TMP");
    if (!src || !tmp) TEST_SKIP("CPT_SRC / CPT_TMP not set");
    char model[4200];
    snprintf(model, sizeof model, "%s/data/models/stories260K-hf", shared ? shared : "");
    if (!shared || !cpt_is_dir(model)) TEST_SKIP("no ../shared/data/models/stories260K-hf");
    snprintf(g_data, sizeof g_data, "%s/preset_data", tmp);
    static const char *dirs[] = {"domain",     "replay",      "instruct",     "qa",    "docs",
                                 "domain-val", "general-val", "instruct-val", "qa-val", "long", "short", "long-val"};
    cpt_err e = {0};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char *p = cpt_path_join(g_data, dirs[i]);
        CHECK_OK(cpt_mkdirs(p, &e), &e);
        free(p);
    }
    setenv("CPT_MODEL", model, 1);
    setenv("CPT_DATA", g_data, 1);
    /* demo-smollm2.yaml: demo/smollm2.sh exports the model it fetched and its output dir;
     * stories260K and empty shard dirs stand in (the demo's test runs the real thing). */
    char demo_out[4200];
    snprintf(demo_out, sizeof demo_out, "%s/smollm2-demo", g_data);
    static const char *demo_dirs[] = {"shards/domain", "shards/general"};
    for (size_t i = 0; i < 2; i++) {
        char *p = cpt_path_join(demo_out, demo_dirs[i]);
        CHECK_OK(cpt_mkdirs(p, &e), &e);
        free(p);
    }
    setenv("DEMO_MODEL", model, 1);
    setenv("DEMO_OUT", demo_out, 1);

    char rdir[4200];
    snprintf(rdir, sizeof rdir, "%s/recipes", src);
    DIR *d = opendir(rdir);
    CHECKF(d != NULL, "cannot open %s", rdir);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml")) continue;
        n++;
        cpt_recipe *r = load_preset(src, de->d_name, &e);
        if (!r) continue;
        check_values(de->d_name, r, shared);
        check_round_trip(de->d_name, r);
        cpt_recipe_free(r);
    }
    if (d) closedir(d);
    CHECKF(n >= 4, "found %zu presets, want cpt-base, cpt-instruct, pit, demo", n);

    /* without CPT_SHARED the demo names the variable */
    unsetenv("CPT_SHARED");
    char path[4300];
    snprintf(path, sizeof path, "%s/recipes/demo.yaml", src);
    cpt_recipe *r = NULL;
    memset(&e, 0, sizeof e);
    CHECK(cpt_recipe_load(cpt_recipe_train_schema(), path, NULL, 0, &r, &e) == CPT_EINVAL && !r);
    CHECKF(strstr(e.msg, "demo.yaml:") && strstr(e.msg, "CPT_SHARED is not set"), "%s", e.msg);
    TEST_END();
}
