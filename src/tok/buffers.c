/* buffers.c: the growable byte buffer, string list and id vector the tokenizer
 * stages share. No tokenizer logic here. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

int tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->cap - b->n >= extra) return 0;
    size_t need;
    if (!cpt_add_size(b->n, extra, &need)) return CPT_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return CPT_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return CPT_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_put(tok_buf *b, const void *p, size_t n) {
    if (!n) return 0;
    if (tok_buf_reserve(b, n)) return CPT_ENOMEM;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int tok_list_push_span(tok_list *l, size_t off, size_t len, int32_t id, int at_start) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        tok_span *v = realloc(l->v, cap * sizeof *v);
        if (!v) return CPT_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (tok_span){off, len, id, (uint8_t)(at_start != 0)};
    return 0;
}

int tok_list_push(tok_list *l, const char *s, size_t len, int32_t id, int at_start) {
    size_t off = l->text.n;
    if (tok_buf_put(&l->text, s, len)) return CPT_ENOMEM;
    return tok_list_push_span(l, off, len, id, at_start);
}

void tok_list_clear(tok_list *l) {
    l->n = 0;
    l->text.n = 0;
}

void tok_list_free(tok_list *l) {
    tok_buf_free(&l->text);
    free(l->v);
    memset(l, 0, sizeof *l);
}

int tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return CPT_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}
