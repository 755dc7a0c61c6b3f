/* cmd_evallong.c: `cpt eval-long`: passkey retrieval and needle-in-a-haystack accuracy
 * by context length and depth (greedy answers), loss by position bucket on long texts;
 * JSON on stdout (and --out), an SVG heat map (--svg). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/fileio.h"
#include "cpt/longctx.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

#define MAXL 64

static json_t *retrieval_json(const cpt_lc_trial *t, size_t n, int test, const cpt_lc_opts *o) {
    json_t *r = json_object(), *acc = json_object(), *bylen = json_object(), *items = json_array();
    int ok_all = 0, tot_all = 0;
    for (int li = 0; li < o->n_lengths; li++) {
        char lk[32];
        snprintf(lk, sizeof lk, "%d", o->lengths[li]);
        json_t *row = json_object();
        int okl = 0, totl = 0;
        for (int di = 0; di < o->n_depths; di++) {
            int ok = 0, tot = 0;
            for (size_t i = 0; i < n; i++)
                if (t[i].test == test && t[i].length == o->lengths[li] && t[i].depth == o->depths[di]) tot++, ok += t[i].correct;
            char dk[32];
            snprintf(dk, sizeof dk, "%g", o->depths[di]);
            json_object_set_new(row, dk, tot ? json_real((double)ok / tot) : json_null());
            okl += ok, totl += tot;
        }
        json_object_set_new(acc, lk, row);
        json_object_set_new(bylen, lk, totl ? json_real((double)okl / totl) : json_null());
        ok_all += okl, tot_all += totl;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i].test != test) continue;
        json_t *it = json_pack("{s:i, s:f, s:i, s:i, s:f, s:s, s:b, s:f}", "length", t[i].length, "depth", t[i].depth, "trial", t[i].trial,
                               "prompt_tokens", t[i].prompt_tokens, "actual_depth", t[i].actual_depth, "answer", t[i].answer ? t[i].answer : "",
                               "correct", t[i].correct, "seconds", t[i].seconds);
        if (test == CPT_LC_PASSKEY) json_object_set_new(it, "key", json_integer(t[i].key));
        json_array_append_new(items, it);
    }
    json_object_set_new(r, "accuracy", acc);
    json_object_set_new(r, "accuracy_by_length", bylen);
    json_object_set_new(r, "accuracy_overall", tot_all ? json_real((double)ok_all / tot_all) : json_null());
    json_object_set_new(r, "max_new_tokens", json_integer(o->max_new[test]));
    json_object_set_new(r, "items", items);
    return r;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

int cpt_cmd_eval_long(int argc, char **argv) {
    const char *model_dir = NULL, *lengths_s = NULL, *depths_s = "0,0.25,0.5,0.75,1", *tests_s = NULL, *hay_path = NULL,
               *ppl_s = NULL, *tok_path = NULL, *out_path = NULL, *svg_path = NULL, *rope_json = NULL, *precision = "fp32";
    long long trials = 3, seed = 42, ppl_windows = 4, bucket = 512, max_new = 0;
    int allow_long = 0, quiet = 0;
    cpt_opt opts[] = {
        {"--model", CPT_OPT_STR, &model_dir, "DIR", "Hugging Face model directory (config.json + safetensors + tokenizer)", 1, 0, 0, NULL, 0},
        {"--lengths", CPT_OPT_STR, &lengths_s, "LIST", "context lengths in tokens, comma-separated (prompt + answer fit in each)", 1, 0, 0, NULL, 0},
        {"--depths", CPT_OPT_STR, &depths_s, "LIST", "where the passkey / needle goes, fractions of the filler in [0, 1]", 0, 0, 0, NULL, 0},
        {"--trials", CPT_OPT_INT, &trials, "N", "prompts per (length, depth): passkeys differ per trial", 0, 1, 10000, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "seed of the passkeys", 0, 0, 9e15, NULL, 0},
        {"--tests", CPT_OPT_STR, &tests_s, "LIST", "passkey, needle, ppl (default: passkey, plus needle with --haystack and ppl with --ppl-text)", 0, 0, 0, NULL, 0},
        {"--haystack", CPT_OPT_STR, &hay_path, "FILE", "text the needle is hidden in (repeated when shorter than a length; e.g. essays or a book)", 0, 0, 0, NULL, 0},
        {"--ppl-text", CPT_OPT_STR, &ppl_s, "FILES", "comma-separated long text files (one document each) for loss by position", 0, 0, 0, NULL, 0},
        {"--ppl-windows", CPT_OPT_INT, &ppl_windows, "N", "at most N windows per length for loss by position (0: all)", 0, 0, 1e9, NULL, 0},
        {"--bucket", CPT_OPT_INT, &bucket, "B", "first position bucket: [0,B), [B,2B), [2B,4B), ... up to the length", 0, 1, 1 << 24, NULL, 0},
        {"--max-new", CPT_OPT_INT, &max_new, "N", "answer tokens generated (0: passkey 10, needle 24)", 0, 0, 4096, NULL, 0},
        {"--rope", CPT_OPT_STR, &rope_json, "JSON", "config.json fields to override for this evaluation, e.g. '{\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 512}}'", 0, 0, 0, NULL, 0},
        {"--precision", CPT_OPT_STR, &precision, "fp32|bf16", "products of the linears, the LM head and attention in the prefill and the loss by position, of the linears and the LM head in decoding: bf16 on AMX / AVX512-BF16, else fp32", 0, 0, 0, NULL, 0},
        {"--allow-long-context", CPT_OPT_FLAG, &allow_long, NULL, "allow lengths past the model's context (max_position_embeddings, scaled by rope_scaling)", 0, 0, 0, NULL, 0},
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer (default: the model directory)", 0, 0, 0, NULL, 0},
        {"--out", CPT_OPT_STR, &out_path, "FILE.json", "also write the JSON result here", 0, 0, 0, NULL, 0},
        {"--svg", CPT_OPT_STR, &svg_path, "FILE.svg", "heat map of accuracy (depth x length) and the loss-by-position chart (default: --out with .svg)", 0, 0, 0, NULL, 0},
        {"--quiet", CPT_OPT_FLAG, &quiet, NULL, "no per-prompt lines on stderr", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"eval-long",
                         "Long-context evaluation: passkey retrieval (Mohtashami & Jaggi 2023) and needle-in-a-haystack\n"
                         "(gkamradt) accuracy per context length and depth, scored on the greedy answer (passkey: its first\n"
                         "integer equals the key; needle: it names \"Dolores Park\" and \"sandwich\"), and the loss by position\n"
                         "bucket on non-overlapping windows of long texts.",
                         "Prompts are built with the model's tokenizer so that prompt + answer tokens <= each length; a long\n"
                         "prompt is prefilled in one forward. JSON on stdout: per test the accuracy by length and depth and\n"
                         "every prompt's answer; per length the loss (and ppl) of each position bucket.",
                         opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    cpt_err err = {0};
    double lv[MAXL], dv[MAXL];
    int nl = 0, nd = 0, run_ppl = 0, rc;
    int lengths[MAXL];
    cpt_lc_opts o = {0};
    if ((rc = cpt_parse_num_list(lengths_s, "--lengths", 2, 1 << 24, 1, lv, MAXL, &nl, &err)) ||
        (rc = cpt_parse_num_list(depths_s, "--depths", 0, 1, 0, dv, MAXL, &nd, &err)))
        return cpt_cli_fail("eval-long", &err);
    for (int i = 0; i < nl; i++) lengths[i] = (int)lv[i];
    o.lengths = lengths, o.n_lengths = nl, o.depths = dv, o.n_depths = nd, o.trials = (int)trials, o.seed = (uint64_t)seed;
    o.max_new[CPT_LC_PASSKEY] = max_new ? (int)max_new : 10, o.max_new[CPT_LC_NEEDLE] = max_new ? (int)max_new : 24;
    o.progress = quiet ? NULL : stderr;
    if (tests_s) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", tests_s);
        for (char *sv = NULL, *w = strtok_r(buf, ",", &sv); w; w = strtok_r(NULL, ",", &sv)) {
            if (!strcmp(w, "passkey")) o.run[CPT_LC_PASSKEY] = 1;
            else if (!strcmp(w, "needle")) o.run[CPT_LC_NEEDLE] = 1;
            else if (!strcmp(w, "ppl")) run_ppl = 1;
            else {
                fprintf(stderr, "cpt eval-long: error: --tests: unknown test \"%s\"\nHINT: choose from passkey, needle, ppl\n", w);
                return 2;
            }
        }
    } else {
        o.run[CPT_LC_PASSKEY] = 1, o.run[CPT_LC_NEEDLE] = hay_path != NULL, run_ppl = ppl_s != NULL;
    }
    if (o.run[CPT_LC_NEEDLE] && !hay_path) {
        fprintf(stderr, "cpt eval-long: error: the needle test needs a haystack\nHINT: pass --haystack FILE (a long text, e.g. essays or a book)\n");
        return 2;
    }
    if (run_ppl && !ppl_s) {
        fprintf(stderr, "cpt eval-long: error: the ppl test needs long texts\nHINT: pass --ppl-text FILE[,FILE...] (books, long documents)\n");
        return 2;
    }
    cpt_tok *tok = NULL;
    cpt_model *m = NULL;
    char *hay = NULL, *svg = NULL, *js = NULL;
    int32_t *hay_ids = NULL, *docs[MAXL] = {0};
    size_t hay_n = 0, doc_n[MAXL] = {0};
    int n_docs = 0;
    cpt_lc_trial *tr = NULL;
    size_t ntr = 0;
    cpt_lc_ppl ppl[MAXL];
    int n_ppl = 0;
    double t0 = cpt_now();
    rc = cpt_tok_load(&tok, tok_path ? tok_path : model_dir, &err);
    if (!rc && hay_path && o.run[CPT_LC_NEEDLE]) {
        size_t hl = 0;
        rc = cpt_read_file(hay_path, &hay, &hl, &err);
        if (!rc) rc = cpt_tok_encode(tok, hay, hl, 0, &hay_ids, &hay_n, NULL, &err);
        if (!rc && hay_n == 0) rc = cpt_err_set(&err, CPT_EINVAL, "%s: the haystack is empty", hay_path);
        o.haystack = hay_ids, o.n_haystack = hay_n;
    }
    if (!rc && run_ppl) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", ppl_s);
        for (char *sv = NULL, *w = strtok_r(buf, ",", &sv); !rc && w; w = strtok_r(NULL, ",", &sv)) {
            if (n_docs >= MAXL) {
                rc = cpt_err_set(&err, CPT_EINVAL, "--ppl-text: at most %d files", MAXL);
                break;
            }
            char *txt = NULL;
            size_t tl = 0;
            rc = cpt_read_file(w, &txt, &tl, &err);
            if (!rc) rc = cpt_tok_encode(tok, txt, tl, 1, &docs[n_docs], &doc_n[n_docs], NULL, &err);
            free(txt);
            if (!rc) n_docs++;
        }
    }
    if (!rc) rc = cpt_model_load_hf(&m, model_dir, &err);
    if (!rc && rope_json) {
        rc = cpt_config_override(&m->cfg, rope_json, "--rope", &err);
        m->rope_built = 0, m->rope_cached = 0;
    }
    if (!rc) m->allow_long_context = allow_long;
    if (!rc) rc = cpt_cli_set_precision(m, precision, "long-context evaluation", quiet ? NULL : stderr, &err);
    if (!rc && (o.run[CPT_LC_PASSKEY] || o.run[CPT_LC_NEEDLE])) rc = cpt_lc_run(m, tok, &o, &tr, &ntr, &err);
    for (int i = 0; !rc && run_ppl && i < nl; i++) {
        rc = cpt_lc_ppl_run(m, (const int32_t *const *)docs, doc_n, n_docs, lengths[i], (int)bucket, (int)ppl_windows, &ppl[n_ppl], &err);
        if (!rc && !quiet) {
            fprintf(stderr, "  ppl     length %6d: %d windows, loss %.4f (ppl %.3f); by position:", lengths[i], ppl[n_ppl].windows, ppl[n_ppl].loss,
                    exp(ppl[n_ppl].loss));
            for (int k = 0; k < ppl[n_ppl].n_buckets; k++)
                fprintf(stderr, " [%d,%d) %.4f", ppl[n_ppl].lo[k], ppl[n_ppl].hi[k], ppl[n_ppl].bucket_loss[k]);
            fprintf(stderr, "\n");
        }
        if (!rc) n_ppl++;
    }
    if (!rc) {
        json_t *root = json_object();
        json_object_set_new(root, "model", json_string(model_dir));
        json_t *ja = json_array(), *jd = json_array();
        for (int i = 0; i < nl; i++) json_array_append_new(ja, json_integer(lengths[i]));
        for (int i = 0; i < nd; i++) json_array_append_new(jd, json_real(dv[i]));
        json_object_set_new(root, "lengths", ja);
        json_object_set_new(root, "depths", jd);
        json_object_set_new(root, "trials", json_integer(trials));
        json_object_set_new(root, "seed", json_integer(seed));
        json_object_set_new(root, "precision", json_string(m->lowp ? "bf16" : "fp32"));
        json_object_set_new(root, "rope_theta", json_real(m->cfg.rope_theta));
        json_object_set_new(root, "max_position_embeddings", json_integer(m->cfg.max_pos));
        for (int k = 0; k < CPT_LC_NTESTS; k++)
            if (o.run[k]) json_object_set_new(root, cpt_lc_test_names[k], retrieval_json(tr, ntr, k, &o));
        if (n_ppl) {
            json_t *jp = json_array();
            for (int i = 0; i < n_ppl; i++) {
                json_t *b = json_array();
                for (int k = 0; k < ppl[i].n_buckets; k++)
                    json_array_append_new(b, json_pack("{s:i, s:i, s:o, s:o, s:I}", "lo", ppl[i].lo[k], "hi", ppl[i].hi[k], "loss",
                                                       num(ppl[i].bucket_loss[k]), "ppl", num(exp(ppl[i].bucket_loss[k])), "tokens",
                                                       (json_int_t)ppl[i].bucket_tokens[k]));
                json_array_append_new(jp, json_pack("{s:i, s:i, s:I, s:o, s:o, s:o}", "length", ppl[i].length, "windows", ppl[i].windows,
                                                    "tokens", (json_int_t)ppl[i].tokens, "loss", num(ppl[i].loss), "ppl", num(exp(ppl[i].loss)),
                                                    "buckets", b));
            }
            json_object_set_new(root, "ppl", jp);
        }
        json_object_set_new(root, "seconds", json_real(cpt_now() - t0));
        js = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        json_decref(root);
        if (!js) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
    }
    if (!rc) {
        printf("%s\n", js);
        if (out_path) {
            size_t l = strlen(js);
            js[l] = '\n';
            rc = cpt_write_file_atomic(out_path, js, l + 1, &err);
            js[l] = 0;
        }
    }
    char svgbuf[4200];
    if (!rc && !svg_path && out_path) {
        size_t l = strlen(out_path);
        snprintf(svgbuf, sizeof svgbuf, "%.*s.svg", (int)(l > 5 && !strcmp(out_path + l - 5, ".json") ? l - 5 : l), out_path);
        svg_path = svgbuf;
    }
    if (!rc && svg_path) {
        char title[512];
        snprintf(title, sizeof title, "cpt eval-long: %s", model_dir);
        svg = cpt_lc_svg(tr, ntr, &o, ppl, n_ppl, title);
        rc = svg ? cpt_write_file_atomic(svg_path, svg, strlen(svg), &err) : cpt_err_set(&err, CPT_ENOMEM, "out of memory");
    }
    free(js), free(svg), free(hay), free(hay_ids);
    for (int i = 0; i < n_docs; i++) free(docs[i]);
    cpt_lc_trials_free(tr, ntr);
    cpt_model_free(m);
    cpt_tok_free(tok);
    return rc ? cpt_cli_fail("eval-long", &err) : 0;
}
