/* test_stage_stream.c: the data position of progressive-length stages is a token offset.
 * One corpus is prepared into shards (byte-level tokenizer); stage 0 reads it with
 * sequences of 32 tokens, stage 1 with 64 from the token where stage 0 stopped
 * (cpt_mixdata_position), stage 2 with 48. The inputs of all the sequences, concatenated
 * in global-sample order, must be exactly the stream of the shards' tokens read directly
 * with the shard reader (cpt_shard_tokens, no packing or mixture code): nothing skipped,
 * nothing repeated, in order. A source with less than one sequence left wraps to a new
 * pass from token 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/prepare.h"
#include "cpt/shard.h"
#include "cpt/tokenizer.h"
#include "cpt/traindata.h"
#include "testutil.h"

int main(void) {
    const char *tmp = tu_env("CPT_TMP");
    char base[512], tokdir[600], txt[600], dir[600];
    snprintf(base, sizeof base, "%s/test_stage_stream_%d", tmp ? tmp : "/tmp", (int)getpid());
    snprintf(tokdir, sizeof tokdir, "%s/tok", base);
    snprintf(txt, sizeof txt, "%s/c.txt", base);
    snprintf(dir, sizeof dir, "%s/src", base);
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(base, &e), &e);
    CHECK_OK(cpt_tok_write_bytelevel(tokdir, &e), &e);
    FILE *f = fopen(txt, "w");
    unsigned seed = 7;
    for (int d = 0; d < 120; d++) { /* documents of 10..400 bytes: many span several sequences */
        seed = seed * 1103515245u + 12345u;
        int n = 10 + (int)((seed >> 16) % 390);
        for (int c = 0; c < n; c++) {
            seed = seed * 1103515245u + 12345u;
            fputc("abcdefgh ij"[(seed >> 16) % 11], f);
        }
        fputs(".\n\n", f);
    }
    fclose(f);
    cpt_prepare_cfg c;
    cpt_prepare_cfg_default(&c);
    const char *in[] = {txt};
    c.inputs = in, c.n_inputs = 1, c.tokenizer = tokdir, c.out_dir = dir;
    c.filters = 0, c.exact_dedup = 0, c.near_dedup = 0, c.val_fraction = 0;
    c.txt_blank = 1;
    cpt_prepare_stats ps;
    CHECK_OK(cpt_prepare_run(&c, &ps, &e), &e);

    /* The stream, read with the shard reader alone. */
    char **paths = NULL;
    size_t np = 0;
    CHECK_OK(cpt_list_shards(dir, "train", &paths, &np, &e), &e);
    uint64_t ntok = 0;
    uint32_t *stream = NULL;
    for (size_t i = 0; i < np; i++) {
        cpt_shard *s = NULL;
        CHECK_OK(cpt_shard_open(&s, paths[i], &e), &e);
        uint64_t n = cpt_shard_n_tokens(s);
        stream = realloc(stream, sizeof *stream * (ntok + n));
        cpt_shard_tokens(s, 0, n, stream + ntok);
        ntok += n;
        cpt_shard_close(s);
    }
    cpt_free_list(paths, np);
    CHECKF(ntok > 6000, "corpus of %llu tokens", (unsigned long long)ntok);

    const char *names[] = {"c"}, *dirs[] = {dir};
    double w[] = {1.0};
    const double *ws[] = {w};
    const int T[] = {32, 64, 48};
    const uint64_t G[] = {4, 2, 3}, steps[] = {10, 15, 12};
    uint64_t pos[1] = {0}, at = 0;
    for (int s = 0; s < 3; s++) {
        uint64_t end = steps[s];
        cpt_mixdata_cfg mc = {1, names, dirs, NULL, 1, ws, &end, 5, T[s], G[s], 0, 0, NULL, NULL, pos, 1};
        cpt_mixdata *md = NULL;
        CHECK_OK(cpt_mixdata_open(&md, &mc, &e), &e);
        if (!md) break;
        CHECKF(cpt_mixdata_start(md, 0) == at, "stage %d starts at token %llu, expected %llu", s,
               (unsigned long long)cpt_mixdata_start(md, 0), (unsigned long long)at);
        cpt_data_iface di = cpt_mixdata_iface(md);
        int32_t *b = malloc(sizeof(int32_t) * 4 * (size_t)T[s]);
        int bad = 0;
        for (uint64_t g = 0; g < steps[s] * G[s]; g++) {
            int src = -1;
            CHECK_OK(di.sequence(di.ctx, (long long)g, T[s], b, b + T[s], b + 2 * T[s], b + 3 * T[s], &src, &e), &e);
            for (int t = 0; t < T[s]; t++) bad += at + (uint64_t)t >= ntok || (uint32_t)b[t] != stream[at + t];
            /* the targets are the next stream token inside a document */
            for (int t = 0; t < T[s]; t++) bad += b[T[s] + t] >= 0 && (uint32_t)b[T[s] + t] != stream[at + t + 1];
            at += (uint64_t)T[s];
        }
        CHECKF(bad == 0, "stage %d: %d tokens differ from the shard stream", s, bad);
        cpt_mixdata_position(md, steps[s] * G[s], pos);
        CHECKF(pos[0] == at, "stage %d ends at token %llu, expected %llu", s, (unsigned long long)pos[0], (unsigned long long)at);
        free(b);
        cpt_mixdata_close(md);
    }
    /* Fewer than one sequence left: the next stage starts a new pass at token 0. */
    {
        uint64_t end = 1, late[1] = {ntok - 10};
        cpt_mixdata_cfg mc = {1, names, dirs, NULL, 1, ws, &end, 5, 32, 1, 0, 0, NULL, NULL, late, 1};
        cpt_mixdata *md = NULL;
        CHECK_OK(cpt_mixdata_open(&md, &mc, &e), &e);
        CHECK(md && cpt_mixdata_start(md, 0) == 0);
        cpt_mixdata_close(md);
    }
    free(stream);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
    TEST_END();
}
