/* comm.c: picking the communicator (cpt/comm.h): MPI when a launcher started us. */
#include <stdlib.h>

#include "cpt/comm.h"

int cpt_comm_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

int cpt_comm_init(cpt_comm **out, int *argc, char ***argv, cpt_err *err) {
    *out = cpt_comm_single();
    if (!cpt_comm_launched()) return CPT_OK;
#ifdef CPT_HAVE_MPI
    return cpt_comm_mpi_create(out, argc, argv, err);
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (n && atoi(n) <= 1) return CPT_OK; /* a launcher with one process: nothing to talk to */
    return cpt_err_set(err, CPT_EUNSUPPORTED,
                       "started by an MPI launcher (%s processes) but this cpt was built without MPI. "
                       "HINT: install openmpi-bin and libopenmpi-dev (bash scripts/install-build-deps.sh) and rebuild",
                       n ? n : "several");
#endif
}

void cpt_comm_finalize(cpt_comm *c) {
    if (c && c->finalize) c->finalize(c);
}
