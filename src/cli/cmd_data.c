/* cmd_data.c: `cpt data prepare` (corpus -> token shards, with progress and a summary) and
 * `cpt data inspect` (a shard's header, stats and decoded documents); no pipeline logic here. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/chat.h"
#include "cpt/fileio.h"
#include "cpt/prepare.h"
#include "cpt/shard.h"
#include "cpt/tokenizer.h"

/* ---- multi-valued options ----
 * `--input A B C` and `--decontaminate X Y`: every argument after the option up to the
 * next one starting with "--" is a value, and the option may repeat. They are collected
 * here and replaced by one `--opt=first` so the table still drives --help, `required` and
 * unknown-option errors. */
typedef struct multi {
    const char *name;
    const char **v;
    size_t n;
} multi;

static int collect_multi(multi *m, size_t nm, int argc, char **argv, char **out, int *out_argc) {
    int k = 0;
    for (int i = 0; i < argc; i++) {
        multi *hit = NULL;
        for (size_t j = 0; j < nm; j++)
            if (!strcmp(argv[i], m[j].name)) hit = &m[j];
        if (!hit || i == 0) {
            out[k++] = argv[i];
            continue;
        }
        int first = 1;
        while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            hit->v[hit->n++] = argv[++i];
            if (first) {
                out[k++] = argv[i - 1]; /* the option name ... */
                out[k++] = argv[i];     /* ... and its first value, for the table parser */
                first = 0;
            }
        }
        if (first) out[k++] = argv[i]; /* no value: let the parser report it */
    }
    *out_argc = k;
    return 0;
}

/* ---- progress: a bar with MB/s and ETA on a terminal, plain lines otherwise ---- */
typedef struct progress {
    int tty;
    double t0, last, pass_t0;
    int pass;
    int last_pct;
} progress;

static void fmt_eta(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 360000) {
        snprintf(b, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(void *user, const cpt_prepare_progress *p) {
    progress *pr = user;
    double now = cpt_now();
    if (p->pass != pr->pass) {
        pr->pass = p->pass;
        pr->pass_t0 = now;
        pr->last_pct = -1;
    }
    int done = p->bytes_done >= p->bytes_total;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    int pct = (int)(frac * 100);
    if (!done && (pr->tty ? now - pr->last < 0.1 : pct / 10 == pr->last_pct / 10 && now - pr->last < 10)) return;
    pr->last = now;
    pr->last_pct = pct;
    double dt = now - pr->pass_t0;
    double mbs = dt > 0 ? (double)p->bytes_done / 1e6 / dt : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, done ? 0 : frac > 0 && dt > 0 ? dt * (1 - frac) / frac : -1);
    const char *what = p->pass == 1 ? "clean+dedup" : "tokenize   ";
    if (pr->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%d/2 %s] [%s] %5.1f%% %8.1f MB/s ETA %s %llu docs ", p->pass, what, bar, frac * 100, mbs,
                eta, (unsigned long long)p->docs);
        if (done) fputc('\n', stderr);
    } else {
        fprintf(stderr, "[%d/2 %s] %5.1f%% %.1f MB/s ETA %s %llu docs\n", p->pass, what, frac * 100, mbs, eta,
                (unsigned long long)p->docs);
    }
    fflush(stderr);
}

