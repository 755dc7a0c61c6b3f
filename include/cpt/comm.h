/* cpt/comm.h: the communication layer, the only path to other processes (architecture
 * seam 2). A small table like the backend's: data parallelism, ZeRO-1 and (later) ring
 * attention are written against it, never against MPI calls.
 *
 * Implementations: the single-process communicator (src/comm/single.c, always built:
 * every collective is the identity) and Open MPI (src/comm/mpi.c, built when CMake finds
 * MPI: CPT_HAVE_MPI). cpt_comm_init picks MPI when the process was started by mpirun,
 * mpiexec or srun (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment), the
 * single communicator otherwise.
 *
 * Determinism. Every sum is computed in rank order, 0 + 1 + ... + (N-1), by cpt itself:
 * the buffer is cut into N contiguous shards (cpt_comm_shard); in buckets, every rank
 * sends shard q's piece to rank q (all-to-all), rank q adds the N pieces in rank order,
 * and an all-gather gives everyone the result. So the all-reduce result is bit-identical
 * on every rank and does not depend on which algorithm MPI picks (MPI_Allreduce
 * guarantees neither). Volume: the same as a ring all-reduce (each rank sends and
 * receives 2 (N-1)/N of the buffer).
 *
 * Errors. Functions return CPT_OK or a negative code with `err` naming the operation, the
 * rank and MPI's message. MPI runs with MPI_ERRORS_RETURN; a rank that fails should call
 * abort(), which ends the whole job (MPI_Abort) within seconds.
 *
 * Buffers are host memory (the CPU backend's). Scratch for the buckets is allocated once
 * at init (no malloc per step). */
#ifndef CPT_COMM_H
#define CPT_COMM_H

#include <stddef.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_comm cpt_comm;
struct cpt_comm {
    const char *name; /* "single" | "mpi" */
    int rank, size;
    void *impl;
    /* In place: buf[n] becomes the element-wise sum over ranks (rank order). */
    int (*allreduce_sum_f32)(cpt_comm *c, float *buf, size_t n, cpt_err *err);
    int (*allreduce_sum_f64)(cpt_comm *c, double *buf, size_t n, cpt_err *err);
    /* send[n] on every rank; recv[len] receives this rank's shard (cpt_comm_shard(n)) of
     * the sum over ranks (rank order). recv must not overlap send, except recv = send + off
     * (this rank's shard, in place: ZeRO-1 and the all-reduce use that). */
    int (*reduce_scatter_sum_f32)(cpt_comm *c, const float *send, float *recv, size_t n, cpt_err *err);
    /* In place: each rank's shard of buf[n] (cpt_comm_shard) is valid on entry; on return
     * every rank holds all of buf. */
    int (*allgather_f32)(cpt_comm *c, float *buf, size_t n, cpt_err *err);
    int (*broadcast)(cpt_comm *c, void *buf, size_t bytes, int root, cpt_err *err);
    int (*barrier)(cpt_comm *c, cpt_err *err);
    /* Send send[send_bytes] to rank dest while receiving recv[recv_bytes] from rank src
     * (ring attention). */
    int (*sendrecv)(cpt_comm *c, const void *send, size_t send_bytes, int dest, void *recv, size_t recv_bytes, int src,
                    cpt_err *err);
    /* End the whole job with exit code `code`, printing msg (with the rank) on stderr. */
    void (*abort)(cpt_comm *c, int code, const char *msg);
    void (*finalize)(cpt_comm *c);
};

/* Pick and start the communicator (see above); argc/argv may be NULL. Launched under a
 * launcher in a build without MPI: CPT_EUNSUPPORTED with a HINT. */
int cpt_comm_init(cpt_comm **out, int *argc, char ***argv, cpt_err *err);
/* 1 when the environment says this process was started by mpirun / mpiexec / srun. */
int cpt_comm_launched(void);
/* Shut down and free (NULL is a no-op). */
void cpt_comm_finalize(cpt_comm *c);

/* The single-process communicator (a static object: finalize is a no-op). */
cpt_comm *cpt_comm_single(void);
#ifdef CPT_HAVE_MPI
/* The MPI communicator over MPI_COMM_WORLD (calls MPI_Init_thread if MPI is not started). */
int cpt_comm_mpi_create(cpt_comm **out, int *argc, char ***argv, cpt_err *err);
#endif

/* Shard r of a buffer of n elements cut into `size` contiguous pieces: the first n % size
 * shards have one element more. */
static inline void cpt_comm_shard(size_t n, int size, int r, size_t *off, size_t *len) {
    size_t q = n / (size_t)size, m = n % (size_t)size, R = (size_t)r;
    *off = R * q + (R < m ? R : m);
    *len = q + (R < m ? 1 : 0);
}

#ifdef __cplusplus
}
#endif
#endif
