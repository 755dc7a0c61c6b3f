/* memplan.c: the memory plan of cpt/memplan.h (terms from the allocators' own size
 * functions), the process's resident set and the memory it may use; not the CLI's
 * printing or the refusal policy (src/cli/cmd_train.c). */
#define _GNU_SOURCE
#include "cpt/memplan.h"
#include "cpt/cp.h"

#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/lora.h"
#include "cpt/optim.h"
#include "cpt/regularize.h"
#include "cpt/train.h"

static const char *const keys[CPT_MEM_N_TERMS] = {
    "weights", "gradients", "adamw", "l2_base", "ewc", "activations", "rope", "data", "eval", "resume", "ewc_estimate", "process",
};
static const char *const labels[CPT_MEM_N_TERMS] = {
    "weights (fp32)",
    "gradients",
    "AdamW moments (m, v)",
    "L2-SP base weights",
    "EWC Fisher + base weights",
    "activations + scratch",
    "RoPE tables",
    "data loader buffers",
    "eval activations (transient)",
    "resume / ZeRO-1 save (transient)",
    "EWC Fisher load / estimation (transient)",
    "process (measured)",
};

const char *cpt_memplan_key(int t) { return t >= 0 && t < CPT_MEM_N_TERMS ? keys[t] : "?"; }
const char *cpt_memplan_label(int t) { return t >= 0 && t < CPT_MEM_N_TERMS ? labels[t] : "?"; }

static const char *recompute_name(int r) {
    return r == CPT_RECOMPUTE_FULL ? "full" : r == CPT_RECOMPUTE_SELECTIVE ? "selective" : "none";
}

static size_t sat_sum(const size_t *t, const int *idx, int n) {
    size_t s = 0;
    for (int i = 0; i < n; i++)
        if (!cpt_add_size(s, t[idx[i]], &s)) return SIZE_MAX;
    return s;
}

