/* cpt/progress.h: live progress of a long job (training steps, data passes) on a FILE*.
 * The only part of the library that prints, and only to the stream it is given.
 *
 * Two modes, chosen from isatty(fileno(out)) unless forced:
 *  - TTY: one line redrawn in place ("\r" ... "\033[K") at most 5 times a second:
 *      train [=========>          ] 120/1000 step  12.0%  3.20 step/s  ETA 4:35  loss 2.345
 *    cut to the terminal width so it never wraps; cpt_progress_done draws the final
 *    state and ends the line with "\n".
 *  - lines (a log file, a pipe, CI): whole lines, one on the first update, then one
 *    every `seconds` (default 10) or every `every_n` units of progress, and a final one:
 *      train: 120/1000 step (12.0%), 3.20 step/s, ETA 4:35, loss 2.345
 * Rate = progress since the first update / time since the first update (so start-up
 * and a resumed run's earlier steps do not count); ETA = (total - done) / rate.
 * unit "B" shows sizes in decimal MB/GB and the rate in MB/s (data jobs).
 * total <= 0 means unknown: no bar, percentage or ETA.
 *
 * A cpt_progress is used by one thread. Every function accepts NULL and then does
 * nothing, so a failed cpt_progress_new (out of memory) only loses the display.
 */
#ifndef CPT_PROGRESS_H
#define CPT_PROGRESS_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_progress cpt_progress;

/* Start a progress display on `out` (borrowed; must outlive p). label and unit are
 * copied (NULL = ""). Returns NULL if out of memory. */
cpt_progress *cpt_progress_new(FILE *out, const char *label, double total, const char *unit);

/* Report `done` units so far; extra_fmt (printf format, may be NULL) appends e.g.
 * "loss %.3f | %.1fk tok/s". Draws only when the mode's interval has passed. */
void cpt_progress_update(cpt_progress *p, double done, const char *extra_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Draw the final state (TTY: then "\n"), and free p. */
void cpt_progress_done(cpt_progress *p);

/* ---- knobs, mostly for tests ---- */

enum { CPT_PROGRESS_AUTO = 0, CPT_PROGRESS_TTY = 1, CPT_PROGRESS_LINES = 2 };
void cpt_progress_set_mode(cpt_progress *p, int mode);

/* Lines mode: a line when `seconds` have passed (<= 0: never by time) or `every_n`
 * units of progress were made (<= 0: never by count) since the last line. */
void cpt_progress_set_line_every(cpt_progress *p, double seconds, double every_n);

/* Replace the monotonic clock (seconds) by now(ctx); also restarts the elapsed time. */
void cpt_progress_set_clock(cpt_progress *p, double (*now)(void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* CPT_PROGRESS_H */
