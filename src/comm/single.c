/* single.c: the single-process communicator (cpt/comm.h): rank 0 of 1, every collective
 * the identity. Always built, so everything works with no MPI at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/comm.h"

static int s_ar_f32(cpt_comm *c, float *buf, size_t n, cpt_err *err) { return CPT_OK; }
static int s_ar_f64(cpt_comm *c, double *buf, size_t n, cpt_err *err) { return CPT_OK; }
static int s_rs_f32(cpt_comm *c, const float *send, float *recv, size_t n, cpt_err *err) {
    if (n && recv != send) memcpy(recv, send, sizeof(float) * n);
    return CPT_OK;
}
static int s_ag_f32(cpt_comm *c, float *buf, size_t n, cpt_err *err) { return CPT_OK; }
static int s_bcast(cpt_comm *c, void *buf, size_t bytes, int root, cpt_err *err) {
    if (root != 0) return cpt_err_set(err, CPT_EINVAL, "broadcast from rank %d in a single-process run", root);
    return CPT_OK;
}
static int s_barrier(cpt_comm *c, cpt_err *err) { return CPT_OK; }
static int s_sendrecv(cpt_comm *c, const void *send, size_t send_bytes, int dest, void *recv, size_t recv_bytes, int src,
                      cpt_err *err) {
    if (dest != 0 || src != 0 || send_bytes != recv_bytes)
        return cpt_err_set(err, CPT_EINVAL, "sendrecv to rank %d / from rank %d (%zu / %zu bytes) in a single-process run", dest, src,
                           send_bytes, recv_bytes);
    if (send_bytes && send != recv) memmove(recv, send, send_bytes);
    return CPT_OK;
}
static void s_abort(cpt_comm *c, int code, const char *msg) {
    if (msg && *msg) fprintf(stderr, "%s\n", msg);
    fflush(stderr);
    exit(code ? code : 1);
}
static void s_finalize(cpt_comm *c) {}

cpt_comm *cpt_comm_single(void) {
    static cpt_comm one = {"single", 0, 1, NULL, s_ar_f32, s_ar_f64, s_rs_f32, s_ag_f32, s_bcast, s_barrier, s_sendrecv,
                           s_abort, s_finalize};
    return &one;
}