int cpt_memplan_make(const cpt_model *m, const cpt_memplan_in *in, cpt_memplan *p, cpt_err *err) {
    memset(p, 0, sizeof *p);
    int B = in->micro_batch, T = in->seq_len, A = in->grad_accum;
    if (B <= 0 || T <= 1 || A <= 0 || in->recompute < 0 || in->recompute > CPT_RECOMPUTE_SELECTIVE)
        return cpt_err_set(err, CPT_EINVAL, "memory plan: micro_batch %d, seq_len %d, grad_accum %d, recompute %d out of range", B, T,
                           A, in->recompute);
    /* P: what is trained (gradients, moments, regularizer copies): the model, or the
     * attached LoRA adapter's parameter set, whose weights come on top of the model's */
    const cpt_model *P = m->lora ? m->lora->pm : in->trained ? in->trained : m;
    int lr = m->lora ? m->lora->cfg.rank : 0;
    p->n_params = m->n_params;
    p->n_trainable = m->lora ? cpt_lora_n_trainable(m->lora) : P->n_params;
    p->lora = m->lora != NULL;
    p->micro_batch = B, p->seq_len = T, p->grad_accum = A, p->recompute = in->recompute;
    p->threads = omp_get_max_threads();
    size_t *t = p->term;
    t[CPT_MEM_WEIGHTS] = cpt_model_buffer_bytes(m);
    if (m->lora && !cpt_add_size(t[CPT_MEM_WEIGHTS], cpt_model_buffer_bytes(P), &t[CPT_MEM_WEIGHTS])) t[CPT_MEM_WEIGHTS] = SIZE_MAX;
    if (m->lowp && !cpt_add_size(t[CPT_MEM_WEIGHTS], cpt_model_lowp_bytes(m), &t[CPT_MEM_WEIGHTS])) t[CPT_MEM_WEIGHTS] = SIZE_MAX;
    t[CPT_MEM_GRADS] = cpt_model_buffer_bytes(P);
    t[CPT_MEM_ADAMW] = in->zero_ranks > 1 ? cpt_adamw_state_bytes_sharded(P, in->zero_ranks) : cpt_adamw_state_bytes(P);
    t[CPT_MEM_L2_BASE] = in->l2_base ? cpt_model_buffer_bytes(P) : 0;
    t[CPT_MEM_EWC] = in->ewc ? cpt_ewc_state_bytes(m->lora ? P : m) : 0; /* the whole model's Fisher with a view */
    int K = in->context_parallel > 1 ? in->context_parallel : 1;
    if (T % K) return cpt_err_set(err, CPT_EINVAL, "memory plan: seq_len %d is not a multiple of the context-parallel size %d", T, K);
    int rc = cpt_acts_plan_bytes(&m->cfg, B, T / K, 1, in->recompute, lr, m->lowp != NULL, &t[CPT_MEM_ACTS]);
    if (!rc && K > 1) { /* the ring's buffers and the local micro-batch (ids, targets, positions, documents) */
        size_t ring = cpt_cp_plan_bytes(B, T / K, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim);
        if (!cpt_add_size(t[CPT_MEM_ACTS], ring + 16 * (size_t)B * (size_t)(T / K), &t[CPT_MEM_ACTS])) rc = CPT_ENOMEM;
    }
    if (!rc && in->n_evals > 0) rc = cpt_eval_plan_bytes(&m->cfg, B, T, lr, m->lowp != NULL, &t[CPT_MEM_EVAL]);
    if (!rc && in->eval_long_len > 0) { /* eval.long: one prompt at a time, transient like eval */
        size_t el = 0;
        rc = cpt_acts_plan_bytes(&m->cfg, 1, in->eval_long_len, 0, CPT_RECOMPUTE_NONE, lr, m->lowp != NULL, &el);
        if (!rc && (!cpt_add_size(el, cpt_kvcache_plan_bytes(m, in->eval_long_len), &el) ||
                    !cpt_add_size(el, sizeof(float) * (size_t)m->cfg.vocab_size, &el)))
            rc = CPT_ENOMEM;
        if (!rc && el > t[CPT_MEM_EVAL]) t[CPT_MEM_EVAL] = el;
    }
    if (rc == CPT_ENOMEM)
        return cpt_err_set(err, CPT_ENOMEM,
                           "memory plan: the activations for micro-batch %d x %d tokens overflow the address space. "
                           "HINT: set training.recompute: full, a smaller training.micro_batch or a shorter training.seq_len",
                           B, T);
    if (rc) return cpt_err_set(err, rc, "memory plan: bad activation sizes (micro-batch %d x %d)", B, T);
    /* The backend's tables and the host tables they are built in and copied from (freed
     * after the copy, but on a host backend their heap pages stay resident). */
    t[CPT_MEM_ROPE] = 2 * cpt_model_rope_bytes(&m->cfg, T);
    t[CPT_MEM_DATA] = cpt_train_batch_bytes(B, T, A);
    t[CPT_MEM_RESUME] = in->resume_bytes;
    if (in->zero_ranks > 1 && in->resume_bytes) {
        /* a slice is read one tensor (or one saved shard) at a time: a transient of the
         * largest tensor, or of a shard of the most ranks' worth it could come from */
        size_t big = 0;
        for (int i = 0; i < P->n_tensors; i++)
            if (P->tensors[i].numel > big) big = P->tensors[i].numel;
        size_t sh = P->n_params / (size_t)in->zero_ranks + 1;
        if (!cpt_add_size(t[CPT_MEM_RESUME], sizeof(float) * (big > sh ? big : sh), &t[CPT_MEM_RESUME])) t[CPT_MEM_RESUME] = SIZE_MAX;
    }
    /* ZeRO-1 with a consolidated save: rank 0 gathers the whole state for every save, m
     * into the idle gradient buffer, v into a transient */
    if (in->zero_ranks > 1 && !in->sharded_ckpt && t[CPT_MEM_RESUME] < cpt_model_buffer_bytes(P))
        t[CPT_MEM_RESUME] = cpt_model_buffer_bytes(P);
    t[CPT_MEM_EWC_ESTIMATE] = in->ewc_estimate_bytes;
    t[CPT_MEM_PROCESS] = in->process_bytes;
    /* Sums saturate at SIZE_MAX: a plan that large is refused, never wrapped. */
    size_t fixed = sat_sum(t, (const int[]){CPT_MEM_WEIGHTS, CPT_MEM_L2_BASE, CPT_MEM_EWC, CPT_MEM_ROPE, CPT_MEM_PROCESS}, 5);
    size_t train = sat_sum(t, (const int[]){CPT_MEM_GRADS, CPT_MEM_ADAMW, CPT_MEM_ACTS, CPT_MEM_DATA}, 4);
    size_t tr = t[CPT_MEM_EVAL] > t[CPT_MEM_RESUME] ? t[CPT_MEM_EVAL] : t[CPT_MEM_RESUME];
    if (!cpt_add_size(train, tr, &train)) train = SIZE_MAX;
    if (t[CPT_MEM_EWC_ESTIMATE] > train) train = t[CPT_MEM_EWC_ESTIMATE];
    if (!cpt_add_size(fixed, train, &p->total)) p->total = SIZE_MAX;
    return CPT_OK;
}

