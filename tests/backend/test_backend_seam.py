"""The backend table is the only path to compute (issue 9): fails if a file in src/ outside
src/backend calls cpt_backend_cpu(), or if src/model, src/optim or src/train contain an
OpenMP pragma (their parameter loops belong in backend entries, src/ops + src/backend),
or allocate with aligned_alloc / cpt_alloc_aligned (the buffers kernels touch, parameters,
gradients, moments, activations, EWC state, come from the backend's alloc)."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[2]
bad = []
for f in sorted((root / "src").rglob("*.[ch]")):
    rel = f.relative_to(root).as_posix()
    text = f.read_text(encoding="utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        if not rel.startswith("src/backend/") and re.search(r"\bcpt_backend_cpu\s*\(", line):
            bad.append(f"{rel}:{n}: calls cpt_backend_cpu(); use the model's backend (m->be)")
        if re.match(r"src/(model|optim|train)/", rel) and re.match(r"\s*#\s*pragma\s+omp\b", line):
            bad.append(f"{rel}:{n}: OpenMP loop outside the backend; make it a backend entry")
        if re.match(r"src/(model|optim|train)/", rel) and re.search(r"\b(aligned_alloc|cpt_alloc_aligned)\s*\(", line):
            bad.append(f"{rel}:{n}: compute memory outside the backend; use m->be->alloc (parameters, gradients, "
                       "moments, activations, EWC state are backend memory)")
# The check must be able to fail: it has to see the files it polices.
if not (root / "src/model/forward.c").exists() or not (root / "src/backend/cpu.c").exists():
    bad.append("source tree not found next to the test")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("backend seam: no direct cpt_backend_cpu() calls, OpenMP pragmas or aligned allocations outside src/backend")