static void summary(const cpt_prepare_stats *st, const char *out_dir) {
    double dt = st->seconds > 0 ? st->seconds : 1e-9;
#define ROW(name, v) printf("  %-22s %14llu\n", name, (unsigned long long)(v))
    printf("cpt data prepare: %s\n", out_dir);
    ROW("files", st->files);
    ROW("empty files", st->empty_files);
    ROW("documents in", st->docs_in);
    ROW("  malformed", st->malformed);
    for (int k = 0; k < CPT_PREP_N_REASONS; k++)
        if (st->malformed_by[k]) printf("    %-20s %14llu\n", cpt_prepare_reason_name(k), (unsigned long long)st->malformed_by[k]);
    ROW("  filtered", st->filtered);
    for (int r = 1; r < CPT_FR_N_RULES; r++)
        if (st->filter.dropped[r]) printf("    %-20s %14llu\n", cpt_filter_rule_name(r), (unsigned long long)st->filter.dropped[r]);
    ROW("  exact duplicates", st->exact_duplicates);
    if (st->too_short) ROW("  too short", st->too_short);
    if (st->too_long) ROW("  too long", st->too_long);
    ROW("  contaminated", st->contaminated);
    ROW("  near duplicates", st->near_duplicates);
    ROW("  kept", st->kept);
    for (int k = 1; k < CPT_KIND_N; k++)
        if (st->docs_by_kind[k]) printf("  kind %-17s %14llu\n", cpt_filter_kind_name(k), (unsigned long long)st->docs_by_kind[k]);
    if (st->filter.by_script[CPT_SCRIPT_NOSPACE]) ROW("script no-space", st->filter.by_script[CPT_SCRIPT_NOSPACE]);
    if (st->filter.by_script[CPT_SCRIPT_OTHER]) ROW("script other", st->filter.by_script[CPT_SCRIPT_OTHER]);
    ROW("train documents", st->train_docs);
    ROW("train tokens", st->train_tokens);
    ROW("train shards", st->train_shards);
    ROW("val documents", st->val_docs);
    ROW("val tokens", st->val_tokens);
    ROW("val shards", st->val_shards);
    printf("  %-22s", "documents by tokens");
    for (int k = 0; k < CPT_PREPARE_N_LENGTHS; k++)
        printf(" %s: %llu", cpt_prepare_length_name(k), (unsigned long long)st->docs_by_length[k]);
    putchar('\n');
#undef ROW
    printf("  %-22s %14.2f s  (%.2f MB/s, %.0f tokens/s)\n", "time", st->seconds, (double)st->bytes_in / 1e6 / dt,
           (double)(st->train_tokens + st->val_tokens) / dt);
}

