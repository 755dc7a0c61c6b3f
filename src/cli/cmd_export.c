/* cmd_export.c: `cpt export CKPT --out DIR`: a training checkpoint (or any model
 * directory) as a Hugging Face directory with config, weights (F32 or BF16) and the
 * tokenizer files of the run, which transformers loads; or `--gguf OUT.gguf [--type T]`:
 * the same as one llama.cpp GGUF file (cpt/gguf_export.h). With --merge (or --adapter DIR)
 * a PEFT LoRA adapter is merged into the weights first, as PEFT's merge_and_unload; a LoRA
 * run's checkpoint (an adapter directory) is merged into the run's base model, read from the
 * recipe saved in it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/checkpoint.h"
#include "cpt/fileio.h"
#include "cpt/gguf_export.h"
#include "cpt/lora.h"
#include "cpt/recipe.h"
#include "cpt/safetensors.h"

int cpt_cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *dtype = "bf16", *tok = NULL, *gguf = NULL, *gtype = "f16";
    const char *adapter = NULL;
    int merge = 0;
    long long shard_mb = 5000;
    cpt_opt opts[] = {
        {"--out", CPT_OPT_STR, &out, "DIR", "output Hugging Face model directory (or use --gguf)", 0, 0, 0, NULL, 0},
        {"--gguf", CPT_OPT_STR, &gguf, "OUT.gguf", "write one llama.cpp GGUF file instead of a HF directory", 0, 0, 0, NULL, 0},
        {"--type", CPT_OPT_CHOICE, &gtype, "TYPE", "GGUF tensor type of 2-D weights (norms stay f32; q8_0 falls back to f16 for rows not a multiple of 32, as llama.cpp does)", 0, 0, 0, "f32|f16|bf16|q8_0", 0},
        {"--dtype", CPT_OPT_CHOICE, &dtype, "DTYPE", "tensor dtype of the export", 0, 0, 0, "f32|bf16", 0},
        {"--tokenizer", CPT_OPT_STR, &tok, "DIR", "copy tokenizer files from here (default: the run's tokenizer, from the checkpoint's recipe)", 0, 0, 0, NULL, 0},
        {"--merge", CPT_OPT_FLAG, &merge, NULL, "merge the LoRA adapter (CKPT/adapter, or --adapter) into the weights first (W += s B A, as PEFT's merge_and_unload)", 0, 0, 0, NULL, 0},
        {"--adapter", CPT_OPT_STR, &adapter, "DIR", "PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to merge into CKPT; implies --merge", 0, 0, 0, NULL, 0},
        {"--max-shard-mb", CPT_OPT_INT, &shard_mb, "MB", "shard the safetensors above this size (0: never)", 0, 0, 1e9, NULL, 0},
    };
    cpt_cmd_spec spec = {"export", "Export a checkpoint (runs/NAME/checkpoints/step-N) as a Hugging Face model directory (--out)\nor as one llama.cpp GGUF file (--gguf; byte-level BPE or SentencePiece tokenizers).",
                         NULL, opts, CPT_NOPTS(opts), "CKPT", &ckpt};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if (!ckpt) {
        fprintf(stderr, "cpt export: missing CKPT (a checkpoint directory)\nHINT: run 'cpt export --help'\n");
        return 2;
    }
    if (!out == !gguf) {
        fprintf(stderr, "cpt export: give exactly one of --out DIR (Hugging Face) and --gguf OUT.gguf\nHINT: run 'cpt export --help'\n");
        return 2;
    }
    cpt_err err = {0};
    cpt_model *m = NULL;
    cpt_recipe *r = NULL, *lr = NULL;
    char adir[4200], probe[4200];
    int rc = CPT_OK;
    /* A LoRA run's checkpoint is a PEFT adapter directory: its base is the recipe's model. */
    snprintf(probe, sizeof probe, "%s/adapter_config.json", ckpt);
    int lora_ckpt = cpt_is_file(probe);
    snprintf(probe, sizeof probe, "%s/model.safetensors", ckpt);
    lora_ckpt &= !cpt_is_file(probe);
    const char *wdir = ckpt; /* where the weights are read from */
    if (lora_ckpt) {
        json_error_t je;
        snprintf(probe, sizeof probe, "%s/trainer_state.json", ckpt);
        json_t *o = json_load_file(probe, 0, &je);
        const char *rt = o ? json_string_value(json_object_get(o, "recipe")) : NULL;
        if (!rt || !*rt)
            rc = cpt_err_set(&err, CPT_EFORMAT, "%s is a LoRA adapter without the run's recipe (trainer_state.json). HINT: cpt export BASE_MODEL --adapter %s --out DIR",
                             ckpt, ckpt);
        else if (!(rc = cpt_recipe_load_text(cpt_recipe_train_schema(), rt, strlen(rt), "checkpoint", NULL, NULL, 0, &lr, &err))) {
            wdir = cpt_recipe_str(lr, "model");
            if (!adapter) adapter = ckpt;
            fprintf(stderr, "cpt export: %s is a LoRA checkpoint: merging it into its base %s\n", ckpt, wdir);
        }
        json_decref(o);
    }
    if (!rc) rc = cpt_model_load_hf(&m, wdir, &err);
    if (!adapter && merge) {
        snprintf(adir, sizeof adir, "%s/adapter", ckpt);
        adapter = adir;
    }
    /* The run's tokenizer: from the effective recipe saved in the checkpoint. */
    if (!rc && !tok && lr) tok = cpt_recipe_has(lr, "tokenizer") ? cpt_recipe_str(lr, "tokenizer") : cpt_recipe_str(lr, "model");
    if (!rc && !tok) {
        char p[4200];
        snprintf(p, sizeof p, "%s/trainer_state.json", ckpt);
        if (cpt_is_file(p)) {
            cpt_ckpt_state st;
            cpt_err e2 = {0};
            if (cpt_ckpt_load(ckpt, m, NULL, &st, &e2) == CPT_OK && st.recipe_text && *st.recipe_text) {
                if (cpt_recipe_load_text(cpt_recipe_train_schema(), st.recipe_text, strlen(st.recipe_text), "checkpoint", NULL, NULL, 0, &r, &e2) == CPT_OK) {
                    if (cpt_recipe_has(r, "tokenizer")) tok = cpt_recipe_str(r, "tokenizer");
                    else tok = cpt_recipe_str(r, "model");
                } else {
                    fprintf(stderr, "cpt export: note: the checkpoint's recipe does not load here (%s); no tokenizer copied (use --tokenizer)\n", e2.msg);
                }
            }
            cpt_ckpt_state_free(&st);
        }
    }
    /* After the checkpoint read above (it loads the checkpoint's weights into m). */
    if (!rc && adapter) {
        cpt_lora *lo = NULL;
        if (!(rc = cpt_lora_load_peft(&lo, m, adapter, &err)) &&
            !(rc = cpt_lora_merge(lo, &err)))
            fprintf(stderr, "cpt export: merged the LoRA adapter %s (r %d, %zu parameters)\n", adapter, lo->cfg.rank,
                    cpt_lora_n_trainable(lo));
        cpt_lora_free(lo);
    }
    if (!rc && gguf) {
        rc = cpt_model_save_gguf(m, tok && cpt_is_dir(tok) ? tok : NULL, gguf, (uint32_t)cpt_gguf_export_type(gtype), &err);
        if (!rc) fprintf(stderr, "cpt export: wrote %s (%s, tokenizer from %s)\n", gguf, gtype, tok);
    } else if (!rc) rc = cpt_model_save_hf(m, out, !strcmp(dtype, "bf16") ? CPT_DT_BF16 : CPT_DT_F32, (uint64_t)shard_mb * 1000000ull,
                                    tok && cpt_is_dir(tok) ? tok : NULL, &err);
    if (!rc && !gguf) fprintf(stderr, "cpt export: wrote %s (%s%s%s)\n", out, dtype, tok ? ", tokenizer from " : "", tok ? tok : "");
    cpt_recipe_free(r);
    cpt_recipe_free(lr);
    cpt_model_free(m);
    return rc ? cpt_cli_fail("export", &err) : 0;
}
