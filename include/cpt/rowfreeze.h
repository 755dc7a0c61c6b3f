/* cpt/rowfreeze.h: train only some rows of embed_tokens / lm_head (the new tokens of a
 * vocabulary extension, `training.train_only: new_embeddings`).
 *
 * Rows [lo, hi) are trained; the others keep their values exactly: their gradient rows are
 * zeroed after the data-parallel reduction (so the clip norm and the AdamW moments see
 * only the trained rows), and after each update they are written back from a host copy
 * taken at the first step (AdamW's weight decay and any moment left from an earlier stage
 * would move them otherwise). The tensors other than embed_tokens / lm_head are frozen
 * through the ordinary per-tensor mask. Memory goes through the model's backend. */
#ifndef CPT_ROWFREEZE_H
#define CPT_ROWFREEZE_H

#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_rowfreeze cpt_rowfreeze;

/* lo < hi <= vocab_size. */
int cpt_rowfreeze_create(cpt_rowfreeze **out, const cpt_model *m, int lo, int hi, cpt_err *err);
void cpt_rowfreeze_free(cpt_rowfreeze *r);
/* Zero the gradient rows outside [lo, hi) of embed_tokens and lm_head (grads: m's layout;
 * m is the model the freezer was made for, or a trained-tensor view of it covering those
 * tensors, cpt_model_view_range). The first call also snapshots the parameter rows outside [lo, hi). */
int cpt_rowfreeze_grads(cpt_rowfreeze *r, const cpt_model *m, float *grads, cpt_err *err);
/* After the optimizer step: write the snapshot back. */
void cpt_rowfreeze_restore(const cpt_rowfreeze *r, cpt_model *m);
/* A per-tensor frozen mask (malloc'ed, [n_tensors]) with every tensor frozen but
 * embed_tokens and lm_head; NULL when out of memory. */
uint8_t *cpt_rowfreeze_mask_embeddings_only(const cpt_model *m);
/* The new-token range a `cpt vocab extend` output records in DIR/vocab_extend.json
 * ({"first_new_id": lo, "n_new": n}). Errors name the file with a HINT. */
int cpt_rowfreeze_range_from_dir(const char *dir, int *lo, int *hi, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
