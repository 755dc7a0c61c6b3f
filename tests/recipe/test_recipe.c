/* test_recipe.c: the recipe layer against hand-written expectations: YAML -> flat
 * keys (block, flow, comments, positions), overrides, defaults from methods.md §13,
 * round trips through the dump, the mixture helper, must-reject inputs (each names
 * its key, place and fix), and help covering the key list of the issue.
 * With a file argument it prints the flattened keys instead (used by
 * test_flat_pyyaml.py to compare against PyYAML). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/fileio.h"
#include "cpt/recipe.h"
#include "recipe/recipe-impl.h"
#include "testutil.h"

static char g_dir[4096];

static void mkdir_p(const char *rel) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", g_dir, rel);
    cpt_err e = {0};
    if (cpt_mkdirs(p, &e)) fprintf(stderr, "mkdir %s: %s\n", p, e.msg);
}

static const char *BASE = "model: model\n"
                          "data:\n"
                          "  sources:\n"
                          "    web: {path: shards/web}\n"
                          "    code: {path: shards/code}\n"
                          "  mixture: {web: 0.7, code: 0.3}\n"
                          "  validation: {wiki: shards/val}\n"
                          "training:\n"
                          "  max_steps: 100\n";

static int load(const char *extra, const char *const *ov, size_t n, cpt_recipe **r, cpt_err *e) {
    size_t len = strlen(BASE) + (extra ? strlen(extra) : 0);
    char *t = malloc(len + 1);
    strcpy(t, BASE);
    if (extra) strcat(t, extra);
    memset(e, 0, sizeof *e);
    int rc = cpt_recipe_load_text(cpt_recipe_train_schema(), t, len, "t", g_dir, ov, n, r, e);
    free(t);
    return rc;
}

/* ---- YAML -> flat ---- */

typedef struct {
    const char *key, *text;
    int quoted, kline, kcol, vline, vcol;
} flat_want;

static void test_flatten(void) {
    const char *doc = "# a comment\n"
                      "a:\n"
                      "  b: 1   # trailing comment\n"
                      "  c: \"x y\"\n"
                      "l: [1, {k: v}]\n"
                      "f: {x: [a, 'b c']}\n"
                      "n: ~\n"
                      "s:\n"
                      "  - p: 1\n"
                      "    q: |\n"
                      "      two\n"
                      "      lines\n"
                      "  - 3\n"
                      "e: {}\n";
    const flat_want want[] = {
        {"a.b", "1", 0, 3, 3, 3, 6},        {"a.c", "x y", 1, 4, 3, 4, 6},
        {"l.0", "1", 0, 5, 5, 5, 5},        {"l.1.k", "v", 0, 5, 9, 5, 12},
        {"f.x.0", "a", 0, 6, 9, 6, 9},      {"f.x.1", "b c", 1, 6, 12, 6, 12},
        {"s.0.p", "1", 0, 9, 5, 9, 8},      {"s.0.q", "two\nlines\n", 1, 10, 5, 10, 8},
        {"s.1", "3", 0, 13, 5, 13, 5},
    };
    rcp_store s = {0};
    cpt_err e = {0};
    CHECK(rcp_store_add_src(&s, "doc", ".", &e) == 0);
    CHECK_OK(rcp_yaml_flatten(doc, strlen(doc), "", 0, 0, &s, &e), &e);
    size_t nw = sizeof want / sizeof want[0];
    CHECKF(s.n == nw, "got %zu entries, want %zu", s.n, nw);
    for (size_t i = 0; i < nw && i < s.n; i++) {
        const rcp_entry *g = &s.e[i];
        CHECKF(!strcmp(g->key, want[i].key) && !strcmp(g->text, want[i].text) &&
                   g->quoted == want[i].quoted,
               "entry %zu: got %s=%s (quoted %d)", i, g->key, g->text, g->quoted);
        CHECKF(g->kline == want[i].kline && g->kcol == want[i].kcol && g->vline == want[i].vline &&
                   g->vcol == want[i].vcol,
               "%s: key at %d:%d value at %d:%d, want %d:%d %d:%d", g->key, g->kline, g->kcol,
               g->vline, g->vcol, want[i].kline, want[i].kcol, want[i].vline, want[i].vcol);
    }
    rcp_store_free(&s);

    /* an override value: a scalar keeps the prefix as its key, a flow map nests */
    CHECK(rcp_store_add_src(&s, "ov", ".", &e) == 0);
    CHECK_OK(rcp_yaml_flatten("0.5", 3, "data.mixture.web", 0, 17, &s, &e), &e);
    CHECK_OK(rcp_yaml_flatten("{a: 1, b: [x]}", 14, "p.q", 0, 4, &s, &e), &e);
    CHECK(s.n == 3 && !strcmp(s.e[0].key, "data.mixture.web") && s.e[0].vcol == 18);
    CHECK(s.n == 3 && !strcmp(s.e[1].key, "p.q.a") && !strcmp(s.e[2].key, "p.q.b.0"));
    CHECK(s.n == 3 && s.e[1].vcol == 9); /* "p.q={a: 1": the 1 is column 9 */
    rcp_store_free(&s);

    CHECK(rcp_match("data.sources.*.path", "data.sources.web_2.path"));
    CHECK(!rcp_match("data.sources.*.path", "data.sources.2web.path"));
    CHECK(rcp_match("stages.#.mixture.*", "stages.10.mixture.qa"));
    CHECK(!rcp_match("stages.#.steps", "stages.01.steps"));
    CHECK(!rcp_match("stages.#.steps", "stages.0.steps.x"));
    CHECK(!rcp_match("optim.lr", "optim"));
}

