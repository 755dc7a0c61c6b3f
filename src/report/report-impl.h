/* report-impl.h: private helpers shared by src/report/ files (protobuf/TFRecord
 * encoding, number formatting, growable strings). Not a public API. */
#ifndef CPT_REPORT_IMPL_H
#define CPT_REPORT_IMPL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cpt/common.h"

/* ---- protobuf wire format (proto3, only what Event needs) ---- */

/* Append the base-128 varint of v to out (at most 10 bytes); returns bytes written. */
size_t cpt_pb_varint(uint8_t *out, uint64_t v);

/* A growable byte buffer. Functions return 0, or CPT_ENOMEM (and then the buffer is
 * sticky-failed: later appends are no-ops and return CPT_ENOMEM too). */
typedef struct cpt_buf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} cpt_buf;

int cpt_buf_put(cpt_buf *b, const void *data, size_t n);
int cpt_buf_printf(cpt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cpt_buf_free(cpt_buf *b);

/* Field encoders: key = (field << 3) | wire type. */
int cpt_pb_put_varint_field(cpt_buf *b, unsigned field, uint64_t v);
int cpt_pb_put_double_field(cpt_buf *b, unsigned field, double v);  /* wire type 1 */
int cpt_pb_put_float_field(cpt_buf *b, unsigned field, float v);    /* wire type 5 */
int cpt_pb_put_bytes_field(cpt_buf *b, unsigned field, const void *p, size_t n); /* type 2 */

/* Frame one TFRecord (length, masked crc, data, masked crc) into out. */
int cpt_tfrecord_frame(cpt_buf *out, const void *data, size_t n);

/* ---- TensorBoard event file writer ---- */

typedef struct cpt_tbw cpt_tbw;

/* Create a new event file in dir ("events.out.tfevents.<ts>.<host>", a ".<k>" suffix
 * if that name exists) and write the file_version record. wall_time is unix seconds. */
int cpt_tbw_open(cpt_tbw **w, const char *dir, double wall_time, cpt_err *err);
/* One Event with a Summary of n simple_value scalars tagged "<prefix>/<tags[i]>". */
int cpt_tbw_scalars(cpt_tbw *w, double wall_time, long long step, const char *prefix,
                    const char *const *tags, const double *vals, int n, cpt_err *err);
/* One Event{session_log: START} at step (TensorBoard purges steps >= it). */
int cpt_tbw_session_start(cpt_tbw *w, double wall_time, long long step, cpt_err *err);
const char *cpt_tbw_path(const cpt_tbw *w);
void cpt_tbw_close(cpt_tbw *w);

/* ---- formatting ---- */

/* Shortest "%.{15..17}g" rendering of a finite v that strtod reads back exactly. */
void cpt_fmt_double(char *out, size_t cap, double v);

/* Unix time now, fractional seconds (CLOCK_REALTIME). */
double cpt_unix_now(void);

#endif
