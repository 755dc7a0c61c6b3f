/* cpt/npy.h: NumPy .npy files of float32, for dumping tensors to Python and reading them back.
 *
 * Format (numpy.lib.format, version 1.0): the 6 bytes "\x93NUMPY", major 1, minor 0,
 * a little-endian u16 HEADER_LEN, then HEADER_LEN bytes of ASCII Python-dict text
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in '\n' so that 10 + HEADER_LEN is a multiple of 64,
 * then the elements in C (row-major) order, little-endian.
 *
 * The writer produces exactly that (atomically: tmp + fsync + rename). The reader is
 * strict and meant for tests and tools: it accepts versions 1.0, 2.0 (u32 HEADER_LEN)
 * and 3.0, only descr '<f4' with fortran_order False, and requires the file size to be
 * exactly header + numel * 4. Errors are CPT_EFORMAT (CPT_EUNSUPPORTED for a valid file
 * of another dtype or Fortran order) and name the file and the field.
 */
#ifndef CPT_NPY_H
#define CPT_NPY_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPT_NPY_MAX_DIMS 32

/* Write data[numel] (numel = product of shape[0..ndim-1]; ndim 0 is a scalar of one
 * element) as a version 1.0 '<f4' .npy file. ndim must be 0..CPT_NPY_MAX_DIMS and
 * every shape entry >= 0 (else CPT_EINVAL). */
int cpt_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                      cpt_err *err);

/* A float32 array read from a .npy file. data is owned (free with cpt_npy_free);
 * it is non-NULL even when numel is 0. */
typedef struct cpt_npy {
    float *data;     /* [numel] row-major */
    int ndim;
    int64_t shape[CPT_NPY_MAX_DIMS];
    uint64_t numel;
} cpt_npy;

int cpt_npy_read_f32(const char *path, cpt_npy *out, cpt_err *err);
void cpt_npy_free(cpt_npy *a);

#ifdef __cplusplus
}
#endif
#endif