/* ---- defaults, getters, names ---- */

static void test_defaults(void) {
    cpt_recipe *r;
    cpt_err e;
    const char *st = "stages:\n  - {name: warm, steps: 40}\n  - steps: 60\n    lr: 1e-4\n";
    CHECK_OK(load(st, NULL, 0, &r, &e), &e);
    if (!r) return;
    char model[4200];
    snprintf(model, sizeof model, "%s/model", g_dir);
    char *real = realpath(model, NULL);
    CHECK(real && !strcmp(cpt_recipe_str(r, "model"), real));
    CHECK(!strcmp(cpt_recipe_str(r, "tokenizer"), cpt_recipe_str(r, "model")));
    CHECK(cpt_recipe_origin_of(r, "tokenizer") == CPT_RORIG_DEFAULT);
    CHECK(!strcmp(cpt_recipe_str(r, "out_dir"), "runs/t"));
    CHECK(!strcmp(cpt_recipe_str(r, "checkpoint.dir"), "runs/t/checkpoints"));
    CHECK(!strcmp(cpt_recipe_str(r, "export.dir"), "runs/t/export"));
    /* methods.md §13: AdamW (0.9, 0.95), eps 1e-8, wd 0.1, clip 1.0, 1% warmup, cosine to 10% */
    CHECK(cpt_recipe_float(r, "optim.lr") == 3e-4);
    CHECK(cpt_recipe_float(r, "optim.beta1") == 0.9 && cpt_recipe_float(r, "optim.beta2") == 0.95);
    CHECK(cpt_recipe_float(r, "optim.eps") == 1e-8);
    CHECK(cpt_recipe_float(r, "optim.weight_decay") == 0.1);
    CHECK(cpt_recipe_float(r, "optim.clip") == 1.0);
    CHECK(!strcmp(cpt_recipe_str(r, "schedule.type"), "cosine"));
    CHECK(cpt_recipe_float(r, "schedule.warmup_frac") == 0.01);
    CHECK(cpt_recipe_float(r, "schedule.min_lr_ratio") == 0.1);
    CHECK(!cpt_recipe_has(r, "schedule.warmup_steps"));
    CHECK(cpt_recipe_bool(r, "training.block_causal") == 1);
    CHECK(cpt_recipe_bool(r, "training.reset_positions") == 0);
    CHECK(strcmp(cpt_recipe_str(r, "training.recompute"), "none") == 0);
    CHECK(cpt_recipe_int(r, "data.seed") == cpt_recipe_int(r, "seed"));
    CHECK(cpt_recipe_int(r, "threads") == 0);
    CHECK(cpt_recipe_int(r, "training.max_steps") == 100);
    CHECK(cpt_recipe_origin_of(r, "training.max_steps") == CPT_RORIG_FILE);
    /* names and lists */
    CHECK(cpt_recipe_n_names(r, "data.sources") == 2);
    CHECK(!strcmp(cpt_recipe_name(r, "data.sources", 0), "web"));
    CHECK(!strcmp(cpt_recipe_name(r, "data.sources", 1), "code"));
    CHECK(cpt_recipe_n_names(r, "data.validation") == 1);
    CHECK(cpt_recipe_list_len(r, "stages") == 2);
    CHECK(!strcmp(cpt_recipe_str(r, "stages.0.name"), "warm"));
    CHECK(!strcmp(cpt_recipe_str(r, "stages.1.name"), "stage1"));
    CHECK(cpt_recipe_float(r, "stages.1.lr") == 1e-4);
    CHECK(!cpt_recipe_has(r, "stages.0.lr"));
    CHECK(cpt_recipe_int(r, "stages.1.steps") == 60);
    /* explicit mixture */
    double w[2] = {-1, -1}, tok[2] = {5, 5};
    CHECK_OK(cpt_recipe_mixture(r, -1, tok, w, &e), &e);
    CHECK(w[0] == 0.7 && w[1] == 0.3);
    CHECK_OK(cpt_recipe_mixture(r, 1, tok, w, &e), &e); /* stage without its own: top level */
    CHECK(w[0] == 0.7 && w[1] == 0.3);
    free(real);
    cpt_recipe_free(r);

    /* a single source needs no mixture: weight 1 is derived */
    const char *one = "model: model\ndata: {sources: {only: {path: shards/web}}}\n"
                      "training: {max_tokens: 1e6}\n";
    memset(&e, 0, sizeof e);
    CHECK_OK(cpt_recipe_load_text(cpt_recipe_train_schema(), one, strlen(one), "one", g_dir, NULL,
                                  0, &r, &e),
             &e);
    if (r) {
        CHECK(cpt_recipe_float(r, "data.mixture.only") == 1.0);
        CHECK(cpt_recipe_origin_of(r, "data.mixture.only") == CPT_RORIG_DERIVED);
        CHECK(cpt_recipe_int(r, "training.max_tokens") == 1000000);
        cpt_recipe_free(r);
    }
}

