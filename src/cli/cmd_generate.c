/* cmd_generate.c: `cpt generate`: greedy or temperature/top-p sampling with a KV cache
 * (cpt_generate: the prompt prefilled in one forward, then a decode step per token). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

int cpt_cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *ids_str = NULL, *prompt_text = NULL, *tok_path = NULL, *precision = "fp32";
    long long max_new = 64, seed = 42;
    double temperature = 1.0, top_p = 1.0;
    int greedy = 0, print_ids = 0, ignore_eos = 0, allow_long = 0;
    cpt_opt opts[] = {
        {"--model", CPT_OPT_STR, &model_dir, "DIR", "Hugging Face model directory", 1, 0, 0, NULL, 0},
        {"--ids", CPT_OPT_STR, &ids_str, "\"1 2 3\"", "prompt token ids, whitespace-separated", 0, 0, 0, NULL, 0},
        {"--prompt", CPT_OPT_STR, &prompt_text, "TEXT", "prompt text, encoded with the tokenizer (BOS as the tokenizer adds it)", 0, 0, 0, NULL, 0},
        {"--tokenizer", CPT_OPT_STR, &tok_path, "PATH", "tokenizer (default: the model directory)", 0, 0, 0, NULL, 0},
        {"--max-new", CPT_OPT_INT, &max_new, "N", "number of tokens to generate", 0, 1, 1000000, NULL, 0},
        {"--greedy", CPT_OPT_FLAG, &greedy, NULL, "take the most likely token at each step", 0, 0, 0, NULL, 0},
        {"--temperature", CPT_OPT_FLOAT, &temperature, "T", "sampling temperature", 0, 1e-4, 100, NULL, 0},
        {"--top-p", CPT_OPT_FLOAT, &top_p, "P", "nucleus sampling: smallest set of tokens with probability >= P", 0, 1e-6, 1, NULL, 0},
        {"--seed", CPT_OPT_INT, &seed, "S", "random seed for sampling", 0, 0, 9.2e18, NULL, 0},
        {"--print-ids", CPT_OPT_FLAG, &print_ids, NULL, "print all ids (prompt, then generated) on one line instead of text", 0, 0, 0, NULL, 0},
        {"--ignore-eos", CPT_OPT_FLAG, &ignore_eos, NULL, "keep generating after the end-of-sequence token", 0, 0, 0, NULL, 0},
        {"--precision", CPT_OPT_STR, &precision, "fp32|bf16", "products of the linears, the LM head (and the prefill's attention): bf16 on AMX / AVX512-BF16, else fp32", 0, 0, 0, NULL, 0},
        {"--allow-long-context", CPT_OPT_FLAG, &allow_long, NULL, "allow positions past the model's context (max_position_embeddings, scaled by rope_scaling)", 0, 0, 0, NULL, 0},
    };
    cpt_cmd_spec spec = {"generate", "Generate tokens from a prompt with a KV cache (greedy, or temperature + top-p sampling).",
                         "Give exactly one of --ids and --prompt. Stops after --max-new tokens or at the model's eos_token_id.\n"
                         "Prints the text (prompt and continuation) when a tokenizer is found, else the ids.",
                         opts, CPT_NOPTS(opts), NULL, NULL};
    int prc = cpt_opts_parse(&spec, argc, argv);
    if (prc) return prc == 1 ? 0 : 2;
    if (!ids_str == !prompt_text) {
        fprintf(stderr, "cpt generate: give exactly one of --ids and --prompt\nHINT: run 'cpt generate --help'\n");
        return 2;
    }
    cpt_err err = {0};
    int32_t *prompt = NULL;
    size_t np = 0;
    cpt_model *m = NULL;
    int32_t *out = NULL;
    size_t nout = 0;
    cpt_tok *tok = NULL;
    int rc = CPT_OK;
    if (prompt_text || !print_ids) {
        cpt_err terr = {0};
        int trc = cpt_tok_load(&tok, tok_path ? tok_path : model_dir, &terr);
        if (trc && (prompt_text || tok_path)) rc = cpt_err_set(&err, trc, "%s", terr.msg);
        if (trc) tok = NULL;
    }
    if (!rc && ids_str) rc = cpt_parse_ids(ids_str, "--ids", &prompt, &np, &err);
    if (!rc && prompt_text) rc = cpt_tok_encode(tok, prompt_text, strlen(prompt_text), 1, &prompt, &np, NULL, &err);
    if (!rc && np == 0) rc = cpt_err_set(&err, CPT_EINVAL, "--ids: the prompt needs at least one token id");
    if (!rc) rc = cpt_model_load_hf(&m, model_dir, &err);
    if (!rc) m->allow_long_context = allow_long;
    if (!rc) rc = cpt_cli_set_precision(m, precision, "generation", stderr, &err);
    if (!rc && !(out = malloc(sizeof(int32_t) * (np + (size_t)max_new)))) rc = cpt_err_set(&err, CPT_ENOMEM, "out of memory");
    /* The prompt in one forward (cpt_model_prefill), as transformers prefills it in one
     * call: the same RoPE for dynamic NTK and longrope, whose frequencies depend on the
     * length, and one batched forward instead of a decode step per prompt token; then a
     * decode step per new token (cpt_generate). */
    if (!rc) {
        int32_t eos = m->cfg.eos_id;
        memcpy(out, prompt, sizeof(int32_t) * np);
        cpt_gen_opts go = {.max_new = (int)max_new, .temperature = greedy ? 0 : temperature, .top_p = top_p, .seed = (uint64_t)seed,
                           .stop_ids = &eos, .n_stop_ids = ignore_eos ? 0 : 1, .ids_out = out + np};
        cpt_gen_out g = {0};
        rc = cpt_generate(m, NULL, prompt, np, &go, &g, &err);
        nout = np + (size_t)g.n_tokens;
    }
    if (!rc && (print_ids || !tok)) {
        for (size_t i = 0; i < nout; i++) printf(i ? " %d" : "%d", out[i]);
        printf("\n");
    } else if (!rc) {
        char *txt = NULL;
        size_t tl = 0;
        rc = cpt_tok_decode(tok, out, nout, 1, &txt, &tl, &err);
        if (!rc) {
            fwrite(txt, 1, tl, stdout);
            printf("\n");
        }
        free(txt);
    }
    cpt_tok_free(tok);
    free(prompt);
    free(out);
    cpt_model_free(m);
    return rc ? cpt_cli_fail("generate", &err) : 0;
}
