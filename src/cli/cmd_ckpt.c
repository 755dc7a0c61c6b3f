/* cmd_ckpt.c: `cpt ckpt consolidate DIR`: one optimizer file from a ZeRO-1 checkpoint's
 * per-rank shards (cpt/checkpoint.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/checkpoint.h"

static int cmd_consolidate(int argc, char **argv) {
    const char *dir = NULL;
    cpt_cmd_spec spec = {"ckpt consolidate",
                         "Merge the per-rank optimizer shards of a checkpoint into one optim.safetensors",
                         "A ZeRO-1 run on several ranks writes optim-RRRRR-of-NNNNN.safetensors per rank\n"
                         "(checkpoint.sharded_optim). This writes the single-file state a one-process save\n"
                         "writes (exp_avg.<name> / exp_avg_sq.<name> per parameter), points trainer_state.json\n"
                         "at it and removes the shards. Resuming never needs it: shards load on any number of\n"
                         "ranks. The model files are untouched (they are a plain HF model).",
                         NULL, 0, "DIR", &dir};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if (!dir) {
        fprintf(stderr, "cpt ckpt consolidate: error: give the checkpoint directory\nHINT: cpt ckpt consolidate RUN/checkpoints/step-00001000\n");
        return 2;
    }
    cpt_err err = {0};
    int n = 0;
    if (cpt_ckpt_consolidate(dir, &n, &err)) return cpt_cli_fail("ckpt consolidate", &err);
    if (n) printf("%s: merged %d optimizer shards into optim.safetensors\n", dir, n);
    else printf("%s: the optimizer state is one file already; nothing to do\n", dir);
    return 0;
}

int cpt_cmd_ckpt(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: cpt ckpt <subcommand> [options]\n\nsubcommands:\n"
                   "  consolidate    merge a checkpoint's per-rank optimizer shards into one file\n\n"
                   "Run 'cpt ckpt <subcommand> --help' for its options.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "consolidate")) return cmd_consolidate(argc - 1, argv + 1);
    fprintf(stderr, "cpt ckpt: unknown subcommand '%s'\nHINT: run 'cpt ckpt --help'\n", argv[1]);
    return 2;
}
