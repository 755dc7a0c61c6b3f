/* model-impl.h: private helpers shared by the model's source files. */
#ifndef CPT_MODEL_IMPL_H
#define CPT_MODEL_IMPL_H

#include "cpt/model.h"
#include "cpt/ops.h"

/* Like cpt_model_view, but tensors flagged in `frozen` get NULL pointers. */
int cpt_model_view_masked(const cpt_model *m, float *base, const uint8_t *frozen, cpt_view *v, cpt_err *err);

#endif
