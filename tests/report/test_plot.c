/* test_plot.c: SVG charts. Writes a synthetic run's metrics.jsonl, draws curves.svg,
 * and a hand-made chart with a log axis, gaps, a lone point, an empty series and names
 * needing XML escapes; svg_oracle.py then parses both with xml.etree and counts the
 * points of every series (for curves.svg from its own reading of metrics.jsonl).
 * PNG renderings (rsvg-convert, if installed) are left next to them for a person. */
#include <math.h>

#include "cpt/metrics.h"
#include "report_testutil.h"
#include "testutil.h"

static void synthetic_run(const char *dir) {
    cpt_err err = {0};
    cpt_metrics *m = NULL;
    CHECK_OK(cpt_metrics_open(&m, dir, CPT_METRICS_FRESH, &err), &err);
    if (!m) return;
    const char *ek[] = {"loss/domain", "ppl/domain", "loss/general"};
    const char *tk[] = {"loss", "lr", "tokens"};
    unsigned x = 7;
    for (int s = 0; s <= 600; s++) {
        if (s % 100 == 0) { /* eval: domain improves, general forgets a little */
            double t = s / 600.0;
            double v[] = {2.4 - 0.5 * t, exp(2.4 - 0.5 * t), 2.0 + 0.04 * t * (2 - t)};
            CHECK_OK(cpt_metrics_log(m, "eval", s, ek, v, 3, &err), &err);
        }
        if (s == 0) continue;
        x = x * 1103515245u + 12345u;
        double noise = ((x >> 16) & 1023) / 1023.0 - 0.5;
        double lr = s < 50 ? 3e-4 * s / 50 : 3e-4 * 0.5 * (1 + cos(M_PI * (s - 50) / 550.0));
        double v[] = {s == 250 ? NAN : 2.5 - 0.6 * (1 - exp(-s / 150.0)) + 0.12 * noise, lr, 8192.0 * s};
        CHECK_OK(cpt_metrics_log(m, "train", s, tk, v, 3, &err), &err);
    }
    CHECK_OK(cpt_metrics_event(m, 250, "{\"what\":\"skipped_step\",\"reason\":\"non-finite loss\"}", &err), &err);
    cpt_metrics_close(m);
}

int main(void) {
    char *dir = rt_mkdtemp("report_plot");
    CHECK(dir != NULL);
    if (!dir) TEST_END();
    cpt_err err = {0};
    synthetic_run(dir);
    CHECK_OK(cpt_plot_run_curves(dir, &err), &err);
    char args[8192];
    snprintf(args, sizeof args, "'%s/curves.svg' --run '%s' --png '%s/curves.png'", dir, dir, dir);
    CHECKF(rt_python("svg_oracle.py", args) == 0, "svg_oracle.py on curves.svg");

    /* hand-made chart: log axis over 3 decades, a gap, a lone point, an empty series */
    double x[7] = {0, 1, 2, 3, 4, 5, 6};
    double y1[7] = {100, 30, 10, NAN, 3, 1.5, 1};  /* gap at 3: 6 points, 2 subpaths */
    double y2[7] = {50, NAN, 8, NAN, -1, 2, 0.9};  /* -1 is off a log axis: 4 points, 3 subpaths */
    double y3[3] = {0.001, 0.002, 0.0015};         /* right axis, linear */
    cpt_plot_series s1[] = {
        {.name = "loss <a&b> \"q\"", .x = x, .y = y1, .n = 7},
        {.name = "dots", .x = x, .y = y2, .n = 7, .dashed = 1},
        {.name = "lr", .x = x, .y = y3, .n = 3, .axis = 1},
        {.name = "empty", .x = x, .y = y3, .n = 0},
    };
    double flat[2] = {5, 5};
    cpt_plot_series s2[] = {{.name = "flat", .x = x, .y = flat, .n = 2}};
    cpt_plot_panel panels[] = {
        {.title = "log panel", .xlabel = "x", .ylabel = "y", .y2label = "lr", .log_y = 1,
         .series = s1, .n_series = 4},
        {.title = "flat line", .series = s2, .n_series = 1},
    };
    char *svg = cpt_path_join(dir, "hand.svg");
    CHECK_OK(cpt_plot_svg(svg, "hand & made", panels, 2, &err), &err);
    snprintf(args, sizeof args,
             "'%s' --expect 'loss <a&b> \"q\"=6:2' --expect 'dots=4:3' --expect 'lr=3:1' "
             "--expect 'flat=2:1' --png '%s/hand.png'",
             svg, dir);
    CHECKF(rt_python("svg_oracle.py", args) == 0, "svg_oracle.py on hand.svg");
    char *text = rt_slurp(dir, "hand.svg", NULL);
    CHECK(text && strstr(text, ">empty (left) (no data)</text>")); /* listed, not drawn */
    CHECK(text && strstr(text, ">1</text>") && strstr(text, ">10</text>") && strstr(text, ">100</text>"));
    CHECK(text && strstr(text, " h0")); /* the lone points of "dots" (x=0, x=2) are dots */
    const char *c1 = text ? strstr(text, "<circle") : NULL;
    CHECK(c1 && strstr(c1 + 1, "<circle") && !strstr(strstr(c1 + 1, "<circle") + 1, "<circle"));
    free(text);

    /* errors: no panels; a series without a name; missing metrics.jsonl */
    memset(&err, 0, sizeof err);
    CHECK(cpt_plot_svg(svg, "t", panels, 0, &err) == CPT_EINVAL);
    cpt_plot_series noname[] = {{.name = NULL, .x = x, .y = y1, .n = 7}};
    cpt_plot_panel bad = {.series = noname, .n_series = 1};
    memset(&err, 0, sizeof err);
    CHECK(cpt_plot_svg(svg, "t", &bad, 1, &err) == CPT_EINVAL && strstr(err.msg, "series 0"));
    char *nodir = cpt_path_join(dir, "no-such-run");
    memset(&err, 0, sizeof err);
    CHECK(cpt_plot_run_curves(nodir, &err) == CPT_ENOTFOUND && strstr(err.msg, "HINT"));
    free(nodir);
    free(svg);
    fprintf(stderr, "charts and PNGs in %s\n", dir);
    free(dir);
    TEST_END();
}
