/* test_progress.c: progress display. TTY mode through a real pseudo-terminal (isatty
 * detection, \r redraws throttled to 5/s, cut to the terminal width, final newline);
 * lines mode into a memory stream (whole lines by time and by count); exact text and
 * ETA arithmetic on an injected fake clock. */
#define _XOPEN_SOURCE 700 /* posix_openpt, grantpt, unlockpt, ptsname */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cpt/progress.h"
#include "testutil.h"

static double fake_t;
static double fake_now(void *ctx) {
    (void)ctx;
    return fake_t;
}

static int count(const char *s, size_t n, const char *pat) {
    int c = 0;
    size_t k = strlen(pat);
    for (size_t i = 0; i + k <= n; i++) c += !memcmp(s + i, pat, k);
    return c;
}

static void test_pty(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
    if (m < 0) return;
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    CHECK(s >= 0);
    if (s < 0) return;
    struct termios tio;
    tcgetattr(s, &tio);
    cfmakeraw(&tio); /* no \n -> \r\n translation: we see exactly what was written */
    tcsetattr(s, TCSANOW, &tio);
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    ioctl(s, TIOCSWINSZ, &ws);
    FILE *f = fdopen(s, "w");

    fake_t = 0;
    cpt_progress *p = cpt_progress_new(f, "train", 1000, "step");
    cpt_progress_set_clock(p, fake_now, NULL);
    /* updates at these times; draws expected at 0, 0.25 and 0.46 (>= 0.2 s apart) */
    const double ts[] = {0, 0.05, 0.1, 0.25, 0.3, 0.44, 0.46};
    char longx[201];
    memset(longx, 'x', 200);
    longx[200] = '\0';
    for (int i = 0; i < 7; i++) {
        fake_t = ts[i];
        cpt_progress_update(p, i * 10, "loss %.3f %s", 2.5 - 0.01 * i, longx);
    }
    fake_t = 0.5;
    cpt_progress_done(p);

    fcntl(m, F_SETFL, O_NONBLOCK);
    char buf[8192];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(m, buf + n, sizeof buf - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    CHECKF(count(buf, n, "\r") == 4, "%d redraws, want 3 + final", count(buf, n, "\r"));
    CHECK(count(buf, n, "\033[K") == 4);
    CHECK(count(buf, n, "\n") == 1 && n > 0 && buf[n - 1] == '\n');
    CHECK(!strncmp(buf, "\rtrain [>", 9));
    /* each drawn line fits in 79 columns (the 200-x extra is cut), so it cannot wrap */
    for (char *r = strchr(buf, '\r'); r; r = strchr(r + 1, '\r')) {
        char *e = strstr(r, "\033[K");
        CHECKF(e && e - r - 1 == 79, "drawn line of %d columns", e ? (int)(e - r - 1) : -1);
    }
    char *last = strrchr(buf, '\r');
    /* final: rate 60 steps / 0.5 s, elapsed 0.5 s rounds to 0:01; cut at 79 columns */
    CHECKF(last && !strcmp(last, "\rtrain [=>                      ] 60/1000 step  6.0%  120 step/s  took 0:01  los\033[K\n"),
           "%s", last);
    fclose(f);
    close(m);
}

static char *run_lines(double total, const char *unit, const char *label, int steps,
                       const double *ts, const double *dones, double end_t, double every_s,
                       double every_n) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    fake_t = ts[0] - 2;
    cpt_progress *p = cpt_progress_new(f, label, total, unit);
    cpt_progress_set_clock(p, fake_now, NULL);
    cpt_progress_set_line_every(p, every_s, every_n);
    for (int i = 0; i < steps; i++) {
        fake_t = ts[i];
        cpt_progress_update(p, dones[i], "loss %.3f", 3.0 - dones[i] / 20);
    }
    fake_t = end_t;
    cpt_progress_done(p);
    fclose(f);
    return text;
}

