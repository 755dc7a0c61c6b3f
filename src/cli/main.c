/* main.c: the cpt command dispatcher. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} COMMANDS[] = {
    {"score", cpt_cmd_score, "loss and perplexity of a token sequence under a model"},
    {"generate", cpt_cmd_generate, "generate tokens with a KV cache (greedy or sampled)"},
    {"convert", cpt_cmd_convert, "convert llama2.c or HF checkpoints to a HF directory"},
};

/* OpenBLAS 0.3.21 does not know this AVX-512 EPYC and falls back to its AVX2
 * (Haswell) kernels; its SkylakeX kernels are 1.7-4x faster on our LM-head and
 * attention shapes (bench/blas_pick.c). The core type is read when the library
 * loads, so it has to be in the environment before exec: re-exec once. */
static void select_blas_core(char **argv) {
#if defined(__x86_64__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("CPT_NO_REEXEC")) return;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("CPT_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default kernels */
#else
    (void)argv;
#endif
}

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
        printf("cpt %s\n", CPT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) {
            select_blas_core(argv);
            return COMMANDS[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "cpt: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
