/* test_metrics.c: metrics.jsonl content and resume truncation, TFRecord/protobuf
 * encoding bytes, CRC-32C known vectors, and the error paths. The TensorBoard reader
 * cross-check is test_metrics_tb.c. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "cpt/metrics.h"
#include "report/report-impl.h"
#include "report_testutil.h"
#include "testutil.h"

static void test_crc32c(void) {
    /* Known answers: "123456789" is the CRC catalogue check value; the 32-byte
     * vectors are the iSCSI ones (RFC 3720 B.4). */
    CHECK(cpt_crc32c("123456789", 9, 0) == 0xE3069283u);
    uint8_t z[32] = {0}, f[32], inc[32];
    for (int i = 0; i < 32; i++) f[i] = 0xff, inc[i] = (uint8_t)i;
    CHECK(cpt_crc32c(z, 32, 0) == 0x8A9136AAu);
    CHECK(cpt_crc32c(f, 32, 0) == 0x62A8AB43u);
    CHECK(cpt_crc32c(inc, 32, 0) == 0x46DD794Eu);
    CHECK(cpt_crc32c("", 0, 0) == 0);
    /* chaining == one pass */
    CHECK(cpt_crc32c("6789", 4, cpt_crc32c("12345", 5, 0)) == 0xE3069283u);
    /* masked value of the check string, from tensorboard's masked_crc32c */
    CHECK(cpt_crc32c_masked("123456789", 9) == 0xC78AB0E5u);
}

static void test_varint(void) {
    uint8_t b[10];
    CHECK(cpt_pb_varint(b, 0) == 1 && b[0] == 0);
    CHECK(cpt_pb_varint(b, 127) == 1 && b[0] == 0x7f);
    CHECK(cpt_pb_varint(b, 128) == 2 && b[0] == 0x80 && b[1] == 0x01);
    CHECK(cpt_pb_varint(b, 300) == 2 && b[0] == 0xac && b[1] == 0x02);
    size_t k = cpt_pb_varint(b, (uint64_t)-1LL); /* int64 -1: ten bytes */
    CHECK(k == 10 && b[0] == 0xff && b[8] == 0xff && b[9] == 0x01);
    /* a whole field: step (field 2, varint) = 150 -> 10 96 01 (protobuf docs' example) */
    cpt_buf buf = {0};
    cpt_pb_put_varint_field(&buf, 2, 150);
    CHECK(buf.n == 3 && buf.p[0] == 0x10 && buf.p[1] == 0x96 && buf.p[2] == 0x01);
    buf.n = 0;
    cpt_pb_put_float_field(&buf, 2, 1.0f); /* 15 00 00 80 3f */
    CHECK(buf.n == 5 && buf.p[0] == 0x15 && buf.p[3] == 0x80 && buf.p[4] == 0x3f);
    buf.n = 0;
    cpt_pb_put_double_field(&buf, 1, 2.0); /* 09 00..00 40 */
    CHECK(buf.n == 9 && buf.p[0] == 0x09 && buf.p[8] == 0x40 && buf.p[7] == 0);
    cpt_buf_free(&buf);
}

static void test_fmt_double(void) {
    char s[40];
    cpt_fmt_double(s, sizeof s, 0.1);
    CHECK(!strcmp(s, "0.1"));
    cpt_fmt_double(s, sizeof s, 2.345);
    CHECK(!strcmp(s, "2.345"));
    cpt_fmt_double(s, sizeof s, 1.0 / 3.0);
    CHECK(!strcmp(s, "0.3333333333333333"));
    cpt_fmt_double(s, sizeof s, 3e-4);
    CHECK(!strcmp(s, "0.0003"));
    cpt_fmt_double(s, sizeof s, 123456789.0);
    CHECK(!strcmp(s, "123456789"));
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t le32(const uint8_t *p) { return (uint32_t)le64((const uint8_t[8]){p[0], p[1], p[2], p[3]}); }

/* Parse metrics.jsonl into a jansson array of objects (NULL on any bad line). */
static json_t *load_jsonl(const char *dir) {
    size_t n;
    char *text = rt_slurp(dir, "metrics.jsonl", &n);
    if (!text) return NULL;
    json_t *arr = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(o)) {
            fprintf(stderr, "bad jsonl line: %s\n", line);
            json_decref(o);
            json_decref(arr);
            free(text);
            return NULL;
        }
        json_array_append_new(arr, o);
    }
    free(text);
    return arr;
}

static long long step_of(json_t *o) { return json_integer_value(json_object_get(o, "step")); }
static const char *kind_of(json_t *o) { return json_string_value(json_object_get(o, "kind")); }