static void test_replay_mixture(void) {
    char math[4300];
    snprintf(math, sizeof math, "data.sources.math.path=%s/shards/code", g_dir);
    const char *ov[] = {"data.mixture=null", math, "data.replay={source: web, fraction: 0.1}"};
    cpt_recipe *r;
    cpt_err e;
    CHECK_OK(load(NULL, ov, 3, &r, &e), &e);
    if (!r) return;
    CHECK(cpt_recipe_n_names(r, "data.sources") == 3);
    CHECK(!strcmp(cpt_recipe_name(r, "data.sources", 2), "math"));
    /* hand-computed: web 0.1; code 0.9 * 300/400 = 0.675; math 0.9 * 100/400 = 0.225 */
    double tok[3] = {100, 300, 100}, w[3];
    CHECK_OK(cpt_recipe_mixture(r, -1, tok, w, &e), &e);
    CHECK(w[0] == 0.1 && fabs(w[1] - 0.675) < 1e-15 && fabs(w[2] - 0.225) < 1e-15);
    double zero[3] = {100, 0, 0};
    memset(&e, 0, sizeof e);
    CHECK(cpt_recipe_mixture(r, -1, zero, w, &e) == CPT_EINVAL && strstr(e.msg, "no tokens"));
    cpt_recipe_free(r);
}

/* ---- overrides ---- */

static void test_overrides(void) {
    const char *ov[] = {"optim.lr=1e-4",
                        "--optim.lr=2e-4", /* later wins; a leading -- is accepted */
                        "data.mixture={web: 0.5, code: 0.5}",
                        "tokenizer=shards/web", /* relative to the working directory... */
                        "tokenizer=",           /* ...then unset again: the default */
                        "stages=[{steps: 10}]",
                        "stages.1.steps=50",
                        "stages.1.name='x y'",
                        "training.max_steps=null",
                        "schedule.decay_shape=exp",
                        "training.block_causal=off",
                        "seed=7"};
    cpt_recipe *r;
    cpt_err e;
    CHECK_OK(load(NULL, ov, sizeof ov / sizeof *ov, &r, &e), &e);
    if (!r) return;
    CHECK(cpt_recipe_float(r, "optim.lr") == 2e-4);
    CHECK(cpt_recipe_origin_of(r, "optim.lr") == CPT_RORIG_OVERRIDE);
    CHECK(cpt_recipe_float(r, "data.mixture.web") == 0.5 &&
          cpt_recipe_float(r, "data.mixture.code") == 0.5);
    CHECK(!strcmp(cpt_recipe_str(r, "tokenizer"), cpt_recipe_str(r, "model")));
    CHECK(cpt_recipe_list_len(r, "stages") == 2);
    CHECK(!strcmp(cpt_recipe_str(r, "stages.1.name"), "x y"));
    CHECK(!strcmp(cpt_recipe_str(r, "stages.0.name"), "stage0"));
    CHECK(cpt_recipe_int(r, "training.max_steps") == 60); /* derived: 10 + 50 */
    CHECK(cpt_recipe_origin_of(r, "training.max_steps") == CPT_RORIG_DERIVED);
    CHECK(!strcmp(cpt_recipe_str(r, "schedule.decay_shape"), "exp"));
    CHECK(cpt_recipe_bool(r, "training.block_causal") == 0);
    CHECK(cpt_recipe_int(r, "seed") == 7 && cpt_recipe_int(r, "data.seed") == 7);
    cpt_recipe_free(r);

    /* overrides alone (no file): relative paths from the working directory */
    char m[4300];
    snprintf(m, sizeof m, "model=%s/model", g_dir);
    char s[4300];
    snprintf(s, sizeof s, "data.sources.a.path=%s/shards/web", g_dir);
    const char *ov2[] = {m, s, "training.max_steps=5"};
    memset(&e, 0, sizeof e);
    CHECK_OK(cpt_recipe_load(cpt_recipe_train_schema(), NULL, ov2, 3, &r, &e), &e);
    if (r) {
        CHECK(cpt_recipe_int(r, "training.max_steps") == 5);
        CHECK(!strcmp(cpt_recipe_name_of(r), "cpt"));
        cpt_recipe_free(r);
    }
}

static void test_env(void) {
    setenv("CPT_RECIPE_TEST_DIR", g_dir, 1);
    const char *ov[] = {"model=${CPT_RECIPE_TEST_DIR}/model", "stages=[{name: \"a$$b${CPT_RECIPE_TEST_N}\", steps: 100}]"};
    setenv("CPT_RECIPE_TEST_N", "7", 1);
    cpt_recipe *r;
    cpt_err e;
    CHECK_OK(load(NULL, ov, 2, &r, &e), &e);
    if (!r) return;
    CHECK(!strcmp(cpt_recipe_str(r, "stages.0.name"), "a$b7"));
    char *dump = NULL;
    CHECK_OK(cpt_recipe_dump(r, &dump, &e), &e);
    /* the dump escapes '$' so reloading does not expand again */
    CHECK(dump && strstr(dump, "name: \"a$$b7\""));
    cpt_recipe *r2 = NULL;
    memset(&e, 0, sizeof e);
    CHECK_OK(cpt_recipe_load_text(cpt_recipe_train_schema(), dump, strlen(dump), "t", "/", NULL, 0,
                                  &r2, &e),
             &e);
    if (r2) CHECK(!strcmp(cpt_recipe_str(r2, "stages.0.name"), "a$b7"));
    cpt_recipe_free(r2);
    free(dump);
    cpt_recipe_free(r);
}

/* ---- round trip ---- */

/* The dump without its "  # default" / "  # derived" origin markers. */
static char *strip_markers(const char *d) {
    char *o = malloc(strlen(d) + 1), *w = o;
    while (*d) {
        if (!strncmp(d, "  # default\n", 12)) d += 11;
        else if (!strncmp(d, "  # derived\n", 12)) d += 11;
        else *w++ = *d++;
    }
    *w = '\0';
    return o;
}

