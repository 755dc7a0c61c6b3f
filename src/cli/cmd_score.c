/* cmd_score.c: `cpt score`: mean next-token cross-entropy and perplexity of one
 * sequence of token ids under a model, optionally writing the logits as .npy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/fileio.h"
#include "cpt/model.h"
#include "cpt/npy.h"
#include "cpt/tokenizer.h"

int cpt_cmd_score(int argc, char **argv) {
    const char *model_dir = NULL, *ids_path = NULL, *text_path = NULL, *tok_path = NULL, *logits_path = NULL;
    int allow_long = 0;
    const char *precision = "fp32";
    cpt_opt opts[] = {
        {"--model", CPT_OPT_STR, &model_dir, "DIR", "Hugging Face model directory (config.json + safetensors)", 1, 0, 0, NULL, 0},
        {"--ids", CPT_OPT_STR, &ids_path, "FILE", "file of whitespace-separated token ids (one sequence)", 0, 0, 0, NULL, 0},
        {"--text", CPT_OPT_STR, &text_path, "FILE", "a text file, encoded with the tokenizer (special tokens added as the tokenizer does)", 0, 0, 0, NULL, 0},
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer for --text (default: the model directory)", 0, 0, 0, NULL, 0},
        {"--logits", CPT_OPT_STR, &logits_path, "OUT.npy", "also write float32 logits [T, vocab] as a NumPy .npy file", 0, 0, 0, NULL, 0},
        {"--allow-long-context", CPT_OPT_FLAG, &allow_long, NULL, "allow positions past the model's context (max_position_embeddings, scaled by rope_scaling)", 0, 0, 0, NULL, 0},
        {"--precision", CPT_OPT_STR, &precision, "fp32|bf16", "products of the linears, the LM head and attention: bf16 on AMX / AVX512-BF16 (as precision: bf16 in cpt train), else fp32", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"score",
                         "Score one token sequence: prints a JSON line with \"tokens\", \"predicted\", \"loss\" (mean\n"
                         "next-token cross-entropy in nats over the T-1 predicted positions) and \"ppl\" = exp(loss).",
                         "Give exactly one of --ids and --text.", opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if (!ids_path == !text_path) {
        fprintf(stderr, "cpt score: give exactly one of --ids FILE and --text FILE\nHINT: run 'cpt score --help'\n");
        return 2;
    }
    cpt_err err = {0};
    char *text = NULL;
    int32_t *ids = NULL, *targets = NULL;
    float *logits = NULL;
    size_t T = 0;
    cpt_model *m = NULL;
    cpt_acts *acts = NULL;
    const char *src = ids_path ? ids_path : text_path;
    size_t tlen = 0;
    int rc = cpt_read_file(src, &text, &tlen, &err);
    if (!rc && ids_path) rc = cpt_parse_ids(text, ids_path, &ids, &T, &err);
    if (!rc && text_path) {
        cpt_tok *tok = NULL;
        rc = cpt_tok_load(&tok, tok_path ? tok_path : model_dir, &err);
        if (!rc) rc = cpt_tok_encode(tok, text, tlen, 1, &ids, &T, NULL, &err);
        cpt_tok_free(tok);
    }
    if (!rc && T < 2) rc = cpt_err_set(&err, CPT_EINVAL, "%s: %zu token(s); scoring needs at least 2", src, T);
    if (!rc && T > (1u << 24)) rc = cpt_err_set(&err, CPT_EINVAL, "%s: %zu tokens is too long to score at once", src, T);
    if (!rc) rc = cpt_model_load_hf(&m, model_dir, &err);
    if (!rc) m->allow_long_context = allow_long;
    if (!rc) rc = cpt_cli_set_precision(m, precision, "scoring", stderr, &err);
    if (!rc) rc = cpt_acts_create(&acts, m, 1, (int)T, 0, &err);
    if (!rc) {
        targets = malloc(sizeof(int32_t) * T);
        if (logits_path) logits = malloc(sizeof(float) * T * (size_t)m->cfg.vocab_size);
        if (!targets || (logits_path && !logits)) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
    }
    double loss_sum = 0;
    long long nv = 0;
    if (!rc) {
        for (size_t t = 0; t + 1 < T; t++) targets[t] = ids[t + 1];
        targets[T - 1] = -1;
        cpt_batch b = {1, (int)T, ids, targets, NULL, NULL};
        rc = cpt_model_step(m, acts, &b, NULL, 1.0f, NULL, &loss_sum, &nv, logits, &err);
    }
    if (!rc && logits_path) {
        int64_t shape[2] = {(int64_t)T, m->cfg.vocab_size};
        rc = cpt_npy_write_f32(logits_path, logits, 2, shape, &err);
    }
    if (!rc) {
        double loss = loss_sum / (double)nv;
        printf("{\"tokens\": %zu, \"predicted\": %lld, \"loss\": %.9g, \"ppl\": %.9g}\n", T, nv, loss, exp(loss));
    }
    free(text);
    free(ids);
    free(targets);
    free(logits);
    cpt_acts_free(acts);
    cpt_model_free(m);
    return rc ? cpt_cli_fail("score", &err) : 0;
}