static void test_log_and_resume(void) {
    char *dir = rt_mkdtemp("report_metrics");
    CHECK(dir != NULL);
    if (!dir) return;
    cpt_err err = {0};
    cpt_metrics *m = NULL;
    double t0 = cpt_unix_now();
    CHECK_OK(cpt_metrics_open(&m, dir, CPT_METRICS_FRESH, &err), &err);
    if (!m) return;
    const char *tk[] = {"loss", "lr"};
    for (int s = 1; s <= 6; s++) {
        double v[] = {3.0 - 0.25 * s, 1e-4 * s};
        CHECK_OK(cpt_metrics_log(m, "train", s, tk, v, 2, &err), &err);
    }
    /* ':' is allowed: task labels carry it (eval.tasks fictional_mem:FILE -> task/fictional_mem:docs.json/acc) */
    const char *ek[] = {"loss/wiki", "ppl/wiki", "task/fictional_mem:docs.json/acc"};
    double ev[] = {2.0, exp(2.0), 0.25};
    CHECK_OK(cpt_metrics_log(m, "eval", 5, ek, ev, 3, &err), &err);
    double nanv[] = {NAN, 1e-4};
    CHECK_OK(cpt_metrics_log(m, "train", 7, tk, nanv, 2, &err), &err);
    CHECK_OK(cpt_metrics_event(m, 7, "{\"what\":\"skipped_step\",\"reason\":\"nan\\nloss\"}", &err),
             &err);

    /* The exact first line: key order and number formatting are part of the format. */
    char *text = rt_slurp(dir, "metrics.jsonl", NULL);
    CHECK(text && !strncmp(text, "{\"step\":1,\"kind\":\"train\",\"loss\":2.75,\"lr\":0.0001,\"time\":", 56));
    CHECK(text && strstr(text, "{\"step\":7,\"kind\":\"train\",\"loss\":null,\"lr\":0.0001,\"time\":"));
    CHECK(text && strstr(text, "{\"step\":7,\"kind\":\"event\",\"what\":\"skipped_step\",\"reason\":\"nan\\nloss\",\"time\":"));
    free(text);
    json_t *a = load_jsonl(dir);
    CHECK(a && json_array_size(a) == 9);
    double t1 = cpt_unix_now();
    if (a) {
        for (size_t i = 0; i < json_array_size(a); i++) {
            double t = json_number_value(json_object_get(json_array_get(a, i), "time"));
            CHECKF(t >= t0 - 1e-3 && t <= t1 + 1e-3, "time %.6f not in [%.6f, %.6f]", t, t0, t1);
        }
        json_t *e5 = json_array_get(a, 6);
        CHECK(!strcmp(kind_of(e5), "eval") && step_of(e5) == 5);
        CHECK(json_real_value(json_object_get(e5, "ppl/wiki")) == exp(2.0)); /* round trip */
        CHECK(json_real_value(json_object_get(e5, "task/fictional_mem:docs.json/acc")) == 0.25);
    }
    json_decref(a);

    /* The event file's first record, byte by byte (see metrics.h). */
    char *tbp = strdup(cpt_metrics_tb_path(m));
    cpt_metrics_close(m);
    size_t n = 0;
    char *tb = NULL;
    CHECK(cpt_read_file(tbp, &tb, &n, &err) == 0);
    CHECK(strstr(tbp, "/tb/events.out.tfevents.") != NULL);
    if (tb && n >= 40) {
        const uint8_t *p = (const uint8_t *)tb;
        CHECK(le64(p) == 24);
        CHECK(le32(p + 8) == cpt_crc32c_masked(p, 8));
        CHECK(p[12] == 0x09 && p[21] == 0x1a && p[22] == 13 && !memcmp(p + 23, "brain.Event:2", 13));
        CHECK(le32(p + 36) == cpt_crc32c_masked(p + 12, 24));
        double wt;
        memcpy(&wt, p + 13, 8);
        CHECK(wt >= t0 && wt <= t1);
        /* walk all records: 1 + 8 scalar events, each framed consistently */
        size_t off = 0;
        int recs = 0;
        while (off + 12 <= n) {
            uint64_t len = le64((const uint8_t *)tb + off);
            if (off + 16 + len > n) break;
            CHECK(le32((const uint8_t *)tb + off + 12 + len) ==
                  cpt_crc32c_masked(tb + off + 12, len));
            off += 16 + len;
            recs++;
        }
        CHECK(off == n && recs == 9);
    }
    free(tb);

    /* Resume from step 4: lines with step > 4 go (train 5..7, eval 5, event 7). */
    m = NULL;
    CHECK_OK(cpt_metrics_open(&m, dir, 4, &err), &err);
    if (m) {
        CHECK(strcmp(cpt_metrics_tb_path(m), tbp) != 0); /* a new event file */
        a = load_jsonl(dir);
        CHECK(a && json_array_size(a) == 4);
        for (size_t i = 0; a && i < json_array_size(a); i++)
            CHECK(step_of(json_array_get(a, i)) == (long long)i + 1);
        json_decref(a);
        double v[] = {9.0, 1.0};
        CHECK_OK(cpt_metrics_log(m, "train", 5, tk, v, 2, &err), &err);
        cpt_metrics_close(m);
        a = load_jsonl(dir);
        CHECK(a && json_array_size(a) == 5 && step_of(json_array_get(a, 4)) == 5);
        if (a) CHECK(json_number_value(json_object_get(json_array_get(a, 4), "loss")) == 9.0);
        json_decref(a);
    }
    free(tbp);

    /* A torn last line (crash mid-write) is dropped on resume; complete lines stay. */
    char *path = cpt_path_join(dir, "metrics.jsonl");
    FILE *f = fopen(path, "ab");
    fputs("{\"step\":6,\"kind\":\"tr", f);
    fclose(f);
    m = NULL;
    CHECK_OK(cpt_metrics_open(&m, dir, 100, &err), &err);
    cpt_metrics_close(m);
    a = load_jsonl(dir);
    CHECK(a && json_array_size(a) == 5);
    json_decref(a);

    /* A malformed line in the middle is an error naming the line; the file is kept. */
    f = fopen(path, "wb");
    fputs("{\"step\":1,\"kind\":\"train\",\"loss\":1}\nnot json\n{\"step\":2,\"kind\":\"train\"}\n", f);
    fclose(f);
    memset(&err, 0, sizeof err);
    m = NULL;
    CHECK(cpt_metrics_open(&m, dir, 1, &err) == CPT_EFORMAT && m == NULL);
    CHECKF(strstr(err.msg, "line 2") && strstr(err.msg, "HINT"), "%s", err.msg);
    text = rt_slurp(dir, "metrics.jsonl", NULL);
    CHECK(text && strstr(text, "not json"));
    free(text);

    /* Fresh open replaces the log. */
    m = NULL;
    CHECK_OK(cpt_metrics_open(&m, dir, CPT_METRICS_FRESH, &err), &err);
    text = rt_slurp(dir, "metrics.jsonl", &n);
    CHECK(text && n == 0);
    free(text);

    /* Argument errors: reported, nothing written. */
    const char *bad1[] = {"time"}, *bad2[] = {"a b"}, *dup[] = {"x", "x"}, *ok1[] = {"x"};
    double v2[] = {1, 2};
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_log(m, "trian", 1, ok1, v2, 1, &err) == CPT_EINVAL && strstr(err.msg, "HINT"));
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_log(m, "train", 1, bad1, v2, 1, &err) == CPT_EINVAL);
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_log(m, "train", 1, bad2, v2, 1, &err) == CPT_EINVAL);
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_log(m, "train", 1, dup, v2, 2, &err) == CPT_EINVAL && strstr(err.msg, "twice"));
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_log(m, "train", 1, ok1, v2, 0, &err) == CPT_EINVAL);
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_event(m, 1, "[1,2]", &err) == CPT_EINVAL);
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_event(m, 1, "{\"a\":1,\"a\":2}", &err) == CPT_EINVAL);
    memset(&err, 0, sizeof err);
    CHECK(cpt_metrics_event(m, 1, "{\"step\":3}", &err) == CPT_EINVAL && strstr(err.msg, "reserved"));
    CHECK_OK(cpt_metrics_event(m, 2, "{}", &err), &err);
    cpt_metrics_close(m);
    text = rt_slurp(dir, "metrics.jsonl", NULL);
    CHECK(text && !strncmp(text, "{\"step\":2,\"kind\":\"event\",\"time\":", 32) &&
          strchr(text, '\n') == text + strlen(text) - 1);
    free(text);

    /* An unwritable run dir (a path below a regular file) is CPT_EIO with the path. */
    char *below = cpt_path_join(path, "run");
    memset(&err, 0, sizeof err);
    m = NULL;
    CHECK(cpt_metrics_open(&m, below, CPT_METRICS_FRESH, &err) < 0 && m == NULL);
    CHECKF(strstr(err.msg, "metrics.jsonl") != NULL, "%s", err.msg);
    free(below);
    free(path);
    free(dir);
}

int main(void) {
    test_crc32c();
    test_varint();
    test_fmt_double();
    test_log_and_resume();
    TEST_END();
}
