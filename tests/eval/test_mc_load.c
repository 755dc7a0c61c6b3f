/* test_mc_load.c: the generic multiple-choice JSONL loader: good items load with their
 * fields; each malformed line is an error naming file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/eval.h"
#include "testutil.h"

static const char *tmpdir(void) {
    const char *d = getenv("CPT_TMP");
    return d ? d : "/tmp";
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static void expect_bad(const char *body, const char *where) {
    char path[512], want[600];
    snprintf(path, sizeof path, "%s/test_mc_load_bad.jsonl", tmpdir());
    CHECK(write_file(path, body) == 0);
    cpt_mc_task t;
    cpt_err err = {0};
    int rc = cpt_mc_load_jsonl(&t, path, 0, &err);
    CHECKF(rc == CPT_EFORMAT, "rc %d for %s", rc, body);
    snprintf(want, sizeof want, "%s:%s", path, where);
    CHECKF(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    CHECKF(strstr(err.msg, "HINT") != NULL, "message '%s' lacks a HINT", err.msg);
    CHECK(t.items == NULL && t.n == 0);
}

int main(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/test_mc_load_good.jsonl", tmpdir());
    CHECK(write_file(path, "{\"query\": \"Q: 2+2?\", \"choices\": [\"3\", \"4\"], \"gold\": 1}\n\n"
                           "{\"query\": \"caf\\u00e9\", \"choices\": [\"a\", \"b\", \"c\"], \"gold\": 2}\r\n"
                           "{\"query\": \"x\", \"choices\": [\"p\", \"q\"], \"gold\": 0}\n") == 0);
    cpt_mc_task t;
    cpt_err err = {0};
    CHECK_OK(cpt_mc_load_jsonl(&t, path, 0, &err), &err);
    CHECK(t.n == 3);
    if (t.n == 3) {
        CHECK(!strcmp(t.items[0].context, "Q: 2+2?") && t.items[0].n_choices == 2 && t.items[0].gold == 1);
        CHECK(!strcmp(t.items[0].choices[1], "4"));
        CHECK(!strcmp(t.items[1].context, "caf\xc3\xa9") && t.items[1].n_choices == 3 && t.items[1].gold == 2);
    }
    cpt_mc_task_free(&t);
    CHECK_OK(cpt_mc_load_jsonl(&t, path, 2, &err), &err);
    CHECK(t.n == 2);
    cpt_mc_task_free(&t);

    const char *ok = "{\"query\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0}\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s{\"query\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0\n", ok);
    expect_bad(buf, "2:");
    snprintf(buf, sizeof buf, "%s\n{\"choices\": [\"b\", \"c\"], \"gold\": 0}\n", ok);
    expect_bad(buf, "3:");
    snprintf(buf, sizeof buf, "%s{\"query\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n", ok);
    expect_bad(buf, "2:");
    snprintf(buf, sizeof buf, "%s{\"query\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 2}\n", ok);
    expect_bad(buf, "2:");
    snprintf(buf, sizeof buf, "{\"query\": \"a\", \"choices\": [\"b\", 3], \"gold\": 0}\n");
    expect_bad(buf, "1:");
    cpt_mc_task t2;
    CHECK(cpt_mc_load_jsonl(&t2, "/nonexistent/x.jsonl", 0, &err) == CPT_EIO);
    TEST_END();
}