static int cmd_prepare(int argc, char **argv) {
    const char *tok = NULL, *input = NULL, *out = NULL, *field = "text", *txt_docs = "file", *decon = NULL,
               *kind = "auto";
    int nfc = 0, no_nfc = 0, no_filters = 0, no_rep = 0, no_qual = 0, no_c4 = 0, no_dedup = 0, no_exact = 0,
        no_near = 0, strict = 0, quiet = 0, chat = 0;
    const char *chat_tpl = NULL;
    long long bands = 14, rows = 8, ngram = 5, decon_ngram = 13, val_docs = 0, shard_tokens = 1ll << 30, seed = 1,
              threads = 0, min_doc_tokens = 0, max_doc_tokens = 0, rep_window = 10000;
    double val_fraction = 0.005;
    cpt_opt opts[] = {
        {"--tokenizer", CPT_OPT_STR, &tok, "PATH", "tokenizer.json or a model directory holding one", 1, 0, 0, NULL, 0},
        {"--input", CPT_OPT_STR, &input, "PATH...", "corpus files, directories (recursive) or quoted globs; repeatable", 1, 0, 0, NULL, 0},
        {"--out", CPT_OPT_STR, &out, "DIR", "output directory (train-*.shard, val-*.shard, stats.json)", 1, 0, 0, NULL, 0},
        {"--text-field", CPT_OPT_STR, &field, "NAME", "the string field holding a .jsonl document", 0, 0, 0, NULL, 0},
        {"--txt-docs", CPT_OPT_CHOICE, &txt_docs, NULL, "text files: one document per file, or split at blank lines", 0, 0, 0, "file|blank", 0},
        {"--kind", CPT_OPT_CHOICE, &kind, NULL, "which filters apply: web (Gopher + C4), book (Gopher, no C4 line rewriting), code (dedup only); auto: code by extension, book for a whole text file or a document >= 100000 bytes, else web", 0, 0, 0, "auto|web|book|code", 0},
        {"--min-doc-tokens", CPT_OPT_INT, &min_doc_tokens, "N", "drop documents of fewer than N tokens (0 = no limit; long-context sources)", 0, 0, 1e15, NULL, 0},
        {"--max-doc-tokens", CPT_OPT_INT, &max_doc_tokens, "N", "drop documents of more than N tokens (0 = no limit)", 0, 0, 1e15, NULL, 0},
        {"--nfc", CPT_OPT_FLAG, &nfc, NULL, "NFC-normalise the text first (the default)", 0, 0, 0, NULL, 0},
        {"--no-nfc", CPT_OPT_FLAG, &no_nfc, NULL, "keep the text's normalisation form", 0, 0, 0, NULL, 0},
        {"--no-filters", CPT_OPT_FLAG, &no_filters, NULL, "no quality filter at all", 0, 0, 0, NULL, 0},
        {"--no-gopher-repetition", CPT_OPT_FLAG, &no_rep, NULL, "skip the Gopher repetition filters", 0, 0, 0, NULL, 0},
        {"--no-gopher-quality", CPT_OPT_FLAG, &no_qual, NULL, "skip the Gopher quality filters", 0, 0, 0, NULL, 0},
        {"--repetition-window", CPT_OPT_INT, &rep_window, "WORDS", "Gopher repetition rules over windows of this many words in longer documents (0 = the whole document)", 0, 0, 1e12, NULL, 0},
        {"--no-c4", CPT_OPT_FLAG, &no_c4, NULL, "skip the C4 filters (and their line rewriting)", 0, 0, 0, NULL, 0},
        {"--no-dedup", CPT_OPT_FLAG, &no_dedup, NULL, "neither exact nor near deduplication", 0, 0, 0, NULL, 0},
        {"--no-exact-dedup", CPT_OPT_FLAG, &no_exact, NULL, "keep exact duplicates", 0, 0, 0, NULL, 0},
        {"--no-near-dedup", CPT_OPT_FLAG, &no_near, NULL, "skip MinHash near deduplication", 0, 0, 0, NULL, 0},
        {"--minhash-bands", CPT_OPT_INT, &bands, "B", "LSH bands", 0, 1, 1024, NULL, 0},
        {"--minhash-rows", CPT_OPT_INT, &rows, "R", "rows (hashes) per band", 0, 1, 1024, NULL, 0},
        {"--minhash-ngram", CPT_OPT_INT, &ngram, "N", "words per shingle", 0, 1, 64, NULL, 0},
        {"--decontaminate", CPT_OPT_STR, &decon, "FILE...", "evaluation files (.txt lines / .jsonl); documents sharing an n-gram are dropped", 0, 0, 0, NULL, 0},
        {"--decon-ngram", CPT_OPT_INT, &decon_ngram, "N", "words per decontamination n-gram", 0, 1, 64, NULL, 0},
        {"--val-fraction", CPT_OPT_FLOAT, &val_fraction, "F", "fraction of kept documents for validation", 0, 0, 0.999999, NULL, 0},
        {"--val-docs", CPT_OPT_INT, &val_docs, "N", "exactly N validation documents (overrides --val-fraction; 0: none, every document trains)", 0, 0, 1e15, NULL, 0},
        {"--shard-tokens", CPT_OPT_INT, &shard_tokens, "N", "start a new shard after N tokens", 0, 1, 1e15, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "seed of the validation split", 0, 0, 9.2e18, NULL, 0},
        {"--threads", CPT_OPT_INT, &threads, "N", "worker threads (0 = all cores)", 0, 0, 1024, NULL, 0},
        {"--chat", CPT_OPT_FLAG, &chat, NULL, "inputs are .jsonl conversations (messages or prompt/response): chat template + loss mask; no NFC, no quality filters", 0, 0, 0, NULL, 0},
        {"--chat-template", CPT_OPT_STR, &chat_tpl, "FILE", "with --chat: a Jinja template instead of tokenizer_config.json's", 0, 0, 0, NULL, 0},
        {"--strict", CPT_OPT_FLAG, &strict, NULL, "malformed JSON, a missing field or invalid UTF-8 is an error (file:line)", 0, 0, 0, NULL, 0},
        {"--quiet", CPT_OPT_FLAG, &quiet, NULL, "no progress output", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"data prepare",
                         "Clean, filter, deduplicate, decontaminate and tokenize a corpus into token shards.",
                         "Inputs: *.jsonl (one object per line) and text files, each optionally .gz or .zst.\n"
                         "Every dropped document is counted in DIR/stats.json; the first malformed ones are\n"
                         "listed there and on stderr by file and line. A run that keeps nothing fails and\n"
                         "names the rule that removed the most documents and the option that turns it off.\n"
                         "Order: exact dedup (of the text as read), quality filters (by --kind and by script:\n"
                         "CJK, kana, Hangul and Thai text skips the word rules, non-Latin text the English\n"
                         "stop-word and C4 punctuation rules), decontamination, near dedup, token length.\n"
                         "Gopher's 100000-word upper limit is off (books are longer), and its repetition\n"
                         "rules see a long document in windows of --repetition-window words. A source with\n"
                         "its own filter settings is its own prepare run (a recipe source is one output DIR).\n"
                         "--chat: each .jsonl line is {\"messages\": [{\"role\", \"content\"}, ...]} or\n"
                         "{\"prompt\", \"response\"}, rendered with the chat template; only assistant content and\n"
                         "its end-of-turn token carry loss. NFC and quality filters do not apply to chat data;\n"
                         "exact dedup uses the rendered text, near dedup and decontamination the contents.\n"
                         "Malformed conversations are counted (bad_json, bad_conversation, template_error).",
                         opts, CPT_NOPTS(opts), NULL, NULL};
    char **av = malloc(sizeof(char *) * (size_t)(argc + 1));
    const char **inputs = malloc(sizeof(char *) * (size_t)(argc + 1));
    const char **evals = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!av || !inputs || !evals) {
        free(av);
        free(inputs);
        free(evals);
        fprintf(stderr, "cpt data prepare: out of memory\n");
        return 1;
    }
    multi m[2] = {{"--input", inputs, 0}, {"--decontaminate", evals, 0}};
    int ac = 0;
    collect_multi(m, 2, argc, argv, av, &ac);
    int prc = cpt_opts_parse(&spec, ac, av);
    if (!prc && chat_tpl && !chat) {
        fprintf(stderr, "cpt data prepare: --chat-template needs --chat\n");
        prc = 2;
    }
    if (!prc && nfc && no_nfc) {
        fprintf(stderr, "cpt data prepare: --nfc and --no-nfc contradict each other\n");
        prc = 2;
    }
    /* `--input=X` (with '=') bypasses collect_multi: take it from the table */
    if (!prc && m[0].n == 0 && input) inputs[m[0].n++] = input;
    if (!prc && m[1].n == 0 && decon) evals[m[1].n++] = decon;
    char **files = NULL;
    size_t n_files = 0;
    cpt_err err = {0};
    int rc = 0;
    if (prc) {
        rc = prc == 1 ? 0 : 2;
        goto out;
    }
    if ((rc = cpt_prepare_expand_inputs(inputs, m[0].n, &files, &n_files, &err))) {
        rc = cpt_cli_fail("data prepare", &err);
        goto out;
    }
    cpt_prepare_cfg cfg;
    cpt_prepare_cfg_default(&cfg);
    cfg.inputs = (const char *const *)files;
    cfg.n_inputs = n_files;
    cfg.text_field = field;
    cfg.tokenizer = tok;
    cfg.out_dir = out;
    cfg.nfc = !no_nfc;
    cfg.filters = !no_filters;
    cfg.filter.gopher_repetition = !no_rep;
    cfg.filter.gopher_quality = !no_qual;
    cfg.filter.c4 = !no_c4;
    cfg.filter.rep_window_words = (double)rep_window;
    cfg.exact_dedup = !(no_dedup || no_exact);
    cfg.near_dedup = !(no_dedup || no_near);
    cfg.minhash.bands = (uint32_t)bands;
    cfg.minhash.rows = (uint32_t)rows;
    cfg.minhash.ngram = (uint32_t)ngram;
    cfg.eval_files = evals;
    cfg.n_eval = m[1].n;
    cfg.decon_ngram = (uint32_t)decon_ngram;
    cfg.val_fraction = val_fraction;
    cfg.val_docs = (uint64_t)val_docs;
    for (size_t i = 0; i < CPT_NOPTS(opts); i++) /* an explicit --val-docs 0: no validation split at all */
        if (!strcmp(opts[i].name, "--val-docs") && opts[i].seen && val_docs == 0) cfg.val_fraction = 0;
    cfg.shard_tokens = (uint64_t)shard_tokens;
    cfg.seed = (uint64_t)seed;
    cfg.threads = (int)threads;
    cfg.txt_blank = !strcmp(txt_docs, "blank");
    cfg.kind = cpt_filter_kind_parse(kind);
    cfg.min_doc_tokens = (uint64_t)min_doc_tokens;
    cfg.max_doc_tokens = (uint64_t)max_doc_tokens;
    if (max_doc_tokens && min_doc_tokens > max_doc_tokens) {
        fprintf(stderr, "cpt data prepare: --min-doc-tokens %lld is above --max-doc-tokens %lld\nHINT: swap them\n",
                min_doc_tokens, max_doc_tokens);
        rc = 2;
        goto out;
    }
    cfg.strict = strict;
    cfg.chat = chat;
    cfg.chat_template = chat_tpl;
    progress pr = {isatty(2), cpt_now(), 0, 0, 0, -1};
    if (!quiet) {
        cfg.progress = on_progress;
        cfg.progress_user = &pr;
    }
    cpt_prepare_stats st;
    rc = cpt_prepare_run(&cfg, &st, &err);
    if (pr.tty && pr.pass && rc) fputc('\n', stderr);
    if (rc) {
        rc = cpt_cli_fail("data prepare", &err);
        goto out;
    }
    for (size_t i = 0; i < st.n_issues; i++)
        fprintf(stderr, "cpt data prepare: warning: %s:%llu: %s (skipped)\n", files[st.issues[i].file],
                (unsigned long long)st.issues[i].line, cpt_prepare_reason_name(st.issues[i].reason));
    if (st.malformed > st.n_issues)
        fprintf(stderr, "cpt data prepare: warning: %llu more malformed documents (counts by reason in %s/stats.json)\n",
                (unsigned long long)(st.malformed - st.n_issues), out);
    summary(&st, out);
out:
    cpt_prepare_free_inputs(files, n_files);
    free(av);
    free(inputs);
    free(evals);
    return rc;
}