static void test_round_trip(void) {
    const char *extra = "optim:\n"
                        "  lr: 0.30000000000000004\n" /* 0.1 + 0.2: needs 17 digits */
                        "  eps: 4.9406564584124654e-324\n" /* the smallest denormal */
                        "schedule: {type: wsd, warmup_steps: 3, decay_shape: 1-sqrt}\n"
                        "stages:\n"
                        "  - name: \"q\\\"uote \\\\ tab\\t é\"\n"
                        "    steps: 30\n"
                        "    mixture: {code: 1}\n"
                        "    schedule: {type: infinite, warmup_frac: 0.05}\n"
                        "  - steps: 70\n"
                        "    freeze: {embeddings: yes, first_layers: 2}\n"
                        "eval:\n"
                        "  forgetting_budget: {wiki: 0.03}\n"
                        "  on_budget: stop\n"
                        "regularization:\n"
                        "  ewc: {lambda: 10, source: web, cache: runs/fisher.safetensors}\n";
    cpt_recipe *r, *r2 = NULL;
    cpt_err e;
    CHECK_OK(load(extra, NULL, 0, &r, &e), &e);
    if (!r) return;
    char *d1 = NULL, *d2 = NULL;
    CHECK_OK(cpt_recipe_dump(r, &d1, &e), &e);
    /* reload from another base dir: the dump holds absolute input paths */
    memset(&e, 0, sizeof e);
    CHECK_OK(cpt_recipe_load_text(cpt_recipe_train_schema(), d1, strlen(d1), "t", "/", NULL, 0,
                                  &r2, &e),
             &e);
    if (r2) {
        CHECK_OK(cpt_recipe_dump(r2, &d2, &e), &e);
        /* the same text but for the origin markers (values from a file are explicit) */
        char *s1 = strip_markers(d1), *s2 = d2 ? strip_markers(d2) : NULL;
        CHECKF(s2 && !strcmp(s1, s2), "dump differs after reload");
        CHECK(d2 && strstr(d1, "  # default\n") && !strstr(d2, "  # default\n"));
        free(s1);
        free(s2);
        /* and a dump of the reloaded dump is a fixed point, byte for byte */
        cpt_recipe *r4 = NULL;
        char *d4 = NULL;
        CHECK_OK(cpt_recipe_load_text(cpt_recipe_train_schema(), d2, strlen(d2), "t", "/", NULL, 0,
                                      &r4, &e),
                 &e);
        if (r4) CHECK_OK(cpt_recipe_dump(r4, &d4, &e), &e);
        CHECK(d4 && !strcmp(d2, d4));
        free(d4);
        cpt_recipe_free(r4);
        CHECK(cpt_recipe_float(r2, "optim.lr") == 0.1 + 0.2);
        CHECK(cpt_recipe_float(r2, "optim.eps") == 4.9406564584124654e-324);
        CHECK(!strcmp(cpt_recipe_str(r2, "stages.0.name"), "q\"uote \\ tab\t é"));
        CHECK(cpt_recipe_bool(r2, "stages.1.freeze.embeddings") == 1);
        CHECK(cpt_recipe_int(r2, "stages.1.freeze.first_layers") == 2);
        CHECK(!cpt_recipe_has(r2, "stages.0.freeze.embeddings"));
        CHECK(cpt_recipe_float(r2, "stages.0.mixture.code") == 1.0);
        CHECK(!strcmp(cpt_recipe_str(r2, "regularization.ewc.cache"), "runs/fisher.safetensors"));
        CHECK(!strcmp(cpt_recipe_str(r2, "model"), cpt_recipe_str(r, "model")));
        CHECK(cpt_recipe_int(r2, "schedule.warmup_steps") == 3);
        /* every key of the first load has the same value and presence in the second:
         * the dump lists every key, so compare key by key through the store */
        size_t same = 0;
        for (size_t i = 0; i < r->st.n; i++) {
            const rcp_entry *a = &r->st.e[i], *b = rcp_store_find(&r2->st, a->key);
            int ok = b && (!strcmp(a->text, b->text) ||
                           (a->opt->type == CPT_RT_FLOAT && a->f == b->f));
            if (b && a->opt->type == CPT_RT_INT) ok = a->i == b->i;
            if (b && a->opt->type == CPT_RT_BOOL) ok = a->b == b->b;
            CHECKF(ok, "%s differs after the round trip", a->key);
            same += ok;
        }
        CHECK(same == r->st.n && r->st.n == r2->st.n);
        /* dumps mark where values came from */
        CHECK(strstr(d1, "lr: 0.30000000000000004\n"));
        CHECK(strstr(d1, "beta2: 0.95  # default\n"));
        CHECK(strstr(d1, "max_tokens: null  # unset\n"));
        CHECK(strstr(d1, "# Peak learning rate"));
    }
    /* saved atomically to a file and reloaded from it */
    char path[4300];
    snprintf(path, sizeof path, "%s/effective.yaml", g_dir);
    CHECK_OK(cpt_recipe_save(r, path, &e), &e);
    cpt_recipe *r3 = NULL;
    CHECK_OK(cpt_recipe_load(cpt_recipe_train_schema(), path, NULL, 0, &r3, &e), &e);
    if (r3) {
        char *d3 = NULL;
        CHECK_OK(cpt_recipe_dump(r3, &d3, &e), &e);
        /* only the recipe name in the header and out_dir differ ("effective" vs "t") */
        CHECK(d3 && strstr(d3, "out_dir: \"runs/t\"\n"));
        free(d3);
    }
    cpt_recipe_free(r3);
    free(d1);
    free(d2);
    cpt_recipe_free(r2);
    cpt_recipe_free(r);
}

/* ---- must-reject ---- */

typedef struct {
    const char *name, *extra, *ov[3];
    int code;
    const char *needles[4];
} reject_case;

