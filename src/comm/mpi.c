/* mpi.c: the Open MPI communicator (cpt/comm.h), over a duplicate of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN. Sums are cpt's own, in rank order (see cpt/comm.h, "Determinism"):
 * bucketed all-to-all of shard pieces, a rank-order sum on the shard owner, then an
 * all-gather. Built only when CMake finds MPI (CPT_HAVE_MPI). */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/comm.h"

/* Bytes of one round of the reduce-scatter over all ranks (receive scratch per rank). */
#define CPT_COMM_BUCKET_BYTES ((size_t)8 << 20)

typedef struct {
    MPI_Comm comm;
    int started; /* 1: we called MPI_Init_thread, so we finalize */
    void *scratch; /* CPT_COMM_BUCKET_BYTES */
    int *scount, *sdispl, *rcount, *rdispl; /* [size] */
} mpi_impl;

static int mpi_fail(const cpt_comm *c, int mrc, const char *what, cpt_err *err) {
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(mrc, s, &len);
    return cpt_err_set(err, CPT_EIO, "%s failed on rank %d of %d: %s. HINT: another rank may have stopped; see its messages above",
                       what, c->rank, c->size, s);
}

static int check_n(const cpt_comm *c, size_t n, const char *what, cpt_err *err) {
    if (n > (size_t)INT_MAX)
        return cpt_err_set(err, CPT_EUNSUPPORTED, "%s of %zu elements on rank %d: more than INT_MAX elements per call is not supported", what,
                           n, c->rank);
    return CPT_OK;
}

/* out[cnt] = scratch piece 0 + piece 1 + ... + piece size-1 (rank order), pieces `piece`
 * elements apart; T is float or double. */
#define RANK_ORDER_SUM(name, T)                                                          \
    static void name(void *out, const void *scratch, size_t piece, int size, size_t cnt) { \
        T *o = out;                                                                      \
        const T *p = scratch;                                                            \
        memcpy(o, p, sizeof(T) * cnt);                                                   \
        for (int q = 1; q < size; q++)                                                   \
            for (size_t i = 0; i < cnt; i++) o[i] += p[(size_t)q * piece + i];           \
    }
RANK_ORDER_SUM(sum_f32, float)
RANK_ORDER_SUM(sum_f64, double)

/* recv[len_r] = rank-order sum of shard r of send[n] over ranks. recv may be send + off_r
 * (the in-place all-reduce): round j reads only offsets >= j of every shard and writes
 * offsets [j, j + piece) of ours after its all-to-all has completed. */
static int reduce_scatter(cpt_comm *c, const void *send, void *recv, size_t n, size_t esz, MPI_Datatype dt,
                          void (*sum)(void *, const void *, size_t, int, size_t), cpt_err *err) {
    mpi_impl *im = c->impl;
    int rc = check_n(c, n, "reduce-scatter", err);
    if (rc) return rc;
    int W = c->size, r = c->rank;
    size_t piece = CPT_COMM_BUCKET_BYTES / esz / (size_t)W;
    if (piece == 0) piece = 1;
    size_t off0, maxlen, offr, lenr;
    cpt_comm_shard(n, W, 0, &off0, &maxlen); /* shard 0 is the longest */
    cpt_comm_shard(n, W, r, &offr, &lenr);
    for (size_t j = 0; j < maxlen; j += piece) {
        for (int q = 0; q < W; q++) {
            size_t oq, lq;
            cpt_comm_shard(n, W, q, &oq, &lq);
            size_t cnt = lq > j ? (lq - j < piece ? lq - j : piece) : 0;
            im->scount[q] = (int)cnt;
            im->sdispl[q] = cnt ? (int)(oq + j) : 0;
        }
        size_t mine = lenr > j ? (lenr - j < piece ? lenr - j : piece) : 0;
        for (int q = 0; q < W; q++) {
            im->rcount[q] = (int)mine;
            im->rdispl[q] = (int)((size_t)q * piece);
        }
        int mrc = MPI_Alltoallv(send, im->scount, im->sdispl, dt, im->scratch, im->rcount, im->rdispl, dt, im->comm);
        if (mrc != MPI_SUCCESS) return mpi_fail(c, mrc, "MPI_Alltoallv (reduce-scatter)", err);
        if (mine) sum((char *)recv + j * esz, im->scratch, piece, W, mine);
    }
    return CPT_OK;
}

static int allgather(cpt_comm *c, void *buf, size_t n, MPI_Datatype dt, cpt_err *err) {
    mpi_impl *im = c->impl;
    int rc = check_n(c, n, "all-gather", err);
    if (rc) return rc;
    for (int q = 0; q < c->size; q++) {
        size_t oq, lq;
        cpt_comm_shard(n, c->size, q, &oq, &lq);
        im->rcount[q] = (int)lq;
        im->rdispl[q] = (int)oq;
    }
    int mrc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, im->rcount, im->rdispl, dt, im->comm);
    if (mrc != MPI_SUCCESS) return mpi_fail(c, mrc, "MPI_Allgatherv", err);
    return CPT_OK;
}

/* In-place all-reduce: our shard of the sum lands in place, then the all-gather. */
static int allreduce(cpt_comm *c, void *buf, size_t n, size_t esz, MPI_Datatype dt,
                     void (*sum)(void *, const void *, size_t, int, size_t), cpt_err *err) {
    size_t off, len;
    cpt_comm_shard(n, c->size, c->rank, &off, &len);
    int rc = reduce_scatter(c, buf, (char *)buf + off * esz, n, esz, dt, sum, err);
    return rc ? rc : allgather(c, buf, n, dt, err);
}

