/* cpt/rope.h: RoPE inverse frequencies and attention factor for every rope_scaling type
 * of transformers 4.51.3 (default, linear, dynamic, yarn, llama3, longrope) plus
 * partial_rotary_factor, bit-faithful to its float32 arithmetic (methods.md 1.1-1.7,
 * transformers/modeling_rope_utils.py). Stateless: the per-forward state machine
 * (dynamic_rope_update) lives in cpt_model_rope_update (cpt/model.h).
 *
 * Precision: transformers computes these in float32 torch ops; cpt repeats each op in
 * float32 in the same order (a / b, 1 / x, pow in float, python-double scalars rounded to
 * float where torch rounds them), and the scalar parts (yarn's correction range and
 * attention factor, dynamic NTK's base at init) in double as Python does. The only
 * differences left are libm's powf/cosf/sinf versus torch's vectorized (SLEEF) ones, about
 * 1 ulp (tests/model/test_rope_parity.py measures them). */
#ifndef CPT_ROPE_H
#define CPT_ROPE_H

#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Name of a type as config.json spells it ("default", "linear", ...). */
const char *cpt_rope_type_name(cpt_rope_type t);

/* transformers' ROPE_INIT_FUNCTIONS[type](config, seq_len): writes inv_freq[rot/2]
 * (rot = cpt_config_rot_dim) and *attn_factor (cos and sin are multiplied by it).
 * seq_len 0 means "None" (the frequencies transformers builds at init); it matters for
 * dynamic (NTK base for seq_len when seq_len > max_position_embeddings) and longrope
 * (long_factor when seq_len > the original context). Errors (bad combinations that
 * transformers would crash on) name the field. */
int cpt_rope_init(const cpt_config *cfg, long long seq_len, float *inv_freq, float *attn_factor, cpt_err *err);

/* The original (pre-extension) context longrope compares seq_len with: the top-level
 * original_max_position_embeddings if present, else max_position_embeddings. */
long long cpt_rope_longrope_original(const cpt_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