/* Print up to `max` bytes of text with control characters escaped, on one line. */
static void print_escaped(const char *s, size_t n, size_t max) {
    putchar('"');
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (n > max) printf("... (%zu bytes)", n);
    putchar('\n');
}

static int inspect_one(const char *path, const cpt_tok *tok, long long ndocs, cpt_err *err) {
    cpt_shard *s = NULL;
    int rc = cpt_shard_open(&s, path, err);
    if (rc) return rc;
    uint64_t nd = cpt_shard_n_docs(s), nt = cpt_shard_n_tokens(s);
    uint64_t mn = UINT64_MAX, mx = 0;
    for (uint64_t i = 0; i < nd; i++) {
        uint64_t a, n;
        cpt_shard_doc_range(s, i, &a, &n);
        if (n < mn) mn = n;
        if (n > mx) mx = n;
    }
    printf("shard: %s\n", path);
    printf("  format: %s v%u, token_bytes %u, vocab_size %u\n", CPT_SHARD_MAGIC, cpt_shard_version(s),
           cpt_shard_token_bytes(s), cpt_shard_vocab_size(s));
    printf("  docs: %llu  tokens: %llu  doc length min/mean/max: %llu / %.1f / %llu\n", (unsigned long long)nd,
           (unsigned long long)nt, (unsigned long long)(nd ? mn : 0), nd ? (double)nt / (double)nd : 0.0,
           (unsigned long long)mx);
    if (cpt_shard_has_mask(s)) {
        uint64_t on = cpt_shard_mask_count(s);
        printf("  loss mask: %llu of %llu tokens (%.1f%%) carry loss\n", (unsigned long long)on,
               (unsigned long long)nt, nt ? 100.0 * (double)on / (double)nt : 0.0);
    }
    rc = cpt_shard_verify(s, err);
    if (rc) {
        cpt_shard_close(s);
        return rc;
    }
    printf("  verify: ok (checksum and token range)\n");
    for (uint64_t i = 0; tok && i < nd && i < (uint64_t)ndocs && !rc; i++) {
        uint64_t a, n;
        cpt_shard_doc_range(s, i, &a, &n);
        uint32_t *u = malloc((n ? n : 1) * sizeof *u);
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        char *text = NULL;
        size_t tl = 0;
        if (!u || !ids) rc = cpt_err_set(err, CPT_ENOMEM, "inspect: out of memory");
        if (!rc) {
            cpt_shard_tokens(s, a, n, u);
            for (uint64_t k = 0; k < n; k++) ids[k] = (int32_t)u[k];
            rc = cpt_tok_decode(tok, ids, n, 0, &text, &tl, err);
        }
        if (!rc) {
            printf("  doc %llu (%llu tokens): ", (unsigned long long)i, (unsigned long long)n);
            print_escaped(text, tl, 600);
        }
        free(text);
        free(u);
        free(ids);
    }
    cpt_shard_close(s);
    return rc;
}