static void test_rejects(void) {
    static char file_ov[4300], deep[200];
    snprintf(file_ov, sizeof file_ov, "data.sources.web.path=%s/afile", g_dir);
    strcpy(deep, "optim:\n  lr: ");
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    const reject_case cases[] = {
        {"unknown key", "optim:\n  lrr: 1e-4\n", {0}, CPT_EINVAL,
         {"t:11:3", "unknown key optim.lrr", "nearest valid key is optim.lr"}},
        {"unknown top-level", "optimizer:\n  lr: 1\n", {0}, CPT_EINVAL,
         {"t:11:3", "unknown key optimizer.lr", "nearest valid key is optim.lr"}},
        {"unknown under a name", NULL, {"data.sources.web.pth=x"}, CPT_EINVAL,
         {"override \"data.sources.web.pth=x\":1:1", "nearest valid key is data.sources.web.path"}},
        {"unknown stage key", "stages: [{steps: 100, lrr: 1}]\n", {0}, CPT_EINVAL,
         {"t:10:23", "stages.0.lrr", "nearest valid key is stages.0.lr"}},
        {"wrong type float", "optim:\n  lr: fast\n", {0}, CPT_EINVAL,
         {"t:11:7", "optim.lr: wrong type: expected a float", "\"fast\""}},
        {"wrong type quoted", "optim:\n  lr: \"3e-4\"\n", {0}, CPT_EINVAL,
         {"optim.lr", "quoted string", "remove the quotes"}},
        {"wrong type bool", NULL, {"training.block_causal=maybe"}, CPT_EINVAL,
         {"training.block_causal", "expected a bool"}},
        {"wrong type int", NULL, {"training.max_steps=1.5"}, CPT_EINVAL,
         {"training.max_steps", "expected an int"}},
        {"int too large", NULL, {"training.max_steps=99999999999999999999999"}, CPT_EINVAL,
         {"training.max_steps", "expected an int"}},
        {"not finite", NULL, {"optim.lr=nan"}, CPT_EINVAL, {"optim.lr", "expected a float"}},
        {"section as value", "optim: 3\n", {0}, CPT_EINVAL,
         {"t:10:1", "optim: wrong type: this is a section", "optim.lr"}},
        {"value as section", NULL, {"optim.lr=[1, 2]"}, CPT_EINVAL,
         {"optim.lr: wrong type: expected a float value, got a list"}},
        {"out of range", "optim:\n  lr: 2\n", {0}, CPT_EINVAL,
         {"t:11:7", "optim.lr = 2 is out of range", "(0, 1]", "nearest valid value is 1"}},
        {"out of range excl", NULL, {"optim.lr=0"}, CPT_EINVAL,
         {"optim.lr = 0 is out of range", "use a value above 0"}},
        {"out of range int", NULL, {"training.micro_batch=0"}, CPT_EINVAL,
         {"training.micro_batch = 0", "[1, 65536]"}},
        {"out of range mixture", NULL, {"data.mixture={web: 1.5, code: -0.5}"}, CPT_EINVAL,
         {"data.mixture.web = 1.5 is out of range", "[0, 1]"}},
        {"bad enum", NULL, {"schedule.type=cosin"}, CPT_EINVAL,
         {"schedule.type = \"cosin\"", "did you mean cosine"}},
        {"missing required", NULL, {"model=null"}, CPT_EINVAL,
         {"model: required key is missing"}},
        {"missing stage steps", NULL, {"stages=[{name: a}]"}, CPT_EINVAL,
         {"stages.0.steps: required key is missing"}},
        {"missing file", NULL, {"model=does/not/exist"}, CPT_ENOTFOUND,
         {"model:", "does/not/exist does not exist", "model=PATH"}},
        {"not a directory", NULL, {file_ov}, CPT_EINVAL,
         {"data.sources.web.path", "is not a directory"}},
        {"mixture sum", NULL, {"data.mixture.web=0.6"}, CPT_EINVAL,
         {"data.mixture: the weights sum to 0.9", "set data.mixture.web to 0.7"}},
        {"stage mixture sum", "stages: [{steps: 100, mixture: {web: 0.5}}]\n", {0}, CPT_EINVAL,
         {"stages.0.mixture: the weights sum to 0.5"}},
        {"undeclared source", NULL, {"data.mixture={web: 0.7, cod: 0.3}"}, CPT_EINVAL,
         {"data.mixture.cod", "not a declared source", "did you mean code"}},
        {"undeclared stage source", "stages: [{steps: 100, mixture: {wbe: 1}}]\n", {0},
         CPT_EINVAL, {"stages.0.mixture.wbe", "did you mean web"}},
        {"undeclared validation", NULL, {"eval.forgetting_budget.wikki=0.05"}, CPT_EINVAL,
         {"eval.forgetting_budget.wikki", "validation set", "did you mean wiki"}},
        {"undeclared ewc source", NULL, {"regularization.ewc.source=wbe"}, CPT_EINVAL,
         {"regularization.ewc.source", "did you mean web"}},
        {"ewc without source", NULL, {"regularization.ewc.lambda=5"}, CPT_EINVAL,
         {"regularization.ewc.lambda > 0 needs regularization.ewc.source"}},
        {"replay and mixture", NULL, {"data.replay={source: web, fraction: 0.1}"}, CPT_EINVAL,
         {"data.mixture and data.replay are both given"}},
        {"replay half", NULL, {"data.mixture=null", "data.replay.fraction=0.1"}, CPT_EINVAL,
         {"data.replay needs both source and fraction"}},
        {"replay undeclared", NULL, {"data.mixture=null", "data.replay={source: rep, fraction: 0.1}"},
         CPT_EINVAL, {"data.replay.source", "\"rep\" is not a declared source"}},
        {"no mixture", NULL, {"data.mixture=null"}, CPT_EINVAL,
         {"2 data sources but no data.mixture or data.replay"}},
        {"no sources", NULL, {"data.sources=null", "data.mixture=null"}, CPT_EINVAL,
         {"data.sources: no data source declared"}},
        {"steps and tokens", NULL, {"training.max_tokens=1000"}, CPT_EINVAL,
         {"training.max_steps and training.max_tokens are both set"}},
        {"no length", NULL, {"training.max_steps=null"}, CPT_EINVAL,
         {"neither is set"}},
        {"stage sum", "stages: [{steps: 10}, {steps: 20}]\n", {0}, CPT_EINVAL,
         {"training.max_steps = 100 but the stages' steps sum to 30"}},
        {"stage gap", NULL, {"stages.1.steps=5"}, CPT_EINVAL,
         {"stages.1.steps: list item 1 is given but item stages.0 is not"}},
        {"warmup twice", NULL, {"schedule.warmup_steps=5", "schedule.warmup_frac=0.1"}, CPT_EINVAL,
         {"schedule.warmup_steps and schedule.warmup_frac are both set"}},
        {"warmup too long", NULL, {"schedule.warmup_steps=100"}, CPT_EINVAL,
         {"warmup", "not shorter than the 100 steps"}},
        {"infinite order", NULL, {"schedule.type=infinite", "schedule.cooldown_frac=0.9"},
         CPT_EINVAL, {"schedule.cooldown_frac", "warmup (0.01) < cooldown_frac (0.9)"}},
        {"syntax error", "optim:\n  lr: 1: 2\n", {0}, CPT_EFORMAT,
         {"t:11:8: YAML syntax error", "mapping values are not allowed"}},
        {"syntax error override", NULL, {"optim.lr=[1"}, CPT_EFORMAT,
         {"override \"optim.lr=[1\"", "YAML syntax error"}},
        {"tab indentation", "optim:\n\tlr: 1\n", {0}, CPT_EFORMAT, {"t:11:1: YAML syntax error"}},
        {"duplicate key", "optim:\n  lr: 1e-4\n  lr: 2e-4\n", {0}, CPT_EFORMAT,
         {"t:12:3", "optim.lr: duplicate key (first set on line 11)"}},
        {"duplicate top key", "model: again\n", {0}, CPT_EFORMAT,
         {"t:10:1", "model: duplicate key (first set on line 1)"}},
        {"duplicate in flow", "optim: {lr: 1, lr: 2}\n", {0}, CPT_EFORMAT,
         {"t:10:16", "optim.lr: duplicate key"}},
        {"anchor", "optim: &o {lr: 1e-4}\n", {0}, CPT_EUNSUPPORTED, {"t:10:8", "optim", "anchors"}},
        {"alias", "optim:\n  lr: *o\n", {0}, CPT_EUNSUPPORTED, {"t:11:7", "optim.lr", "aliases"}},
        {"tag", "optim:\n  lr: !!float 1\n", {0}, CPT_EUNSUPPORTED, {"optim.lr", "tags"}},
        {"two documents", "---\nx: 1\n", {0}, CPT_EFORMAT, {"a second YAML document"}},
        {"dotted key", "optim.lr: 1\n", {0}, CPT_EFORMAT,
         {"t:10:1", "optim.lr", "write nested mappings"}},
        {"complex key", "? [a]\n: 1\n", {0}, CPT_EFORMAT, {"a mapping key is a list"}},
        {"NUL in value", "optim:\n  lr: \"1\\0\"\n", {0}, CPT_EFORMAT, {"optim.lr", "NUL"}},
        {"bad UTF-8", "x: \xff\n", {0}, CPT_EFORMAT, {"YAML syntax error"}},
        {"too deep", deep, {0}, CPT_EFORMAT, {"nesting deeper than 32"}},
        {"env unset", NULL, {"model=${CPT_RECIPE_TEST_UNSET_X}/m"}, CPT_EINVAL,
         {"model: environment variable CPT_RECIPE_TEST_UNSET_X is not set"}},
        {"env malformed", NULL, {"model=${bad name}"}, CPT_EINVAL,
         {"model: malformed environment reference"}},
        {"override without =", NULL, {"optim.lr"}, CPT_EINVAL, {"expected key=value"}},
        {"override bad key", NULL, {"optim..lr=1"}, CPT_EINVAL, {"invalid character"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const reject_case *c = &cases[i];
        size_t n = 0;
        while (n < 3 && c->ov[n]) n++;
        cpt_recipe *r = NULL;
        cpt_err e;
        int rc = load(c->extra, c->ov, n, &r, &e);
        CHECKF(rc == c->code && !r, "[%s] rc %d (want %d): %s", c->name, rc, c->code, e.msg);
        for (int k = 0; k < 4 && c->needles[k]; k++)
            CHECKF(strstr(e.msg, c->needles[k]), "[%s] message lacks \"%s\": %s", c->name,
                   c->needles[k], e.msg);
        CHECKF(rc == 0 || strstr(e.msg, "HINT") || c->code == CPT_EFORMAT ||
                   c->code == CPT_EUNSUPPORTED,
               "[%s] no HINT: %s", c->name, e.msg);
        cpt_recipe_free(r);
    }
    /* a missing recipe file */
    cpt_recipe *r = NULL;
    cpt_err e = {0};
    char path[4300];
    snprintf(path, sizeof path, "%s/nope.yaml", g_dir);
    CHECK(cpt_recipe_load(cpt_recipe_train_schema(), path, NULL, 0, &r, &e) < 0 && !r);
    CHECK(strstr(e.msg, "nope.yaml"));
}

/* ---- deprecated key: eval.batches is read as eval.sequences, with a warning ---- */

static void test_alias(void) {
    cpt_recipe *r;
    cpt_err e;
    /* no alias used: no warning, the default of the new key */
    CHECK_OK(load(NULL, NULL, 0, &r, &e), &e);
    if (r) {
        CHECK(cpt_recipe_n_warnings(r) == 0);
        CHECK(cpt_recipe_int(r, "eval.sequences") == 8);
        CHECK(!cpt_recipe_has(r, "eval.batches"));
        cpt_recipe_free(r);
    }
    /* the old key in the file (line 10 of BASE + extra): its value, one warning naming
     * place, old and new key; the dump has only the new key */
    CHECK_OK(load("eval: {every: 5, batches: 3}\n", NULL, 0, &r, &e), &e);
    if (r) {
        CHECK(cpt_recipe_int(r, "eval.sequences") == 3);
        CHECK(cpt_recipe_origin_of(r, "eval.sequences") == CPT_RORIG_FILE);
        CHECK(!cpt_recipe_has(r, "eval.batches"));
        CHECK(cpt_recipe_n_warnings(r) == 1);
        if (cpt_recipe_n_warnings(r) == 1) {
            const char *w = cpt_recipe_warning(r, 0);
            CHECKF(strstr(w, "t:10:") && strstr(w, "eval.batches is deprecated") &&
                       strstr(w, "HINT: rename it to eval.sequences"),
                   "%s", w);
        }
        char *d = NULL;
        CHECK_OK(cpt_recipe_dump(r, &d, &e), &e);
        if (d) {
            CHECK(strstr(d, "sequences: 3") && !strstr(d, "batches:"));
            free(d);
        }
        cpt_recipe_free(r);
    }
    /* the old key as an override replaces the file's new key (later source wins)... */
    const char *ov[] = {"eval.batches=4"};
    CHECK_OK(load("eval: {sequences: 2}\n", ov, 1, &r, &e), &e);
    if (r) {
        CHECK(cpt_recipe_int(r, "eval.sequences") == 4);
        CHECK(cpt_recipe_origin_of(r, "eval.sequences") == CPT_RORIG_OVERRIDE);
        CHECK(cpt_recipe_n_warnings(r) == 1);
        if (cpt_recipe_n_warnings(r) == 1) CHECK(strstr(cpt_recipe_warning(r, 0), "override \"eval.batches=4\""));
        cpt_recipe_free(r);
    }
    /* ...and the new key as an override replaces the file's old key */
    const char *ov2[] = {"eval.sequences=6"};
    CHECK_OK(load("eval: {batches: 2}\n", ov2, 1, &r, &e), &e);
    if (r) {
        CHECK(cpt_recipe_int(r, "eval.sequences") == 6);
        cpt_recipe_free(r);
    }
    /* both names in one source: an error naming both */
    CHECK(load("eval: {batches: 2, sequences: 3}\n", NULL, 0, &r, &e) < 0 && !r);
    CHECKF(strstr(e.msg, "eval.batches") && strstr(e.msg, "eval.sequences") && strstr(e.msg, "HINT"), "%s", e.msg);
    /* the alias keeps the new key's bounds */
    CHECK(load("eval: {batches: 0}\n", NULL, 0, &r, &e) < 0 && !r);
    CHECKF(strstr(e.msg, "eval.sequences"), "%s", e.msg);
}

/* ---- help: every key of the issue's list, and nothing undocumented ---- */

static void test_help(void) {
    static const char *sched[] = {"type",         "warmup_steps", "warmup_frac",  "min_lr_ratio",
                                  "decay_frac",   "decay_shape",  "rewarm_from",  "const_ratio",
                                  "cooldown_frac", "anneal_frac", "cooldown_shape", "timescale"};
    static const char *keys[] = {
        "model", "tokenizer", "out_dir", "seed", "threads", "precision", "data.sources.*.path",
        "rope.theta", "rope.scaling.type", "rope.scaling.factor", "rope.scaling.original_max_position_embeddings",
        "rope.scaling.low_freq_factor", "rope.scaling.high_freq_factor", "rope.scaling.beta_fast",
        "rope.scaling.beta_slow", "rope.scaling.mscale", "rope.scaling.mscale_all_dim",
        "rope.scaling.attention_factor", "rope.max_position_embeddings", "rope.allow_long_context",
        "data.sources.*.max_epochs", "data.sources.*.min_doc_tokens", "data.sources.*.max_doc_tokens",
        "data.mixture.*", "data.replay.source",
        "data.replay.fraction", "data.validation.*", "data.seed", "training.seq_len",
        "training.micro_batch", "training.grad_accum", "training.zero", "parallel.context", "training.max_steps",
        "training.max_tokens", "training.block_causal", "training.reset_positions", "training.recompute", "training.memory_check", "optim.lr",
        "training.train_only", "stages.#.train_only", "optim.embed_lr",
        "optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay", "optim.embed_lr_mult",
        "optim.clip", "stages.#.name", "stages.#.steps", "stages.#.mixture.*", "stages.#.seq_len",
        "stages.#.lr", "stages.#.freeze.embeddings", "stages.#.freeze.first_layers",
        "regularization.ewc.lambda", "regularization.ewc.source", "regularization.ewc.samples",
        "regularization.ewc.cache", "regularization.l2_base",
        "regularization.freeze.embeddings", "regularization.freeze.first_layers",
        "stability.skip_zscore", "stability.window", "eval.every", "eval.sequences",
        "eval.forgetting_budget.*", "eval.on_budget", "checkpoint.every", "checkpoint.keep_last",
        "checkpoint.sharded_optim", "checkpoint.keep_best", "checkpoint.dir", "export.dtype", "export.at_end", "export.dir",
        /* progressive length (issue 11): per-stage geometry and RoPE */
        "training.tokens_per_step", "stages.#.micro_batch", "stages.#.grad_accum", "stages.#.rope.theta",
        "stages.#.rope.scaling.type", "stages.#.rope.scaling.factor", "stages.#.rope.scaling.original_max_position_embeddings",
        "stages.#.rope.scaling.low_freq_factor", "stages.#.rope.scaling.high_freq_factor", "stages.#.rope.scaling.beta_fast",
        "stages.#.rope.scaling.beta_slow", "stages.#.rope.scaling.mscale", "stages.#.rope.scaling.mscale_all_dim",
        "stages.#.rope.scaling.attention_factor", "stages.#.rope.max_position_embeddings",
        /* long-context checks in the loop (issue 11) */
        "eval.ifeval.every", "eval.ifeval.prompts", "eval.ifeval.limit", "eval.ifeval.max_new", "eval.ifeval.budget", "eval.tasks.names", "eval.tasks.every", "eval.tasks.limit", "eval.tasks.fewshot", "eval.tasks.max_new",
        "eval.tasks.budget", "eval.tasks.data_dir", "eval.long.lengths", "eval.long.depths", "eval.long.trials", "eval.long.every", "eval.long.haystack",
        "eval.long.ppl_text", "eval.long.bucket", "eval.long.ppl_windows",
        /* LoRA inside cpt train (issue 13) */
        "lora.rank", "lora.alpha", "lora.dropout", "lora.targets", "lora.targets.#", "lora.modules_to_save",
        "lora.modules_to_save.#", "lora.rslora", "lora.seed", "lora.merge_export"};
    size_t nk = sizeof keys / sizeof *keys, ns = sizeof sched / sizeof *sched;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cpt_recipe_help(f, cpt_recipe_train_schema());
    fclose(f);
    char pat[128];
    for (size_t i = 0; i < nk + 2 * ns; i++) {
        if (i < nk)
            snprintf(pat, sizeof pat, "  %s ", keys[i]);
        else if (i < nk + ns)
            snprintf(pat, sizeof pat, "  schedule.%s ", sched[i - nk]);
        else
            snprintf(pat, sizeof pat, "  stages.#.schedule.%s ", sched[i - nk - ns]);
        CHECKF(strstr(buf, pat), "help lacks %s", pat);
    }
    /* nothing in the table that the issue does not list, and every entry has help */
    const cpt_recipe_schema *s = cpt_recipe_train_schema();
    CHECKF(s->n_opts == nk + 2 * ns, "schema has %zu keys, the list %zu", s->n_opts, nk + 2 * ns);
    for (size_t i = 0; i < s->n_opts; i++)
        CHECKF(s->opts[i].help && strlen(s->opts[i].help) > 10, "%s has no help",
               s->opts[i].pattern);
    free(buf);

    CHECK(cpt_recipe_edit_distance("kitten", "sitting") == 3);
    CHECK(cpt_recipe_edit_distance("", "abc") == 3);
    CHECK(cpt_recipe_edit_distance("optim.lrr", "optim.lr") == 1);
    CHECK(cpt_recipe_edit_distance("same", "same") == 0);
}

/* Tool mode: for each YAML file print "FILE<TAB>path", then "key<TAB>quoted<TAB>text"
 * lines (text with \n, \t, \\ escaped) or one "ERROR<TAB>message" line. */
static int dump_flat(const char *path) {
    printf("FILE\t%s\n", path);
    char *text;
    size_t len;
    cpt_err e = {0};
    if (cpt_read_file(path, &text, &len, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    rcp_store s = {0};
    rcp_store_add_src(&s, path, ".", &e);
    int rc = rcp_yaml_flatten(text, len, "", 0, 0, &s, &e);
    free(text);
    if (rc) {
        for (char *p = e.msg; *p; p++)
            if (*p == '\n') *p = ' ';
        printf("ERROR\t%s\n", e.msg);
    } else {
        for (size_t i = 0; i < s.n; i++) {
            printf("%s\t%d\t", s.e[i].key, s.e[i].quoted);
            for (const char *p = s.e[i].text; *p; p++) {
                if (*p == '\n') fputs("\\n", stdout);
                else if (*p == '\\') fputs("\\\\", stdout);
                else if (*p == '\t') fputs("\\t", stdout);
                else putchar(*p);
            }
            putchar('\n');
        }
    }
    rcp_store_free(&s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) {
        int rc = 0;
        for (int i = 1; i < argc; i++) rc |= dump_flat(argv[i]);
        return rc;
    }
    const char *tmp = tu_env("CPT_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/recipe_test", tmp ? tmp : "/tmp");
    mkdir_p("model");
    mkdir_p("shards/web");
    mkdir_p("shards/code");
    mkdir_p("shards/val");
    char afile[4300];
    snprintf(afile, sizeof afile, "%s/afile", g_dir);
    cpt_err e = {0};
    CHECK_OK(cpt_write_file_atomic(afile, "x", 1, &e), &e);
    test_flatten();
    test_defaults();
    test_replay_mixture();
    test_overrides();
    test_env();
    test_round_trip();
    test_rejects();
    test_help();
    test_alias();
    TEST_END();
}
