/* main.c: the cpt command dispatcher. README.md's command table lists the same commands
 * (keep the two in step; tests/cli checks `cpt --help` names every one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cpt/ops.h"
#include "cpt/backend.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} COMMANDS[] = {
    {"train", cpt_cmd_train, "continued pretraining from a YAML recipe"},
    {"export", cpt_cmd_export, "export a training checkpoint as a Hugging Face model directory"},
    {"score", cpt_cmd_score, "loss and perplexity of a token sequence under a model"},
    {"eval", cpt_cmd_eval, "benchmark tasks scored the lm-evaluation-harness way (acc, acc_norm, stderr)"},
    {"eval-long", cpt_cmd_eval_long, "long-context evaluation: passkey / needle accuracy by length and depth, loss by position"},
    {"compare", cpt_cmd_compare, "a tuned model against its base on benchmark tasks: deltas, stderr, forgetting verdict"},
    {"generate", cpt_cmd_generate, "generate tokens with a KV cache (greedy or sampled)"},
    {"convert", cpt_cmd_convert, "convert llama2.c or HF checkpoints to a HF directory"},
    {"init", cpt_cmd_init, "write a randomly initialised model from a config.json"},
    {"data", cpt_cmd_data, "corpora to token shards (data prepare), inspect shards (data inspect), render chats (data chat)"},
    {"vocab", cpt_cmd_vocab, "extend a model's vocabulary (new tokens or learned BPE merges, resized embeddings)"},
    {"synth", cpt_cmd_synth, "synthetic question/answer pairs from documents with an instruct model (synth qa)"},
    {"ckpt", cpt_cmd_ckpt, "checkpoint tools: merge a ZeRO-1 checkpoint's optimizer shards into one file"},
    {"tokenize", cpt_cmd_tokenize, "encode standard input with a model's tokenizer"},
    {"detokenize", cpt_cmd_detokenize, "decode token ids from standard input to text"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: cpt <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nRun 'cpt <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        /* what this build can run here: the bf16 products need oneDNN and AMX or AVX512-BF16 */
        int isa = cpt_cpu_bf16_isa();
        printf("cpt %s\nbf16: %s (CPU: %s)\n", CPT_VERSION,
               cpt_bf16_gemm_available() && isa >= CPT_BF16_ISA_AVX512_BF16 ? "yes" : "no", cpt_bf16_isa_name(isa));
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) {
            cpt_backend_cpu_select_core(argv);
            return COMMANDS[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "cpt: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