static int cmd_inspect(int argc, char **argv) {
    const char *tok_path = NULL, *path = NULL;
    long long ndocs = 3;
    cpt_opt opts[] = {
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "decode documents back to text with this tokenizer", 0, 0, 0, NULL, 0},
        {"--docs", CPT_OPT_INT, &ndocs, "N", "documents to decode per shard", 0, 0, 1e9, NULL, 0},
    };
    cpt_cmd_spec spec = {"data inspect",
                         "Print a shard's header and statistics, verify it, and decode its first documents.",
                         "PATH is a .shard file or a directory written by `cpt data prepare` (every shard in it).",
                         opts, CPT_NOPTS(opts), "PATH", &path};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if (!path) {
        fprintf(stderr, "cpt data inspect: missing PATH (a .shard file or a prepare output directory)\nHINT: run 'cpt data inspect --help'\n");
        return 2;
    }
    cpt_err err = {0};
    cpt_tok *tok = NULL;
    int rc = tok_path ? cpt_tok_load(&tok, tok_path, &err) : 0;
    if (!rc && cpt_is_dir(path)) {
        char *stats = cpt_path_join(path, "stats.json");
        if (stats && cpt_is_file(stats)) printf("stats: %s\n", stats);
        free(stats);
        int found = 0;
        for (int split = 0; split < 2 && !rc; split++)
            for (unsigned long long k = 0; !rc; k++) {
                char name[64];
                snprintf(name, sizeof name, "%s-%05llu.shard", split ? "val" : "train", k);
                char *p = cpt_path_join(path, name);
                if (!p) {
                    rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
                    break;
                }
                int there = cpt_is_file(p);
                if (there) {
                    found++;
                    rc = inspect_one(p, tok, ndocs, &err);
                }
                free(p);
                if (!there) break;
            }
        if (!rc && !found)
            rc = cpt_err_set(&err, CPT_ENOTFOUND, "%s: no train-NNNNN.shard or val-NNNNN.shard inside. HINT: give a .shard file", path);
    } else if (!rc) {
        rc = inspect_one(path, tok, ndocs, &err);
    }
    cpt_tok_free(tok);
    return rc ? cpt_cli_fail("data inspect", &err) : 0;
}

