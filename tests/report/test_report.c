/* test_report.c: report.md from a filled cpt_report_data: every table row is checked
 * against numbers worked out by hand (perplexities chosen so exp/log are exact-ish:
 * ppl 10 -> 11 is +10.00%, 4 -> 4.1 is +2.50%, 20 -> 15 is -25.00%). */
#include <math.h>

#include "cpt/metrics.h"
#include "report_testutil.h"
#include "testutil.h"

#define HAS(text, s) CHECKF((text) && strstr((text), (s)), "report.md lacks: %s", (s))

int main(void) {
    char *dir = rt_mkdtemp("report_md");
    CHECK(dir != NULL);
    if (!dir) TEST_END();
    cpt_report_valset vs[] = {
        {.name = "wiki", .base_loss = log(10.0), .final_loss = log(11.0), .budget_pct = 5.0},
        {.name = "code|py", .base_loss = log(4.0), .final_loss = log(4.1), .budget_pct = 3.0},
        {.name = "domain", .base_loss = log(20.0), .final_loss = log(15.0), .budget_pct = NAN},
        /* exactly at the budget (4 -> 4.2 = +5%) counts as within, despite exp/log round-off */
        {.name = "edge", .base_loss = log(4.0), .final_loss = log(4.2), .budget_pct = 5.0},
    };
    cpt_report_source src[] = {{"web", 300000000}, {"code", 200000000}, {"math", 24288000}};
    cpt_report_skip sk[] = {{57, "non-finite loss"}, {120, "grad norm spike"}, {300, "non-finite loss"}};
    cpt_report_ckpt ck[] = {{500, "ckpt/step_000500"}, {1000, "ckpt/step 001000"}};
    cpt_report_data d = {
        .model = "Llama-3.2-1B (/models/llama)", .status = "completed",
        .steps_done = 1000, .steps_total = 1000, .tokens = 524288000, .wall_s = 3723,
        .valsets = vs, .n_valsets = 4, .sources = src, .n_sources = 3,
        .skips = sk, .n_skips = 3, .ckpts = ck, .n_ckpts = 2,
    };
    cpt_err err = {0};
    CHECK_OK(cpt_report_write(dir, &d, &err), &err);
    char *t = rt_slurp(dir, "report.md", NULL);
    const char *base = strrchr(dir, '/') + 1;
    char title[512];
    snprintf(title, sizeof title, "# Run report: %s\n", base);
    CHECK(t && !strncmp(t, title, strlen(title))); /* run_name NULL: the dir's name */
    HAS(t, "| Model | Llama-3.2-1B (/models/llama) |\n");
    HAS(t, "| Status | completed |\n");
    HAS(t, "| Steps | 1,000 / 1,000 |\n");
    HAS(t, "| Tokens | 524,288,000 |\n");
    HAS(t, "| Wall time | 1h 02m 03s |\n");
    HAS(t, "| Throughput | 140,824 tokens/s |\n"); /* 524288000 / 3723 = 140824.07 */
    HAS(t, "| Forgetting budget | **exceeded** (1 of 3 budgeted sets over) |\n");
    HAS(t, "| Skipped steps | 3 |\n");
    HAS(t, "| Set | Base loss | Final loss | Base ppl | Final ppl | Delta | Budget | Within budget |\n");
    HAS(t, "| wiki | 2.3026 | 2.3979 | 10.000 | 11.000 | +10.00% | 5.00% | **no** |\n");
    HAS(t, "| code\\|py | 1.3863 | 1.4110 | 4.000 | 4.100 | +2.50% | 3.00% | yes |\n");
    HAS(t, "| domain | 2.9957 | 2.7081 | 20.000 | 15.000 | -25.00% | - | - |\n");
    HAS(t, "| edge | 1.3863 | 1.4351 | 4.000 | 4.200 | +5.00% | 5.00% | yes |\n");
    HAS(t, "| web | 300,000,000 | 57.2% |\n");   /* 300 / 524.288 */
    HAS(t, "| code | 200,000,000 | 38.1% |\n");
    HAS(t, "| math | 24,288,000 | 4.6% |\n");
    HAS(t, "| **total** | 524,288,000 | 100.0% |\n");
    HAS(t, "3 steps skipped: non-finite loss (2), grad norm spike (1).\n");
    HAS(t, "| 57 | non-finite loss |\n| 120 | grad norm spike |\n| 300 | non-finite loss |\n");
    HAS(t, "![training curves](<curves.svg>)");
    HAS(t, "- [step 500](<ckpt/step_000500>)\n- [step 1,000](<ckpt/step 001000>) (latest)\n");
    /* every table row has as many cells as its header */
    int bad_rows = 0;
    for (const char *line = t; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len && line[0] == '|') {
            int pipes = 0;
            for (size_t i = 0; i < len; i++) pipes += line[i] == '|' && (i == 0 || line[i - 1] != '\\');
            if (pipes != 3 && pipes != 4 && pipes != 9) bad_rows++;
        }
        line = nl ? nl + 1 : line + len;
    }
    CHECK(bad_rows == 0);
    free(t);

    /* Edge cases: nothing to list, no wall time, many skips are capped. */
    cpt_report_skip many[150];
    for (int i = 0; i < 150; i++) many[i] = (cpt_report_skip){i * 10, i % 2 ? "spike" : NULL};
    cpt_report_data e = {.run_name = "empty run", .steps_total = 10, .skips = many, .n_skips = 150};
    CHECK_OK(cpt_report_write(dir, &e, &err), &err);
    t = rt_slurp(dir, "report.md", NULL);
    HAS(t, "# Run report: empty run\n");
    HAS(t, "| Model | - |\n");
    HAS(t, "| Wall time | 0.0s |\n| Throughput | n/a |\n");
    HAS(t, "No validation sets.");
    HAS(t, "No per-source counts.");
    HAS(t, "150 steps skipped: unknown (75), spike (75).\n");
    HAS(t, "| 990 | spike |\n"); /* row 100 (step 990) listed, 101 (step 1000) not */
    CHECK(t && !strstr(t, "| 1,000 | unknown |"));
    HAS(t, "(first 100 of 150 listed;");
    HAS(t, "None saved.");
    CHECK(t && !strstr(t, "Forgetting budget"));
    free(t);

    /* Bad data is refused and report.md is left as it was. */
    cpt_report_data bad = {.n_valsets = 2, .valsets = NULL};
    memset(&err, 0, sizeof err);
    CHECK(cpt_report_write(dir, &bad, &err) == CPT_EINVAL && strstr(err.msg, "valsets") && strstr(err.msg, "HINT"));
    cpt_report_data neg = {.tokens = -1};
    memset(&err, 0, sizeof err);
    CHECK(cpt_report_write(dir, &neg, &err) == CPT_EINVAL);
    t = rt_slurp(dir, "report.md", NULL);
    HAS(t, "# Run report: empty run\n");
    free(t);
    free(dir);
    TEST_END();
}
