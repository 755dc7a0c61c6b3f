/* cmd_convert.c: `cpt convert`: llama2.c .bin or llama.cpp GGUF -> HF directory, or HF -> HF
 * (dtype and sharding changes); the output loads in transformers' from_pretrained. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/fileio.h"
#include "cpt/gguf_export.h"
#include "cpt/gguf_import.h"
#include "cpt/model.h"
#include "cpt/safetensors.h"

int cpt_cmd_convert(int argc, char **argv) {
    const char *from = NULL, *src = NULL, *out = NULL, *dtype = "f32", *to = "hf", *gtype = "f16";
    long long shard_mb = 5000;
    cpt_opt opts[] = {
        {"--from", CPT_OPT_CHOICE, &from, "FORMAT", "format of the input given after it", 1, 0, 0, "llama2c|hf|gguf", 0},
        {"--to", CPT_OPT_CHOICE, &to, "FORMAT", "output format", 0, 0, 0, "hf|gguf", 0},
        {"--out", CPT_OPT_STR, &out, "PATH", "output Hugging Face model directory (--to gguf: the OUT.gguf file)", 1, 0, 0, NULL, 0},
        {"--type", CPT_OPT_CHOICE, &gtype, "TYPE", "--to gguf: tensor type of 2-D weights (norms stay f32; q8_0 falls back to f16 for rows not a multiple of 32, as llama.cpp does)", 0, 0, 0, "f32|f16|bf16|q8_0", 0},
        {"--dtype", CPT_OPT_CHOICE, &dtype, "DTYPE", "tensor dtype of the output", 0, 0, 0, "f32|bf16", 0},
        {"--max-shard-mb", CPT_OPT_INT, &shard_mb, "MB", "shard the safetensors above this size (0: never)", 0, 0, 1e9, NULL, 0},
    };
    cpt_cmd_spec spec = {"convert",
                         "Convert a model to a Hugging Face directory: `cpt convert --from llama2c FILE.bin --out DIR`,\n"
                         "`cpt convert --from gguf FILE.gguf --out DIR` (any supported quantization, dequantized to\n"
                         "fp32 masters; tokenizer and chat template included) or\n"
                         "`cpt convert --from hf SRC_DIR --out DIR [--dtype bf16]`, or to llama.cpp GGUF:\n"
                         "`cpt convert --from hf SRC_DIR --to gguf --out OUT.gguf [--type f32|f16|bf16|q8_0]`\n"
                         "(the tokenizer from SRC_DIR/tokenizer.json, else SRC_DIR/tokenizer.model; --from gguf --to gguf re-exports).",
                         NULL, opts, CPT_NOPTS(opts), "INPUT", &src};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if (!src) {
        fprintf(stderr, "cpt convert: missing INPUT (the file or directory after --from FORMAT)\nHINT: run 'cpt convert --help'\n");
        return 2;
    }
    cpt_err err = {0};
    cpt_model *m = NULL;
    int is_hf = !strcmp(from, "hf"), is_gguf = !strcmp(from, "gguf");
    cpt_gguf *g = NULL;
    int rc;
    if (is_gguf) {
        rc = cpt_gguf_open(&g, src, &err);
        if (!rc) rc = cpt_model_from_gguf(&m, g, &err);
    } else {
        rc = is_hf ? cpt_model_load_hf(&m, src, &err) : cpt_model_load_llama2c(&m, src, &err);
    }
    int to_gguf = !strcmp(to, "gguf");
    if (!rc && to_gguf) {
        if (is_gguf) {
            /* the tokenizer travels through a temporary HF tokenizer directory */
            char tdir[4200];
            snprintf(tdir, sizeof tdir, "%s.tok.tmp", out);
            /* mkdir, not cpt_mkdirs: a missing output directory must stay an error */
            if (mkdir(tdir, 0755) != 0 && errno != EEXIST)
                rc = cpt_err_set(&err, CPT_EIO, "%s: cannot create: %s. HINT: check that the directory of --out exists and is writable",
                                 tdir, strerror(errno));
            if (!rc) rc = cpt_gguf_write_tokenizer(g, tdir, &err);
            if (!rc) rc = cpt_model_save_gguf(m, tdir, out, (uint32_t)cpt_gguf_export_type(gtype), &err);
            static const char *const f[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
            for (int i = 0; i < 3; i++) {
                char p[4300];
                snprintf(p, sizeof p, "%s/%s", tdir, f[i]);
                remove(p);
            }
            rmdir(tdir);
        } else {
            rc = cpt_model_save_gguf(m, is_hf ? src : NULL, out, (uint32_t)cpt_gguf_export_type(gtype), &err);
        }
    } else if (!rc)
        rc = cpt_model_save_hf(m, out, !strcmp(dtype, "bf16") ? CPT_DT_BF16 : CPT_DT_F32,
                               (uint64_t)shard_mb * 1000000ull, is_hf ? src : NULL, &err);
    if (!rc && is_gguf && !to_gguf) rc = cpt_gguf_write_tokenizer(g, out, &err);
    cpt_gguf_close(g);
    if (!rc) {
        size_t np = 0; /* real parameters (the flat buffer also holds alignment padding) */
        for (int i = 0; i < m->n_tensors; i++) np += m->tensors[i].numel;
        fprintf(stderr, "cpt convert: wrote %s (%d tensors, %zu parameters, %s)\n", out, m->n_tensors, np, to_gguf ? gtype : dtype);
    }
    cpt_model_free(m);
    return rc ? cpt_cli_fail("convert", &err) : 0;
}
