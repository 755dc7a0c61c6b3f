"""mpiutil.py: launching cpt under Open MPI in the tests (tests/comm, tests/train/test_dp.py).

mpirun comes from CPT_MPIEXEC (set by tests/CMakeLists.txt when CMake found MPI), else PATH.
Missing: the test skips, which under CI=true is a failure (skiputil.skip). Flags: --oversubscribe
(more ranks than cores on a 2-core machine), and the two variables that let Open MPI run as
root (CI containers). Every rank gets OMP_NUM_THREADS=1 unless the caller says otherwise.
Not a test itself; import it after putting tests/ on sys.path.
"""
import os
import shutil

from skiputil import skip


def mpirun():
    exe = os.environ.get("CPT_MPIEXEC") or shutil.which("mpirun")
    if not exe or not os.path.exists(exe):
        skip("mpirun not found (CMake found no MPI). HINT: bash scripts/install-build-deps.sh installs openmpi-bin and libopenmpi-dev")
    return exe


def env(threads=1, **extra):
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS=str(threads))
    # Open MPI's own allocations at MPI_Init are not freed at exit: not ours to report
    # under the sanitizer build.
    e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    e.update(extra)
    return e


def cmd(np, argv):
    return [mpirun(), "--oversubscribe", "-np", str(np)] + list(argv)
