/* test_metrics_tb.c: writes a run's metrics over two sessions (fresh, then resumed at
 * step 4) and hands the run dir to tb_oracle.py, which reads it with tensorboard's
 * own reader and an independent TFRecord/CRC-32C reader. Skips (77) without
 * tensorboard. */
#include <math.h>
#include <stdint.h>

#include "cpt/metrics.h"
#include "report_testutil.h"
#include "testutil.h"

int main(void) {
    char *dir = rt_mkdtemp("report_tb");
    CHECK(dir != NULL);
    if (!dir) TEST_END();
    cpt_err err = {0};
    cpt_metrics *m = NULL;
    const char *tk[] = {"loss", "lr", "tokens"};
    const char *ek[] = {"loss/wiki", "ppl/wiki", "loss/code", "ppl/code"};

    CHECK_OK(cpt_metrics_open(&m, dir, CPT_METRICS_FRESH, &err), &err);
    if (!m) TEST_END();
    double e0[] = {2.1, exp(2.1), 1.3, exp(1.3)};
    CHECK_OK(cpt_metrics_log(m, "eval", 0, ek, e0, 4, &err), &err);
    for (int s = 1; s <= 6; s++) {
        /* values that fp32 cannot hold exactly, and a NaN at step 3 */
        double v[] = {s == 3 ? NAN : 3.0 / s + 0.1, 3e-4 * s / 6.0, 4096.0 * s};
        CHECK_OK(cpt_metrics_log(m, "train", s, tk, v, 3, &err), &err);
    }
    double e6[] = {2.0, exp(2.0), 1.35, exp(1.35)};
    CHECK_OK(cpt_metrics_log(m, "eval", 6, ek, e6, 4, &err), &err);
    CHECK_OK(cpt_metrics_event(m, 3, "{\"what\":\"skipped_step\",\"reason\":\"non-finite loss\"}", &err), &err);
    cpt_metrics_close(m);

    /* Resume from the step-4 checkpoint: steps 5..8 are (re)done with other values. */
    m = NULL;
    CHECK_OK(cpt_metrics_open(&m, dir, 4, &err), &err);
    if (!m) TEST_END();
    for (int s = 5; s <= 8; s++) {
        double v[] = {1.0 / s + 7.0, 1e-4, 4096.0 * s};
        CHECK_OK(cpt_metrics_log(m, "train", s, tk, v, 3, &err), &err);
    }
    double e8[] = {1.9, exp(1.9), 1.4, exp(1.4)};
    CHECK_OK(cpt_metrics_log(m, "eval", 8, ek, e8, 4, &err), &err);
    cpt_metrics_close(m);

    /* CRC vectors of pseudo-random buffers, lengths 0..299, for the Python CRCs. */
    char *vp = cpt_path_join(dir, "crc_vectors.txt");
    FILE *f = fopen(vp, "w");
    CHECK(f != NULL);
    uint32_t x = 12345;
    for (int len = 0; f && len < 300; len += 7) {
        uint8_t buf[300];
        for (int i = 0; i < len; i++) buf[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
        if (len == 0) fputc('-', f);
        for (int i = 0; i < len; i++) fprintf(f, "%02x", buf[i]);
        fprintf(f, " %08x\n", cpt_crc32c(buf, (size_t)len, 0));
    }
    if (f) fclose(f);
    free(vp);

    char args[4096];
    snprintf(args, sizeof args, "'%s' 2", dir);
    int rc = rt_python("tb_oracle.py", args);
    free(dir);
    if (rc == 77) TEST_SKIP("tensorboard is not installed (pip install -r tests/requirements.txt)");
    CHECKF(rc == 0, "tb_oracle.py exited %d", rc);
    TEST_END();
}
