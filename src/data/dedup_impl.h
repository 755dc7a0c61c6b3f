/* dedup_impl.h: private dedup entry points for prepare.c (key computed in parallel, inserted in order); not a public API. */
#ifndef CPT_DATA_DEDUP_IMPL_H
#define CPT_DATA_DEDUP_IMPL_H

#include "cpt/dedup.h"

/* cpt_dedup_exact_add with a key from cpt_dedup_exact_key: the key (NFC, hashing) is a
 * pure function of the text, so workers compute it and only this insertion is serial. */
int dedup_exact_add_key(cpt_dedup_exact *d, const uint64_t key[2], int *is_dup, cpt_err *err);

#endif