/* `cpt data chat`: render conversations with a chat template, one JSON line each. */
static int cmd_chat(int argc, char **argv) {
    const char *tok_path = NULL, *tpl_path = NULL, *input = NULL;
    cpt_opt opts[] = {
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer (its chat_template, BOS and EOS)", 1, 0, 0, NULL, 0},
        {"--chat-template", CPT_OPT_STR, &tpl_path, "FILE", "a Jinja chat template instead of the tokenizer's", 0, 0, 0, NULL, 0},
        {"--input", CPT_OPT_STR, &input, "FILE.jsonl", "conversations: {\"messages\": [...]} or {\"prompt\", \"response\"} per line", 1, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"data chat",
                         "Render each conversation with the chat template and tokenize it; prints one JSON line per\n"
                         "input line: {\"text\", \"ids\", \"mask\"} (mask 1 = the token carries loss) or {\"error\"}.",
                         NULL, opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    cpt_err err = {0};
    cpt_tok *tok = NULL;
    cpt_chat *chat = NULL;
    char *tpl = NULL, *data = NULL;
    size_t tn = 0, dn = 0;
    int rc = cpt_tok_load(&tok, tok_path, &err);
    if (!rc && tpl_path) rc = cpt_read_file(tpl_path, &tpl, &tn, &err);
    if (!rc) rc = cpt_chat_open(&chat, tok, tpl, &err);
    if (!rc) rc = cpt_read_file(input, &data, &dn, &err);
    for (char *line = data, *nl; !rc && line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t ln = nl ? (size_t)(nl - line) : strlen(line);
        if (ln == 0) continue;
        int32_t *ids = NULL;
        uint8_t *mask = NULL;
        size_t n = 0;
        char *text = NULL;
        size_t tl = 0;
        cpt_err e = {0};
        json_t *o = json_object();
        if (cpt_chat_render(chat, line, ln, &text, &tl, &e) || cpt_chat_encode(chat, line, ln, &ids, &mask, &n, &e)) {
            json_object_set_new(o, "error", json_string(e.msg));
        } else {
            json_t *ja = json_array(), *jm = json_array();
            for (size_t k = 0; k < n; k++) {
                json_array_append_new(ja, json_integer(ids[k]));
                json_array_append_new(jm, json_integer(mask[k]));
            }
            json_object_set_new(o, "text", json_stringn(text, tl));
            json_object_set_new(o, "ids", ja);
            json_object_set_new(o, "mask", jm);
        }
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s) puts(s);
        free(s);
        json_decref(o);
        free(text);
        free(ids);
        free(mask);
    }
    free(tpl);
    free(data);
    cpt_chat_close(chat);
    cpt_tok_free(tok);
    return rc ? cpt_cli_fail("data chat", &err) : 0;
}

int cpt_cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: cpt data <subcommand> [options]\n\nsubcommands:\n"
                   "  prepare   corpus files -> cleaned, deduplicated token shards + stats.json\n"
                   "  inspect   a shard's header, statistics and decoded documents\n"
                   "  chat      render conversations with a chat template: text, tokens, loss mask\n\n"
                   "Run 'cpt data <subcommand> --help' for its options.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "prepare")) return cmd_prepare(argc - 1, argv + 1);
    if (!strcmp(argv[1], "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(argv[1], "chat")) return cmd_chat(argc - 1, argv + 1);
    fprintf(stderr, "cpt data: unknown subcommand '%s'\nHINT: run 'cpt data --help'\n", argv[1]);
    return 2;
}
