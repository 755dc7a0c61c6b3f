/* cmd_vocab.c: `cpt vocab extend`: grow a model's vocabulary (include/cpt/vocab.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/vocab.h"

static int cmd_extend(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *corpus = NULL, *out = NULL, *init = "mean";
    long long add = 0, seed = 0;
    cpt_opt opts[] = {
        {"--model", CPT_OPT_STR, &model, "DIR", "Hugging Face model directory with tokenizer.json", 1, 0, 0, NULL, 0},
        {"--tokens", CPT_OPT_STR, &tokens, "FILE", "whole tokens to add, one per line (added_tokens)", 0, 0, 0, NULL, 0},
        {"--train-bpe", CPT_OPT_STR, &corpus, "CORPUS", "learn new byte-level BPE merges on this UTF-8 text file", 0, 0, 0, NULL, 0},
        {"--add", CPT_OPT_INT, &add, "N", "number of merges (new tokens) to learn with --train-bpe", 0, 1, 1000000, NULL, 0},
        {"--init", CPT_OPT_CHOICE, &init, "KIND", "new rows: mean of the old pieces' rows, or hewitt (sample of N(mu, 1e-5 Sigma))", 0, 0, 0, "mean|hewitt", 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "seed of the hewitt sampling", 0, 0, 9007199254740991.0, NULL, 0},
        {"--out", CPT_OPT_STR, &out, "DIR", "output model directory (config.json, model.safetensors, tokenizer files)", 1, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"vocab extend",
                         "Add tokens to a model: whole tokens from --tokens FILE, or --add N byte-level BPE\n"
                         "merges learned on --train-bpe CORPUS; resize embed_tokens and lm_head and initialise\n"
                         "the new rows (--init). Writes a model directory transformers loads.",
                         NULL, opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if ((tokens != NULL) == (corpus != NULL)) {
        fprintf(stderr, "cpt vocab extend: error: give exactly one of --tokens FILE and --train-bpe CORPUS\n"
                        "HINT: --tokens adds whole tokens, --train-bpe CORPUS --add N learns merges\n");
        return 2;
    }
    if (corpus && add <= 0) {
        fprintf(stderr, "cpt vocab extend: error: --train-bpe needs --add N\nHINT: e.g. --add 500\n");
        return 2;
    }
    if (tokens && add) {
        fprintf(stderr, "cpt vocab extend: error: --add goes with --train-bpe, not --tokens\nHINT: drop --add\n");
        return 2;
    }
    cpt_vocab_opts o = {model, tokens, corpus, (int)add, !strcmp(init, "hewitt") ? CPT_VOCAB_INIT_HEWITT : CPT_VOCAB_INIT_MEAN,
                        (uint64_t)seed, out};
    cpt_vocab_result r;
    cpt_err err = {0};
    int rc = cpt_vocab_extend(&o, &r, &err);
    if (rc) return cpt_cli_fail("vocab extend", &err);
    printf("added %d token(s): tokenizer %d -> %d ids, model vocab_size %d -> %d", r.n_added, r.old_tok_size,
           r.new_tok_size, r.old_vocab_size, r.new_vocab_size);
    if (corpus) printf(" (%lld pre-tokens counted)", r.corpus_words);
    printf("; wrote %s\n", out);
    return 0;
}

int cpt_cmd_vocab(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: cpt vocab <subcommand> [options]\n\nsubcommands:\n"
                   "  extend    add tokens (whole, or learned BPE merges) and resize the embeddings\n\n"
                   "Run 'cpt vocab <subcommand> --help' for its options.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "extend")) return cmd_extend(argc - 1, argv + 1);
    fprintf(stderr, "cpt vocab: unknown subcommand '%s'\nHINT: run 'cpt vocab --help'\n", argv[1]);
    return 2;
}