/* ---------------- what the process holds and may use ---------------- */

/* The value in kB of "Key:" in a /proc file of "Key:   123 kB" lines, as bytes. */
static int proc_kb(const char *path, const char *key, size_t *bytes) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t kl = strlen(key);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            unsigned long long kb = strtoull(line + kl + 1, NULL, 10);
            *bytes = (size_t)kb * 1024;
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

int cpt_mem_rss(size_t *rss, size_t *hwm, cpt_err *err) {
    size_t r = 0, h = 0;
    if (!proc_kb("/proc/self/status", "VmRSS", &r) || !proc_kb("/proc/self/status", "VmHWM", &h))
        return cpt_err_set(err, CPT_EIO, "/proc/self/status: cannot read VmRSS / VmHWM (the memory plan needs Linux's /proc)");
    if (rss) *rss = r;
    if (hwm) *hwm = h;
    return CPT_OK;
}

int cpt_memplan_process_bytes(size_t resident_planned, size_t *bytes, cpt_err *err) {
    size_t r = 0;
    int rc = cpt_mem_rss(&r, NULL, err);
    if (rc) return rc;
    *bytes = r > resident_planned ? r - resident_planned : 0;
    return CPT_OK;
}

/* A cgroup limit file: "max" (v2) or a huge number (v1 "unlimited") is no limit. */
static int read_limit(const char *path, size_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[64] = {0};
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok || !strncmp(buf, "max", 3)) return 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || v >= (1ull << 60)) return 0;
    *out = (size_t)v;
    return 1;
}

/* The smallest limit in `file` from <root><path> up to <root> (a limit on any ancestor
 * applies too). Inside a cgroup namespace the path may not exist under root; then the
 * walk reaches the root, which is the namespace's own cgroup. */
static int cgroup_walk(const char *root, const char *path, const char *file, size_t *lim, char *where, size_t wn) {
    char dir[1024], f[1100];
    snprintf(dir, sizeof dir, "%s%s", root, path);
    int found = 0;
    for (;;) {
        size_t l;
        snprintf(f, sizeof f, "%s/%s", dir, file);
        if (read_limit(f, &l) && (!found || l < *lim)) {
            *lim = l, found = 1;
            if (where) snprintf(where, wn, "%s", f);
        }
        if (strlen(dir) <= strlen(root)) break;
        char *slash = strrchr(dir, '/');
        if (!slash || slash < dir + strlen(root)) break;
        *slash = 0;
    }
    return found;
}

static int cgroup_limit(size_t *lim, char *where, size_t wn) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof line, f) && !found) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2) continue;
        *c2 = 0;
        const char *ctrl = c1 + 1, *path = c2 + 1;
        if (!strcmp(path, "/")) path = "";
        if (!strcmp(line, "0") && !*ctrl) /* v2 unified hierarchy */
            found = cgroup_walk("/sys/fs/cgroup", path, "memory.max", lim, where, wn);
        else {
            char cl[256];
            snprintf(cl, sizeof cl, ",%s,", ctrl);
            if (strstr(cl, ",memory,"))
                found = cgroup_walk("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes", lim, where, wn);
        }
    }
    fclose(f);
    return found;
}

int cpt_mem_available(size_t *bytes, char *source, size_t source_len, cpt_err *err) {
    size_t avail = 0, rss = 0, lim = 0;
    char where[1100] = "";
    int have_mi = proc_kb("/proc/meminfo", "MemAvailable", &avail);
    int have_cg = cgroup_limit(&lim, where, sizeof where);
    if (!have_mi && !have_cg)
        return cpt_err_set(err, CPT_EIO, "cannot tell how much memory is available: /proc/meminfo has no MemAvailable and no cgroup "
                                         "memory limit is readable. HINT: set training.memory_check: false to skip the check");
    cpt_mem_rss(&rss, NULL, NULL); /* 0 if unreadable: then the estimate is only conservative */
    size_t a = avail + rss;
    if (have_mi && (!have_cg || a <= lim)) {
        if (source) snprintf(source, source_len, "MemAvailable %.2f GiB + this process's resident %.2f GiB", (double)avail / 1073741824.0,
                             (double)rss / 1073741824.0);
    } else {
        a = lim;
        if (source) snprintf(source, source_len, "cgroup limit %s", where);
    }
    *bytes = a;
    return CPT_OK;
}

