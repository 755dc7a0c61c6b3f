/* cmd_synth.c: `cpt synth qa`: synthetic question/answer pairs from documents with an
 * instruct model (cpt/synth.h), in the chat format `cpt data prepare --chat` reads;
 * `cpt synth bios`: bioS-style synthetic biographies with held-out questions (cpt/bios.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/bios.h"
#include "cpt/chat.h"
#include "cpt/fileio.h"
#include "cpt/model.h"
#include "cpt/synth.h"
#include "cpt/tokenizer.h"

static int cmd_qa(int argc, char **argv) {
    const char *model_dir = NULL, *in = NULL, *out = NULL, *types = "factual", *tmpl_path = NULL, *field = "text",
               *tok_path = NULL, *chat_path = NULL, *precision = "fp32";
    long long per_doc = 3, seed = 1, batch = 8, max_new = 256, max_doc = 1024, limit = 0;
    double temperature = 0.7, top_p = 0.9, min_support = 0.7;
    cpt_opt opts[] = {
        {"--model", CPT_OPT_STR, &model_dir, "DIR", "instruct model (Hugging Face directory with a chat template)", 1, 0, 0, NULL, 0},
        {"--input", CPT_OPT_STR, &in, "DOCS.jsonl", "documents: .jsonl (also .gz/.zst) with a text field, or a .txt file", 1, 0, 0, NULL, 0},
        {"--out", CPT_OPT_STR, &out, "QA.jsonl", "where the pairs go ({\"messages\": [...]} per line)", 1, 0, 0, NULL, 0},
        {"--field", CPT_OPT_STR, &field, "NAME", "the JSONL text field", 0, 0, 0, NULL, 0},
        {"--per-doc", CPT_OPT_INT, &per_doc, "K", "pairs asked for, and kept at most, per document and type", 0, 1, 64, NULL, 0},
        {"--types", CPT_OPT_STR, &types, "LIST", "factual, reasoning, summary, comma-separated", 0, 0, 0, NULL, 0},
        {"--templates", CPT_OPT_STR, &tmpl_path, "FILE.json", "prompt templates {\"factual\": \"... {document} ... {n} ...\"} replacing the built-in ones", 0, 0, 0, NULL, 0},
        {"--temperature", CPT_OPT_FLOAT, &temperature, "T", "sampling temperature (0: greedy; default 0.7)", 0, 0, 10, NULL, 0},
        {"--top-p", CPT_OPT_FLOAT, &top_p, "P", "nucleus sampling mass", 0, 1e-6, 1, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "sampling seed (each document and type draws its own stream)", 0, 0, 9e15, NULL, 0},
        {"--max-new", CPT_OPT_INT, &max_new, "N", "reply tokens per document and type", 0, 1, 1e6, NULL, 0},
        {"--max-doc-tokens", CPT_OPT_INT, &max_doc, "N", "cut longer documents to their first N tokens (0: never)", 0, 0, 1e9, NULL, 0},
        {"--min-support", CPT_OPT_FLOAT, &min_support, "F", "keep a pair when this fraction of its answer's content words is in the document", 0, 0, 1, NULL, 0},
        {"--batch", CPT_OPT_INT, &batch, "N", "replies generated together, one KV cache each", 0, 1, 256, NULL, 0},
        {"--limit", CPT_OPT_INT, &limit, "N", "the first N documents only (0: all)", 0, 0, 1e12, NULL, 0},
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer (default: the model directory)", 0, 0, 0, NULL, 0},
        {"--chat-template", CPT_OPT_STR, &chat_path, "FILE", "a Jinja chat template file instead of the tokenizer's", 0, 0, 0, NULL, 0},
        {"--precision", CPT_OPT_STR, &precision, "fp32|bf16", "products of the linears and the LM head (prefill attention too): bf16 on AMX / AVX512-BF16, else fp32", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"synth qa",
                         "Generate question/answer pairs from documents with an instruct model (Knowledge-Instruct / PIT data).",
                         "Each document and type: the type's prompt (with {document} and {n}) as a user turn through the\n"
                         "chat template, a sampled reply parsed as \"Q: ...\" / \"A: ...\" lines. Pairs whose answer is not\n"
                         "grounded in the document (--min-support), empty or echoing pairs, and repeated questions are\n"
                         "dropped; counts are printed. Output: {\"messages\": [user Q, assistant A], \"type\", \"doc\",\n"
                         "\"support\"} per line, for `cpt data prepare --chat` (loss on the answers).",
                         opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    cpt_err err = {0};
    cpt_synth_opts o = {.per_doc = (int)per_doc, .temperature = temperature, .top_p = top_p, .seed = (uint64_t)seed,
                        .max_new = (int)max_new, .max_doc_tokens = (int)max_doc, .min_support = min_support,
                        .limit = (size_t)limit, .field = field, .batch = (int)batch};
    char *tm[CPT_SYNTH_NTYPES] = {NULL}, *tpl = NULL;
    size_t tpl_len = 0;
    cpt_model *m = NULL;
    cpt_tok *tok = NULL;
    cpt_chat *chat = NULL;
    int rc = cpt_synth_parse_types(types, &o.types, &err);
    if (!rc && tmpl_path) rc = cpt_synth_load_templates(tmpl_path, tm, &err);
    for (int t = 0; t < CPT_SYNTH_NTYPES; t++) o.templates[t] = tm[t];
    if (!rc && chat_path && (rc = cpt_read_file(chat_path, &tpl, &tpl_len, &err))) cpt_err_wrap(&err, "--chat-template");
    if (!rc) rc = cpt_tok_load(&tok, tok_path ? tok_path : model_dir, &err);
    if (!rc && (rc = cpt_chat_open(&chat, tok, tpl, &err)))
        cpt_err_wrap(&err, "synth qa needs a chat template (an instruct model's tokenizer_config.json, or --chat-template)");
    if (!rc) rc = cpt_model_load_hf(&m, model_dir, &err);
    if (!rc) rc = cpt_cli_set_precision(m, precision, "generation", stderr, &err);
    cpt_synth_stats st;
    if (!rc) rc = cpt_synth_qa(m, tok, chat, in, out, &o, stderr, &st, &err);
    if (!rc) {
        printf("synth qa: %zu documents, %zu replies (%lld tokens, %.1f s, %.1f tokens/s)\n", st.docs, st.replies, st.tokens,
               st.seconds, st.seconds > 0 ? (double)st.tokens / st.seconds : 0);
        printf("  pairs parsed %zu, kept %zu; dropped: not grounded %zu, duplicate question %zu, empty or echoed %zu, over --per-doc %zu\n",
               st.parsed, st.kept, st.unsupported, st.duplicate, st.echoed, st.over_quota);
        printf("  wrote %s\n", out);
    }
    for (int t = 0; t < CPT_SYNTH_NTYPES; t++) free(tm[t]);
    free(tpl);
    cpt_chat_close(chat);
    cpt_tok_free(tok);
    cpt_model_free(m);
    return rc ? cpt_cli_fail("synth qa", &err) : 0;
}

static int cmd_bios(int argc, char **argv) {
    const char *fields = NULL, *out = NULL;
    long long people = 1000, per = 3, para = 3, seed = 1;
    double test_frac = 0.5;
    cpt_opt opts[] = {
        {"--out", CPT_OPT_STR, &out, "DIR", "where the data set goes (created)", 1, 0, 0, NULL, 0},
        {"--people", CPT_OPT_INT, &people, "N", "people (unique names)", 0, 1, 1e8, NULL, 0},
        {"--bios-per-person", CPT_OPT_INT, &per, "K", "biographies per person, different templates and order", 0, 1, 1000, NULL, 0},
        {"--paraphrases", CPT_OPT_INT, &para, "P", "paraphrased questions per person and attribute in instruct.*.jsonl (0-3, default 3)", 0, 0, 3, NULL, 0},
        {"--test-frac", CPT_OPT_FLOAT, &test_frac, "F", "share of people whose questions are held out", 0, 0, 1, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "seed: people, split and texts are a function of it", 0, 0, 9e15, NULL, 0},
        {"--fields", CPT_OPT_STR, &fields, "DIR", "attribute pools (default: ../shared/data/knowledge-injection/bioS-fields beside the checkout)", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"synth bios",
                         "Synthetic biographies with question/answer pairs (bioS, Allen-Zhu & Li 2023): facts no\n"
                         "pretrained model knows, to measure knowledge injection.",
                         "Each person: a unique name and seven attributes (birth date, birth city, university, major,\n"
                         "employer, employer's city, job), K biographies stating them. Half the people (--test-frac)\n"
                         "are test people: their biographies are trained on, their questions held out.\n"
                         "Files in --out: people.jsonl, bios.jsonl (all biographies), qa_train.jsonl and qa_test.jsonl\n"
                         "({\"question\", \"answers\"}: cpt eval --tasks qa:FILE), qa_train.text.jsonl and\n"
                         "instruct.text.jsonl ({\"text\": \"Question: ...\\nAnswer: ...\"}: PIT's QA and Knowledge-Instruct's\n"
                         "paraphrased questions about everyone, for cpt data prepare), and .chat.jsonl twins in the\n"
                         "messages format (cpt data prepare --chat).",
                         opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    char dd[4096], fd[4200];
    if (!fields) {
        snprintf(fd, sizeof fd, "%s/../knowledge-injection/bioS-fields", cpt_eval_default_data_dir(dd, sizeof dd));
        fields = fd;
    }
    cpt_err err = {0};
    cpt_bios_fields f;
    cpt_bios_opts o = {(size_t)people, (int)per, (int)para, test_frac, (uint64_t)seed};
    cpt_bios_stats st;
    int rc = cpt_bios_load_fields(fields, &f, &err);
    if (!rc) {
        rc = cpt_bios_write(&f, &o, out, &st, &err);
        cpt_bios_fields_free(&f);
    }
    if (!rc)
        printf("synth bios: %zu people (%zu train, %zu test), %zu biographies (%lld bytes), %zu train questions, "
               "%zu held-out questions, %zu paraphrased instructions\n  wrote %s\n",
               st.people, st.train_people, st.test_people, st.bios, st.bio_bytes, st.qa_train, st.qa_test, st.instruct, out);
    return rc ? cpt_cli_fail("synth bios", &err) : 0;
}

int cpt_cmd_synth(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: cpt synth <subcommand> [options]\n\nsubcommands:\n"
                   "  qa    question/answer pairs from documents with an instruct model\n"
                   "  bios  synthetic biographies with held-out questions (bioS), for knowledge-injection tests\n\n"
                   "Run 'cpt synth qa --help' or 'cpt synth bios --help' for their options.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "qa")) return cmd_qa(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bios")) return cmd_bios(argc - 1, argv + 1);
    fprintf(stderr, "cpt synth: unknown subcommand '%s'\nHINT: run 'cpt synth --help'\n", argv[1]);
    return 2;
}