int main(void) {
    test_pty();

    /* Lines mode (a memory stream is no TTY). Clock: new at 98, first update at 100,
     * 20 steps by 110 -> 2 step/s, 80 left -> ETA 40 s; done at 112 -> took 14 s,
     * rate 20/12 = 1.67. The update at 105 is inside the 10 s interval: no line. */
    double ts[] = {100, 105, 110}, dn[] = {0, 10, 20};
    char *t = run_lines(100, "step", "train", 3, ts, dn, 112, 10, 0);
    CHECKF(t && !strcmp(t, "train: 0/100 step (0.0%), -- step/s, ETA --:--, loss 3.000\n"
                           "train: 20/100 step (20.0%), 2.00 step/s, ETA 0:40, loss 2.000\n"
                           "train: 20/100 step (20.0%), 1.67 step/s, took 0:14, loss 2.000\n"),
           "got:\n%s", t);
    free(t);

    /* By count: every 25 units -> lines at 0, 30, 60, 90, plus the final one. */
    double ts2[11], dn2[11];
    for (int i = 0; i <= 10; i++) ts2[i] = 100 + i, dn2[i] = 10 * i;
    t = run_lines(100, "step", "train", 11, ts2, dn2, 111, 0, 25);
    CHECK(t && count(t, strlen(t), "\n") == 5 && !strchr(t, '\r'));
    CHECK(t && strstr(t, "train: 30/100 step (30.0%), 10.0 step/s, ETA 0:07, loss 1.500\n"));
    CHECK(t && strstr(t, "train: 90/100 step (90.0%), 10.0 step/s, ETA 0:01, loss -1.500\n"));
    free(t);

    /* A data job in bytes: 500 MB in 4 s = 125 MB/s, 500 MB left -> 4 s. Slow steps
     * read as seconds per step; an unknown total has no percentage. */
    double ts3[] = {0, 4}, dn3[] = {0, 5e8};
    t = run_lines(1e9, "B", "copy", 2, ts3, dn3, 4, 1, 0);
    CHECKF(t && strstr(t, "copy: 500.0 MB/1.00 GB (50.0%), 125.0 MB/s, ETA 0:04, loss"), "%s", t);
    free(t);
    double ts4[] = {0, 8}, dn4[] = {1000, 1004}; /* resumed at 1000: 4 steps in 8 s */
    t = run_lines(2000, "step", "", 2, ts4, dn4, 8, 1, 0);
    CHECKF(t && strstr(t, "1004/2000 step (50.2%), 2.00 s/step, ETA 33:12"), "%s", t);
    free(t);
    double ts5[] = {0, 3600 * 100}, dn5[] = {0, 5};
    t = run_lines(0, "doc", "scan", 2, ts5, dn5, 3600 * 100, 1, 0);
    CHECKF(t && strstr(t, "scan: 5 doc, 72000.00 s/doc, took 4d04h") && !strstr(t, "%"), "%s", t);
    free(t);

    /* TTY text, exact: 250 of 1000 in 10 s -> 25 step/s, 750 left -> 30 s; bar 6/24. */
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    fake_t = 0;
    cpt_progress *p = cpt_progress_new(f, "train", 1000, "step");
    cpt_progress_set_clock(p, fake_now, NULL);
    cpt_progress_set_mode(p, CPT_PROGRESS_TTY);
    cpt_progress_update(p, 0, NULL);
    fake_t = 10;
    cpt_progress_update(p, 250, "loss %.3f", 2.345);
    fflush(f); /* text and size are valid after a flush */
    CHECKF(text && !strcmp(text, "\rtrain [>                       ] 0/1000 step  0.0%  -- step/s  ETA --:--\033[K"
                                 "\rtrain [======>                 ] 250/1000 step  25.0%  25.0 step/s  ETA 0:30  loss 2.345\033[K"),
           "got: %s", text);
    cpt_progress_done(p);
    fclose(f);
    free(text);
    cpt_progress_done(NULL); /* NULL is a no-op everywhere */
    cpt_progress_update(NULL, 1, NULL);
    TEST_END();
}
