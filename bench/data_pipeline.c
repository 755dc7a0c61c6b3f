/* data_pipeline.c: throughput of the data pipeline pieces: prepare (MB/s of input), packed
 * sequence reads and mixture seeks. Usage: data_pipeline <tokenizer.json> <out_dir> <input>...
 * e.g. data_pipeline ../shared/data/tokenizers/gpt2/hf/tokenizer.json /tmp/prep \
 *        ../shared/data/corpora/general/c4_demo.jsonl */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/mixture.h"
#include "cpt/prepare.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s tokenizer.json out_dir input...\n", argv[0]);
        return 2;
    }
    cpt_err err = {0};
    cpt_prepare_cfg cfg;
    cpt_prepare_cfg_default(&cfg);
    cfg.tokenizer = argv[1];
    cfg.out_dir = argv[2];
    cfg.inputs = (const char *const *)(argv + 3);
    cfg.n_inputs = (size_t)(argc - 3);
    double bytes = 0;
    for (int i = 3; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) == 0) bytes += (double)sb.st_size;
    }
    cpt_prepare_stats st;
    double t0 = cpt_now();
    if (cpt_prepare_run(&cfg, &st, &err)) {
        fprintf(stderr, "prepare: %s\n", err.msg);
        return 1;
    }
    double dt = cpt_now() - t0;
    printf("prepare: %.1f MB in %.2f s = %.2f MB/s; docs %llu -> kept %llu (filtered %llu, exact %llu, near %llu, "
           "malformed %llu); %llu train tokens\n",
           bytes / 1e6, dt, bytes / 1e6 / dt, (unsigned long long)st.docs_in, (unsigned long long)st.kept,
           (unsigned long long)st.filtered, (unsigned long long)st.exact_duplicates,
           (unsigned long long)st.near_duplicates, (unsigned long long)st.malformed,
           (unsigned long long)st.train_tokens);

    char path[4200];
    snprintf(path, sizeof path, "%s/train-00000.shard", argv[2]);
    const char *shards[1] = {path};
    cpt_pack_source *src = NULL;
    if (cpt_pack_source_open(&src, shards, 1, 512, 1, &err)) {
        fprintf(stderr, "pack: %s\n", err.msg);
        return 1;
    }
    uint64_t ns = cpt_pack_source_n_seqs(src);
    cpt_mix_source_cfg sc = {"train", ns, 0};
    double w = 1;
    cpt_mix_phase_cfg ph = {&w, UINT64_MAX};
    cpt_mix_cfg mc = {&sc, 1, &ph, 1, 1, CPT_MIX_UNIT_SEQS, 512, 0, 0, 0};
    cpt_mix *m = NULL;
    if (ns == 0 || cpt_mix_open(&m, &mc, &err)) {
        fprintf(stderr, "mix: %s\n", ns ? err.msg : "no sequences");
        return 1;
    }
    cpt_pack_seq q = {malloc(513 * 4), malloc(513 * 4), malloc(513 * 4), malloc(513), NULL, 0, 0};
    cpt_pack_source *srcs[1] = {src};
    int n = 200000;
    t0 = cpt_now();
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        cpt_mix_fetch(m, srcs, (uint64_t)i * 7919u, 0, &q, NULL, &err);
        sum += q.tokens[0];
    }
    dt = cpt_now() - t0;
    printf("fetch (seek + pack 513 tokens, keep_whole): %.2f us per sequence (%llu seqs in source, checksum %llu)\n",
           dt / n * 1e6, (unsigned long long)ns, (unsigned long long)sum);
    free(q.tokens);
    free(q.seg);
    free(q.pos);
    free(q.mask);
    cpt_mix_close(m);
    cpt_pack_source_close(src);
    return 0;
}
