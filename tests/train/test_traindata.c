/* test_traindata.c: the trainer's data path end to end: two corpora prepared into shards
 * (cpt_prepare_run, byte-level tokenizer), mixed 3:1 and packed; checks proportions,
 * that every sequence comes from its source's text only, that targets are the next token
 * within a document and -1 across boundaries, that validation shards evaluate, and that
 * a short training run on the mixture lowers the validation loss. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/prepare.h"
#include "cpt/tokenizer.h"
#include "cpt/traindata.h"
#include "testutil.h"

static void write_corpus(const char *path, const char *alphabet, int docs, unsigned seed) {
    FILE *f = fopen(path, "w");
    size_t na = strlen(alphabet);
    for (int d = 0; d < docs; d++) {
        int words = 20 + (int)(seed % 17);
        for (int w = 0; w < words; w++) {
            int len = 2 + (int)((seed >> 3) % 6);
            for (int c = 0; c < len; c++) {
                seed = seed * 1103515245u + 12345u;
                fputc(alphabet[(seed >> 16) % na], f);
            }
            fputc(w + 1 < words ? ' ' : '.', f);
        }
        fputs("\n\n", f);
    }
    fclose(f);
}

static int prepare(const char *tokdir, const char *input, const char *out, cpt_err *e) {
    cpt_prepare_cfg c;
    cpt_prepare_cfg_default(&c);
    const char *in[] = {input};
    c.inputs = in, c.n_inputs = 1, c.tokenizer = tokdir, c.out_dir = out;
    c.filters = 0, c.exact_dedup = 0, c.near_dedup = 0, c.val_fraction = 0.1;
    cpt_prepare_stats st;
    return cpt_prepare_run(&c, &st, e);
}

int main(void) {
    const char *tmp = tu_env("CPT_TMP");
    char base[512], tokdir[600], ga[600], gb[600], da[600], db[600], run[600];
    snprintf(base, sizeof base, "%s/test_traindata_%d", tmp ? tmp : "/tmp", (int)getpid());
    snprintf(tokdir, sizeof tokdir, "%s/tok", base);
    snprintf(ga, sizeof ga, "%s/general.jsonl", base);
    snprintf(gb, sizeof gb, "%s/domain.jsonl", base);
    snprintf(da, sizeof da, "%s/general", base);
    snprintf(db, sizeof db, "%s/domain", base);
    snprintf(run, sizeof run, "%s/run", base);
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(base, &e), &e);
    CHECK_OK(cpt_tok_write_bytelevel(tokdir, &e), &e);
    /* jsonl, one document per line, so one corpus file gives many documents */
    char txt[600];
    snprintf(txt, sizeof txt, "%s/g.txt", base);
    write_corpus(txt, "abcdefghijklm", 300, 1);
    snprintf(txt, sizeof txt, "%s/d.txt", base);
    write_corpus(txt, "nopqrstuvwxyz", 300, 2);
    for (int k = 0; k < 2; k++) {
        char src[600], cmd[2000];
        snprintf(src, sizeof src, "%s/%s.txt", base, k ? "d" : "g");
        snprintf(cmd, sizeof cmd, "awk 'BEGIN{RS=\"\"} {gsub(/\\n/,\" \"); printf \"{\\\"text\\\": \\\"%%s\\\"}\\n\", $0}' '%s' > '%s'", src, k ? gb : ga);
        CHECK(system(cmd) == 0);
    }
    CHECK_OK(prepare(tokdir, ga, da, &e), &e);
    CHECK_OK(prepare(tokdir, gb, db, &e), &e);

    const char *names[] = {"general", "domain"}, *dirs[] = {da, db};
    double w0[] = {0.75, 0.25};
    const double *weights[] = {w0};
    uint64_t ends[] = {UINT64_MAX};
    cpt_mixdata_cfg mc = {2, names, dirs, NULL, 1, weights, ends, 7, 32, 4, 0, 0, NULL, NULL, NULL, 0};
    cpt_mixdata *md = NULL;
    CHECK_OK(cpt_mixdata_open(&md, &mc, &e), &e);
    if (!md) TEST_END();
    CHECK(cpt_mixdata_vocab_size(md) == 258);
    cpt_data_iface di = cpt_mixdata_iface(md);
    int32_t ids[32], tg[32], pos[32], seg[32];
    int counts[2] = {0, 0}, bad_alpha = 0, bad_target = 0, boundaries = 0;
    for (long long g = 0; g < 400; g++) {
        int src = -1;
        CHECK_OK(di.sequence(di.ctx, g, 32, ids, tg, pos, seg, &src, &e), &e);
        if (src < 0 || src > 1) continue;
        counts[src]++;
        for (int t = 0; t < 32; t++) {
            int c = ids[t];
            int letter = c >= 'a' && c <= 'z';
            if (letter && (src == 0) != (c <= 'm')) bad_alpha++;
            if (t + 1 < 32 && tg[t] >= 0 && tg[t] != ids[t + 1]) bad_target++;
            if (t + 1 < 32 && seg[t + 1] != seg[t]) {
                boundaries++;
                if (tg[t] != -1) bad_target++;
                if (pos[t + 1] != 0) bad_target++;
            }
        }
    }
    CHECKF(counts[0] >= 298 && counts[0] <= 302, "general drew %d of 400 (want 300)", counts[0]);
    CHECK(bad_alpha == 0 && bad_target == 0 && boundaries > 0);

    cpt_shardseq *vs = NULL;
    CHECK_OK(cpt_shardseq_open(&vs, db, "val", 32, 0, &e), &e);
    if (!vs) TEST_END();
    CHECK(cpt_shardseq_n_seqs(vs) > 0);

    /* Train a small model on the mixture; the domain validation loss must drop. */
    const char *cfgj = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 258, \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"tie_word_embeddings\": true}";
    cpt_config cfg;
    CHECK_OK(cpt_config_parse(&cfg, cfgj, strlen(cfgj), "inline", &e), &e);
    cpt_model *m = NULL;
    CHECK_OK(cpt_model_create(&m, &cfg, &e), &e);
    cpt_config_free(&cfg);
    cpt_model_init_random(m, 3, 0.05f);
    cpt_eval_set ev = {"domain", cpt_shardseq_iface(vs), cpt_shardseq_n_seqs(vs), 0};
    cpt_train_cfg tc;
    memset(&tc, 0, sizeof tc);
    tc.run_dir = run, tc.seq_len = 32, tc.micro_batch = 4, tc.grad_accum = 1, tc.max_steps = 30;
    tc.block_causal = 1, tc.reset_positions = 1, tc.optim = (cpt_adamw_cfg){1e-2, 0.9, 0.95, 1e-8, 0.0};
    tc.clip = 1.0, tc.embed_lr_mult = 1.0, tc.train_data = di, tc.evals = &ev, tc.n_evals = 1, tc.eval_batches = 8;
    tc.ckpt_every = 0, tc.keep_last = 1;
    cpt_train_result r;
    CHECK_OK(cpt_train_run(&tc, m, NULL, &r, &e), &e);
    CHECKF(r.evals[0].loss < r.evals[0].base_loss - 0.5, "domain loss %.3f vs base %.3f", r.evals[0].loss, r.evals[0].base_loss);
    CHECK(r.source_tokens[0] + r.source_tokens[1] == 30 * 4 * 32);
    CHECKF(r.source_tokens[0] == 3 * r.source_tokens[1], "tokens %lld / %lld", r.source_tokens[0], r.source_tokens[1]);
    fprintf(stderr, "general %d / domain %d draws; domain val loss %.3f -> %.3f; tokens %lld/%lld\n", counts[0], counts[1],
            r.evals[0].base_loss, r.evals[0].loss, r.source_tokens[0], r.source_tokens[1]);
    cpt_model_free(m);
    cpt_shardseq_close(vs);
    cpt_mixdata_close(md);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
    TEST_END();
}
