/* test_npy.c: .npy writer byte layout (hand-written expected headers), read-back, and
 * must-reject files. Helper modes for tests/io/test_npy_py.py:
 *   test_npy write <path>   writes shape (3, 5, 2) with values (i - 10) / 8 (exact)
 *   test_npy read <path>    prints "ndim d0,d1,.. numel" and one %a value per line */
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/npy.h"
#include "testutil.h"

static char tmpdir[4096];

static const char *tpath(const char *name) {
    static char buf[4][4352];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* The whole file must be prefix + dict text + spaces + '\n' (to 64 bytes) + data. */
static void check_layout(const char *path, const char *dict, const float *data, size_t n) {
    char *raw = NULL;
    size_t size = 0;
    cpt_err e = {0};
    CHECK_OK(cpt_read_file(path, &raw, &size, &e), &e);
    if (!raw) return;
    size_t hlen = (size_t)(uint8_t)raw[8] | (size_t)(uint8_t)raw[9] << 8;
    CHECK(memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0);
    CHECK((10 + hlen) % 64 == 0);
    CHECK(size == 10 + hlen + 4 * n);
    size_t dl = strlen(dict);
    CHECKF(hlen > dl && memcmp(raw + 10, dict, dl) == 0, "header is '%.*s'", (int)(hlen), raw + 10);
    int pad_ok = raw[10 + hlen - 1] == '\n';
    for (size_t i = 10 + dl; i < 10 + hlen - 1; i++) pad_ok &= raw[i] == ' ';
    CHECK(pad_ok);
    CHECK(n == 0 || memcmp(raw + 10 + hlen, data, 4 * n) == 0);
    free(raw);
}

static void test_write_read(void) {
    float v[6] = {1.5f, -2.0f, 0.1f, INFINITY, -0.0f, 3e-42f};
    cpt_err e = {0};
    int64_t s23[2] = {2, 3}, s6[1] = {6}, s0[2] = {4, 0};
    CHECK_OK(cpt_npy_write_f32(tpath("a.npy"), v, 2, s23, &e), &e);
    check_layout(tpath("a.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 6);
    CHECK_OK(cpt_npy_write_f32(tpath("b.npy"), v, 1, s6, &e), &e);
    check_layout(tpath("b.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v, 6);
    CHECK_OK(cpt_npy_write_f32(tpath("c.npy"), v, 0, NULL, &e), &e);
    check_layout(tpath("c.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", v, 1);
    CHECK_OK(cpt_npy_write_f32(tpath("d.npy"), NULL, 2, s0, &e), &e);
    check_layout(tpath("d.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", v, 0);

    cpt_npy a;
    CHECK_OK(cpt_npy_read_f32(tpath("a.npy"), &a, &e), &e);
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.numel == 6);
    CHECK(a.data && memcmp(a.data, v, sizeof v) == 0);
    cpt_npy_free(&a);
    CHECK(a.data == NULL);
    CHECK_OK(cpt_npy_read_f32(tpath("c.npy"), &a, &e), &e);
    CHECK(a.ndim == 0 && a.numel == 1 && a.data[0] == 1.5f);
    cpt_npy_free(&a);
    CHECK_OK(cpt_npy_read_f32(tpath("d.npy"), &a, &e), &e);
    CHECK(a.ndim == 2 && a.shape[1] == 0 && a.numel == 0 && a.data != NULL);
    cpt_npy_free(&a);

    int64_t bad[1] = {-1};
    cpt_err e2 = {0};
    CHECK(cpt_npy_write_f32(tpath("x.npy"), v, 1, bad, &e2) == CPT_EINVAL);
    CHECK(strstr(e2.msg, "shape[0]") && strstr(e2.msg, "x.npy"));
    CHECK(!cpt_is_file(tpath("x.npy")));
}

/* Hand-made files: prefix (version), header text padded to 64, data bytes. */
static void put(const char *path, int major, const char *dict, size_t ndata, size_t cut) {
    char buf[512];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + 63) / 64 * 64, hlen = total - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (char)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) buf[8 + i] = (char)(hlen >> (8 * i));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[total - 1] = '\n';
    memset(buf + total, 0, ndata);
    cpt_err e = {0};
    CHECK_OK(cpt_write_file_atomic(path, buf, total + ndata - cut, &e), &e);
}

static void test_reject(void) {
    static const struct {
        const char *label;
        int major;
        const char *dict;
        size_t ndata, cut;
        int code;
        const char *needle;
    } c[] = {
        {"ok_v1", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, 0, CPT_OK, ""},
        {"ok_v2", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", 8, 0, CPT_OK, ""},
        {"ok_order", 1, "{\"shape\": (1,2), \"fortran_order\": False, \"descr\": \"<f4\"}", 8, 0, CPT_OK, ""},
        {"f8", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, 0, CPT_EUNSUPPORTED, "descr"},
        {"big_endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, 0, CPT_EUNSUPPORTED, "descr"},
        {"fortran", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, 0, CPT_EUNSUPPORTED, "fortran_order"},
        {"truncated", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, 3, CPT_EFORMAT, "data section"},
        {"trailing", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8, 0, CPT_EFORMAT, "data section"},
        {"no_shape", 1, "{'descr': '<f4', 'fortran_order': False, }", 0, 0, CPT_EFORMAT, "shape"},
        {"neg_shape", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 0, 0, CPT_EFORMAT, "shape"},
        {"dup_key", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, 0, CPT_EFORMAT, "descr"},
        {"extra_key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", 4, 0, CPT_EFORMAT, "'x'"},
        {"bad_version", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, 0, CPT_EFORMAT, "version"},
        {"junk_after", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), } x", 4, 0, CPT_EFORMAT, "header byte"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.npy", c[i].label);
        const char *p = tpath(name);
        put(p, c[i].major, c[i].dict, c[i].ndata, c[i].cut);
        cpt_npy a;
        cpt_err e = {0};
        int rc = cpt_npy_read_f32(p, &a, &e);
        CHECKF(rc == c[i].code, "%s: rc %d want %d: %s", c[i].label, rc, c[i].code, e.msg);
        if (rc) {
            CHECKF(strstr(e.msg, name) && strstr(e.msg, c[i].needle), "%s: message: %s", c[i].label, e.msg);
            CHECK(a.data == NULL);
        }
        cpt_npy_free(&a);
    }
    const char *p = tpath("magic.npy");
    cpt_err e = {0};
    CHECK_OK(cpt_write_file_atomic(p, "\x93NUMPX\x01\x00\x00\x00", 10, &e), &e);
    cpt_npy a;
    CHECK(cpt_npy_read_f32(p, &a, &e) == CPT_EFORMAT && strstr(e.msg, "magic"));
}

static int mode_write(const char *path) {
    float v[30];
    for (int i = 0; i < 30; i++) v[i] = (float)(i - 10) / 8.0f;
    int64_t shape[3] = {3, 5, 2};
    cpt_err e = {0};
    if (cpt_npy_write_f32(path, v, 3, shape, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    return 0;
}

static int mode_read(const char *path) {
    cpt_npy a;
    cpt_err e = {0};
    if (cpt_npy_read_f32(path, &a, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("%d ", a.ndim);
    for (int i = 0; i < a.ndim; i++) printf("%s%lld", i ? "," : "", (long long)a.shape[i]);
    printf("%s %llu\n", a.ndim ? "" : "-", (unsigned long long)a.numel);
    for (uint64_t i = 0; i < a.numel; i++) printf("%a\n", (double)a.data[i]);
    cpt_npy_free(&a);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "write")) return mode_write(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "read")) return mode_read(argv[2]);
    const char *t = tu_env("CPT_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/io_npy", t ? t : "/tmp");
    cpt_err e = {0};
    if (cpt_mkdirs(tmpdir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_write_read();
    test_reject();
    TEST_END();
}