/* ---------------- the refusal, the table, the JSON ---------------- */

int cpt_memplan_check(const cpt_memplan *p, size_t available, const char *source, cpt_err *err) {
    if (p->total <= available) return CPT_OK;
    /* The two largest terms tell the user what to shrink. */
    int a = -1, b = -1;
    for (int i = 0; i < CPT_MEM_N_TERMS; i++) {
        if (a < 0 || p->term[i] > p->term[a]) b = a, a = i;
        else if (b < 0 || p->term[i] > p->term[b]) b = i;
    }
    return cpt_err_set(err, CPT_ENOMEM,
                       "memory plan: the run needs %zu bytes (%.2f GiB) but %zu bytes (%.2f GiB) are available (%s); largest: %s %.2f GiB, "
                       "%s %.2f GiB. HINT: set training.recompute: full (now %s), a smaller training.micro_batch (now %d) or a shorter "
                       "training.seq_len (now %d); training.memory_check: false runs anyway",
                       p->total, (double)p->total / 1073741824.0, available, (double)available / 1073741824.0, source ? source : "?",
                       labels[a], (double)p->term[a] / 1073741824.0, labels[b], (double)p->term[b] / 1073741824.0,
                       recompute_name(p->recompute), p->micro_batch, p->seq_len);
}

static void human(char *buf, size_t n, size_t bytes) {
    if (bytes >= ((size_t)10 << 30)) snprintf(buf, n, "%.2f GiB", (double)bytes / 1073741824.0);
    else snprintf(buf, n, "%.1f MiB", (double)bytes / 1048576.0);
}

char *cpt_memplan_table(const cpt_memplan *p, size_t available, const char *source) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    char h[32];
    fprintf(f, "memory plan: micro-batch %d x %d tokens, grad_accum %d, recompute %s, %d threads, %zu parameters", p->micro_batch,
            p->seq_len, p->grad_accum, recompute_name(p->recompute), p->threads, p->n_params);
    if (p->n_trainable != p->n_params) fprintf(f, " (%zu trained%s)", p->n_trainable, p->lora ? ": LoRA" : ": the range of the unfrozen tensors");
    fputc('\n', f);
    for (int i = 0; i < CPT_MEM_N_TERMS; i++) {
        human(h, sizeof h, p->term[i]);
        fprintf(f, "  %-42s %12s %16zu bytes\n", labels[i], h, p->term[i]);
    }
    human(h, sizeof h, p->total);
    fprintf(f, "  %-42s %12s %16zu bytes\n", "total (peak)", h, p->total);
    if (available > 0) {
        human(h, sizeof h, available);
        fprintf(f, "  %-42s %12s %16zu bytes  (%s)\n", "available", h, available, source ? source : "?");
        fprintf(f, "  %s\n", p->total <= available ? "fits" : "DOES NOT FIT");
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *cpt_memplan_json(const cpt_memplan *p, size_t available, const char *source, size_t measured_peak) {
    json_t *o = json_object(), *terms = json_object();
    if (!o || !terms) {
        json_decref(o), json_decref(terms);
        return NULL;
    }
    json_object_set_new(o, "format", json_string("cpt-memory-plan"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "micro_batch", json_integer(p->micro_batch));
    json_object_set_new(o, "seq_len", json_integer(p->seq_len));
    json_object_set_new(o, "grad_accum", json_integer(p->grad_accum));
    json_object_set_new(o, "recompute", json_string(recompute_name(p->recompute)));
    json_object_set_new(o, "threads", json_integer(p->threads));
    json_object_set_new(o, "n_params", json_integer((json_int_t)p->n_params));
    json_object_set_new(o, "n_trainable", json_integer((json_int_t)p->n_trainable));
    for (int i = 0; i < CPT_MEM_N_TERMS; i++) json_object_set_new(terms, keys[i], json_integer((json_int_t)p->term[i]));
    json_object_set_new(o, "bytes", terms);
    json_object_set_new(o, "total", json_integer((json_int_t)p->total));
    if (available > 0) {
        json_object_set_new(o, "available", json_integer((json_int_t)available));
        json_object_set_new(o, "available_source", json_string(source ? source : ""));
        json_object_set_new(o, "fits", json_boolean(p->total <= available));
    }
    if (measured_peak > 0) json_object_set_new(o, "measured_peak_rss", json_integer((json_int_t)measured_peak));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
