/* test_comm.c: the communication layer (cpt/comm.h). Run by CTest as one process (the
 * single communicator) and by tests/comm/test_comm_mpi.py under mpirun -np 1..4.
 * Every rank builds every rank's input from a hash of (rank, index) with magnitudes
 * spread over 2^-10..2^10, so the order of the additions changes the float result; the
 * oracle is the specification written out serially: x_0 + x_1 + ... + x_{N-1} in rank
 * order, which must match bit for bit, and be bit-identical on every rank (checked by
 * broadcasting rank 0's result). Sizes cover empty, fewer elements than ranks, and more
 * than one 8 MiB bucket round. `--abort-rank R`: rank R calls abort() while the others
 * wait in a barrier (the job must end non-zero; the Python test times it). */
#include <stdint.h>

#include "cpt/comm.h"
#include "testutil.h"

static float val(int r, size_t i) {
    uint64_t h = cpt_mix64(((uint64_t)r << 40) ^ (uint64_t)i ^ 0x9e3779b97f4a7c15ull);
    double u = (double)(h >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    return (float)ldexp(u, (int)((h & 31) % 21) - 10);
}

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Rank 0's value is the reference: 1 when every rank's equals it. */
static int same_everywhere(cpt_comm *c, uint64_t h) {
    uint64_t h0 = h;
    cpt_err e = {0};
    if (c->broadcast(c, &h0, sizeof h0, 0, &e)) return 0;
    double bad = h0 != h, tot = bad;
    if (c->allreduce_sum_f64(c, &tot, 1, &e)) return 0;
    return tot == 0;
}

int main(int argc, char **argv) {
    cpt_comm *c = NULL;
    cpt_err err = {0};
    int rc = cpt_comm_init(&c, &argc, &argv, &err);
    if (rc) {
        fprintf(stderr, "FAIL cpt_comm_init: %s\n", err.msg);
        return 1;
    }
    int W = c->size, R = c->rank;
    if (argc == 3 && !strcmp(argv[1], "--abort-rank")) {
        if (R == atoi(argv[2])) c->abort(c, 3, "test_comm: abort requested");
        c->barrier(c, &err); /* the others wait here until the launcher ends them */
        fprintf(stderr, "rank %d: barrier returned: %s\n", R, err.msg);
        cpt_comm_finalize(c);
        return 0;
    }
    CHECK(W >= 1 && R >= 0 && R < W);
    CHECK(!strcmp(c->name, cpt_comm_launched() ? (W >= 1 ? c->name : "") : "single"));
    size_t sizes[] = {0, 1, 3, 7, 1000, 5u * 1000 * 1000 + 3};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *x = malloc(sizeof(float) * (n + 1)), *ref = malloc(sizeof(float) * (n + 1)), *rs = malloc(sizeof(float) * (n + 1));
        double *xd = malloc(sizeof(double) * (n + 1)), *refd = malloc(sizeof(double) * (n + 1));
        CHECK(x && ref && rs && xd && refd);
        for (size_t i = 0; i < n; i++) {
            x[i] = val(R, i), xd[i] = (double)val(R, i) * 1.000000123;
            ref[i] = val(0, i), refd[i] = (double)val(0, i) * 1.000000123;
            for (int q = 1; q < W; q++) ref[i] += val(q, i), refd[i] += (double)val(q, i) * 1.000000123;
        }
        /* reduce-scatter first (x is still this rank's input) */
        size_t off, len;
        cpt_comm_shard(n, W, R, &off, &len);
        CHECK_OK(c->reduce_scatter_sum_f32(c, x, rs, n, &err), &err);
        CHECKF(len == 0 || !memcmp(rs, ref + off, sizeof(float) * len), "reduce-scatter n=%zu shard %zu+%zu", n, off, len);
        /* all-gather: only our shard is valid on entry */
        float *g = calloc(n + 1, sizeof(float));
        CHECK(g != NULL);
        if (len) memcpy(g + off, ref + off, sizeof(float) * len);
        CHECK_OK(c->allgather_f32(c, g, n, &err), &err);
        CHECKF(n == 0 || !memcmp(g, ref, sizeof(float) * n), "all-gather n=%zu", n);
        CHECK_OK(c->allreduce_sum_f32(c, x, n, &err), &err);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += memcmp(&x[i], &ref[i], sizeof(float)) != 0;
        CHECKF(bad == 0, "all-reduce f32 n=%zu: %zu elements differ from the rank-order sum", n, bad);
        CHECK_OK(c->allreduce_sum_f64(c, xd, n, &err), &err);
        CHECKF(n == 0 || !memcmp(xd, refd, sizeof(double) * n), "all-reduce f64 n=%zu", n);
        CHECKF(same_everywhere(c, hash_bytes(x, sizeof(float) * n) ^ hash_bytes(xd, sizeof(double) * n)),
               "all-reduce n=%zu not bit-identical on every rank", n);
        free(x), free(ref), free(rs), free(xd), free(refd), free(g);
    }
    /* the sum really depends on the order: a check that could not fail otherwise */
    if (W >= 3) {
        int differ = 0;
        for (size_t i = 0; i < 1000 && !differ; i++) {
            float a = val(0, i), b = val(W - 1, i);
            for (int q = 1; q < W; q++) a += val(q, i);
            for (int q = W - 2; q >= 0; q--) b += val(q, i);
            differ = memcmp(&a, &b, sizeof a) != 0;
        }
        CHECKF(differ, "inputs do not distinguish summation orders");
    }
    /* broadcast from the last rank */
    char msg[32];
    snprintf(msg, sizeof msg, "from rank %d", R);
    CHECK_OK(c->broadcast(c, msg, sizeof msg, W - 1, &err), &err);
    char want[32];
    snprintf(want, sizeof want, "from rank %d", W - 1);
    CHECKF(!strcmp(msg, want), "broadcast: '%s'", msg);
    /* ring: send our rank to the next, receive the previous one's */
    int sendv = 1000 + R, recv = -1;
    CHECK_OK(c->sendrecv(c, &sendv, sizeof sendv, (R + 1) % W, &recv, sizeof recv, (R + W - 1) % W, &err), &err);
    CHECKF(recv == 1000 + (R + W - 1) % W, "sendrecv ring: got %d", recv);
    /* errors name the problem */
    cpt_err e2 = {0};
    CHECK(c->broadcast(c, msg, 1, W, &e2) != CPT_OK && strstr(e2.msg, "broadcast"));
    CHECK_OK(c->barrier(c, &err), &err);
    /* summary on every rank; the Python test reads rank 0's */
    double f = tu_fail;
    c->allreduce_sum_f64(c, &f, 1, &err);
    fprintf(stderr, "rank %d of %d (%s): %d checks, %d failed here, %g failed over all ranks\n", R, W, c->name, tu_checks, tu_fail, f);
    cpt_comm_finalize(c);
    return f > 0 ? 1 : 0;
}
