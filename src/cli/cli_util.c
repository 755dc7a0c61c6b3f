/* cli_util.c: token-id parsing and error printing shared by the commands. */
#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cpt/backend.h"
#include "cpt/model.h"
#include "cpt/ops.h"

int cpt_parse_ids(const char *text, const char *label, int32_t **ids, size_t *n, cpt_err *err) {
    size_t cap = 64, k = 0, line = 1;
    int32_t *out = malloc(sizeof(int32_t) * cap);
    if (!out) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    const char *p = text;
    while (*p) {
        if (isspace((unsigned char)*p)) {
            if (*p == '\n') line++;
            p++;
            continue;
        }
        errno = 0;
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || (*end && !isspace((unsigned char)*end)) || v < 0 || v > INT32_MAX) {
            char tok[32];
            size_t L = 0;
            while (p[L] && !isspace((unsigned char)p[L]) && L < sizeof tok - 1) L++;
            memcpy(tok, p, L);
            tok[L] = '\0';
            free(out);
            return cpt_err_set(err, CPT_EINVAL, "%s: line %zu, token %zu: '%s' is not a token id (a non-negative integer). HINT: ids are whitespace-separated integers",
                               label, line, k + 1, tok);
        }
        if (k == cap) {
            cap *= 2;
            int32_t *nb = realloc(out, sizeof(int32_t) * cap);
            if (!nb) {
                free(out);
                return cpt_err_set(err, CPT_ENOMEM, "out of memory");
            }
            out = nb;
        }
        out[k++] = (int32_t)v;
        p = end;
    }
    *ids = out;
    *n = k;
    return CPT_OK;
}

int cpt_cli_fail(const char *cmd, const cpt_err *err) {
    fprintf(stderr, "cpt %s: error: %s\n", cmd, err->msg[0] ? err->msg : cpt_status_str(err->code));
    return (err->code == CPT_EINVAL || err->code == CPT_ENOTFOUND) ? 2 : 1;
}

/* "a,b,c" -> numbers; each checked against [lo, hi] (integers when integral). */
int cpt_parse_num_list(const char *s, const char *opt, double lo, double hi, int integral, double *out, int cap, int *n,
                      cpt_err *err) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !isfinite(v) || v < lo || v > hi || (integral && v != floor(v)))
            return cpt_err_set(err, CPT_EINVAL, "%s: \"%s\" is not a list of %s in [%g, %g]. HINT: e.g. %s", opt, s,
                               integral ? "integers" : "numbers", lo, hi, integral ? "1024,2048,4096" : "0,0.25,0.5,0.75,1");
        if (*n >= cap) return cpt_err_set(err, CPT_EINVAL, "%s: at most %d values", opt, cap);
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
    }
    if (!*n) return cpt_err_set(err, CPT_EINVAL, "%s: empty list", opt);
    return CPT_OK;
}

int cpt_cli_set_precision(cpt_model *m, const char *precision, const char *what, FILE *log, cpt_err *err) {
    if (!precision || !strcmp(precision, "fp32")) return CPT_OK;
    if (strcmp(precision, "bf16"))
        return cpt_err_set(err, CPT_EINVAL, "precision '%s': use fp32 or bf16", precision);
    /* bf16 products where the CPU has them (AMX, AVX512-BF16); emulated bf16 on plain AVX-512
     * is slower than fp32, so there (and without a kernel) the run stays fp32 */
    int isa = cpt_cpu_bf16_isa(), cpu = !strcmp(m->be->name, "cpu");
    if (!m->be->supports("linear_bf16") || (cpu && isa < CPT_BF16_ISA_AVX512_BF16)) {
        if (log)
            fprintf(log, "precision bf16: no bf16 dot-product kernel here (CPU: %s; bf16 runs on AMX or AVX512-BF16 with cpt built with oneDNN): %s in fp32\n",
                    cpt_bf16_isa_name(isa), what);
        return CPT_OK;
    }
    int rc = cpt_model_set_precision(m, CPT_PREC_BF16, err);
    if (!rc && log)
        fprintf(log, "precision: bf16 products of the decoder's linears, the LM head (%s, oneDNN) and attention's tiles, fp32 everything else (%s); bf16 weight copy %.1f MiB\n",
                cpu ? cpt_bf16_isa_name(isa) : m->be->name,
                !strcmp(what, "training") ? "master weights, gradients, AdamW, norms, softmax, accumulation" : "norms, softmax, accumulation, decoding's attention",
                (double)cpt_model_lowp_bytes(m) / 1048576.0);
    return rc;
}