static int m_ar_f32(cpt_comm *c, float *buf, size_t n, cpt_err *err) { return allreduce(c, buf, n, sizeof(float), MPI_FLOAT, sum_f32, err); }
static int m_ar_f64(cpt_comm *c, double *buf, size_t n, cpt_err *err) { return allreduce(c, buf, n, sizeof(double), MPI_DOUBLE, sum_f64, err); }

static int m_rs_f32(cpt_comm *c, const float *send, float *recv, size_t n, cpt_err *err) {
    return reduce_scatter(c, send, recv, n, sizeof(float), MPI_FLOAT, sum_f32, err);
}

static int m_ag_f32(cpt_comm *c, float *buf, size_t n, cpt_err *err) { return allgather(c, buf, n, MPI_FLOAT, err); }

static int m_bcast(cpt_comm *c, void *buf, size_t bytes, int root, cpt_err *err) {
    mpi_impl *im = c->impl;
    if (root < 0 || root >= c->size) return cpt_err_set(err, CPT_EINVAL, "broadcast from rank %d of %d", root, c->size);
    for (size_t o = 0; o < bytes; o += (size_t)1 << 30) {
        size_t k = bytes - o < ((size_t)1 << 30) ? bytes - o : (size_t)1 << 30;
        int mrc = MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, root, im->comm);
        if (mrc != MPI_SUCCESS) return mpi_fail(c, mrc, "MPI_Bcast", err);
    }
    return CPT_OK;
}

static int m_barrier(cpt_comm *c, cpt_err *err) {
    mpi_impl *im = c->impl;
    int mrc = MPI_Barrier(im->comm);
    return mrc == MPI_SUCCESS ? CPT_OK : mpi_fail(c, mrc, "MPI_Barrier", err);
}

static int m_sendrecv(cpt_comm *c, const void *send, size_t send_bytes, int dest, void *recv, size_t recv_bytes, int src,
                      cpt_err *err) {
    mpi_impl *im = c->impl;
    if (dest < 0 || dest >= c->size || src < 0 || src >= c->size)
        return cpt_err_set(err, CPT_EINVAL, "sendrecv on rank %d: to %d / from %d of %d ranks", c->rank, dest, src, c->size);
    if (send_bytes > (size_t)INT_MAX || recv_bytes > (size_t)INT_MAX)
        return cpt_err_set(err, CPT_EUNSUPPORTED, "sendrecv of more than 2 GiB on rank %d", c->rank);
    int mrc = MPI_Sendrecv(send, (int)send_bytes, MPI_BYTE, dest, 17, recv, (int)recv_bytes, MPI_BYTE, src, 17, im->comm,
                           MPI_STATUS_IGNORE);
    return mrc == MPI_SUCCESS ? CPT_OK : mpi_fail(c, mrc, "MPI_Sendrecv", err);
}

static void m_abort(cpt_comm *c, int code, const char *msg) {
    fprintf(stderr, "cpt: rank %d of %d stops the job: %s\n", c->rank, c->size, msg && *msg ? msg : "(no message)");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1); /* not reached */
}

static void m_finalize(cpt_comm *c) {
    mpi_impl *im = c->impl;
    if (im) {
        MPI_Comm_free(&im->comm);
        free(im->scratch), free(im->scount), free(im->sdispl), free(im->rcount), free(im->rdispl);
        int fin = 0;
        MPI_Finalized(&fin);
        if (im->started && !fin) MPI_Finalize();
        free(im);
    }
    free(c);
}

int cpt_comm_mpi_create(cpt_comm **out, int *argc, char ***argv, cpt_err *err) {
    *out = NULL;
    int inited = 0, provided = 0, mrc;
    MPI_Initialized(&inited);
    if (!inited && (mrc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
        return cpt_err_set(err, CPT_EIO, "MPI_Init_thread failed (code %d). HINT: start cpt with mpirun -np N, or without a launcher", mrc);
    cpt_comm *c = calloc(1, sizeof *c);
    mpi_impl *im = calloc(1, sizeof *im);
    if (!c || !im) {
        free(c), free(im);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    im->started = !inited;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_dup(MPI_COMM_WORLD, &im->comm);
    MPI_Comm_set_errhandler(im->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(im->comm, &c->rank);
    MPI_Comm_size(im->comm, &c->size);
    c->name = "mpi";
    c->impl = im;
    c->allreduce_sum_f32 = m_ar_f32, c->allreduce_sum_f64 = m_ar_f64, c->reduce_scatter_sum_f32 = m_rs_f32;
    c->allgather_f32 = m_ag_f32, c->broadcast = m_bcast, c->barrier = m_barrier, c->sendrecv = m_sendrecv;
    c->abort = m_abort, c->finalize = m_finalize;
    size_t W = (size_t)c->size;
    im->scratch = malloc(CPT_COMM_BUCKET_BYTES);
    im->scount = calloc(W, sizeof(int)), im->sdispl = calloc(W, sizeof(int));
    im->rcount = calloc(W, sizeof(int)), im->rdispl = calloc(W, sizeof(int));
    if (!im->scratch || !im->scount || !im->sdispl || !im->rcount || !im->rdispl) {
        m_finalize(c);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for the communication scratch (%zu bytes)", CPT_COMM_BUCKET_BYTES);
    }
    *out = c;
    return CPT_OK;
}
