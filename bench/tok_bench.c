/* tok_bench.c: encode throughput of cpt's tokenizer. Used by bench/tok_bench.py.
 *   tok_bench TOKENIZER TEXTFILE THREADS [REPEAT]
 * Splits TEXTFILE into documents at blank lines, encodes them all with
 * cpt_tok_encode_batch, and prints one JSON line: bytes, tokens, the first call's
 * seconds (cold: pre-token caches empty) and the best over REPEAT calls (warm: the
 * tokenizer's scratch pool keeps each thread's cache between calls), MB/s of both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpt/common.h"
#include "cpt/fileio.h"
#include "cpt/tokenizer.h"

/* CPU seconds of all threads of the process: with fewer free cores than threads
 * the wall clock cannot show scaling, but the total work done still shows the
 * overhead (contention, false sharing, cold caches) that threading adds. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tok_bench TOKENIZER TEXTFILE THREADS [REPEAT]\n");
        return 2;
    }
    int threads = atoi(argv[3]), repeat = argc > 4 ? atoi(argv[4]) : 3;
    cpt_err err = {0};
    cpt_tok *t = NULL;
    char *text = NULL;
    size_t size = 0;
    if (cpt_tok_load(&t, argv[1], &err) || cpt_read_file(argv[2], &text, &size, &err)) {
        fprintf(stderr, "tok_bench: %s\n", err.msg);
        return 1;
    }
    size_t cap = 1024, n = 0;
    const char **docs = malloc(cap * sizeof *docs);
    size_t *lens = malloc(cap * sizeof *lens);
    for (size_t i = 0; i < size;) {
        const char *e = strstr(text + i, "\n\n");
        size_t j = e ? (size_t)(e - text) + 2 : size;
        if (n == cap) {
            cap *= 2;
            docs = realloc(docs, cap * sizeof *docs);
            lens = realloc(lens, cap * sizeof *lens);
        }
        docs[n] = text + i;
        lens[n++] = j - i;
        i = j;
    }
    int32_t **ids = calloc(n, sizeof *ids);
    size_t *nids = calloc(n, sizeof *nids), tokens = 0;
    double best = 1e30, cold = 0, best_cpu = 1e30;
    for (int r = 0; r < repeat; r++) {
        double t0 = cpt_now(), c0 = cpu_now();
        if (cpt_tok_encode_batch(t, docs, lens, n, 0, threads, ids, nids, NULL, &err)) {
            fprintf(stderr, "tok_bench: %s\n", err.msg);
            return 1;
        }
        double dt = cpt_now() - t0, dc = cpu_now() - c0;
        if (r > 0 || repeat == 1)
            if (dc < best_cpu) best_cpu = dc;
        if (r == 0) cold = dt;
        if (dt < best) best = dt;
        tokens = 0;
        for (size_t i = 0; i < n; i++) {
            tokens += nids[i];
            free(ids[i]);
        }
    }
    printf("{\"docs\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"mb_per_s\": %.3f, "
           "\"cold_seconds\": %.6f, \"cold_mb_per_s\": %.3f, \"cpu_seconds\": %.6f}\n",
           n, size, tokens, best, (double)size / best / 1e6, cold, (double)size / cold / 1e6, best_cpu);
    free(ids), free(nids), free(docs), free(lens), free(text);
    cpt_tok_free(t);
    return 0;
}
