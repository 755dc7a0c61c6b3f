/* config.c: config.json of Llama-family models: parse, validate, serialize.
 * Defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config / Qwen3Config. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/model.h"

static const struct {
    const char *arch, *model_type;
    cpt_arch id;
} ARCHS[] = {
    {"LlamaForCausalLM", "llama", CPT_ARCH_LLAMA},
    {"MistralForCausalLM", "mistral", CPT_ARCH_MISTRAL},
    {"Qwen2ForCausalLM", "qwen2", CPT_ARCH_QWEN2},
    {"Qwen3ForCausalLM", "qwen3", CPT_ARCH_QWEN3},
};

#define NARCH (sizeof ARCHS / sizeof ARCHS[0])

/* Integer field: required or defaulted; must be within [lo, hi]. */
static int get_int(json_t *root, const char *key, int required, long long def, long long lo, long long hi,
                   long long *out, const char *path, cpt_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required)
            return cpt_err_set(err, CPT_EFORMAT, "%s: missing required field \"%s\". HINT: copy config.json from the original model", path, key);
        *out = def;
        return CPT_OK;
    }
    if (!json_is_integer(v))
        return cpt_err_set(err, CPT_EFORMAT, "%s: field \"%s\" must be an integer", path, key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return cpt_err_set(err, CPT_EFORMAT, "%s: field \"%s\" = %lld is out of range [%lld, %lld]", path, key, x, lo, hi);
    *out = x;
    return CPT_OK;
}

static int get_num(json_t *root, const char *key, double def, double lo, double hi, double *out,
                   const char *path, cpt_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return CPT_OK;
    }
    if (!json_is_number(v))
        return cpt_err_set(err, CPT_EFORMAT, "%s: field \"%s\" must be a number", path, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return cpt_err_set(err, CPT_EFORMAT, "%s: field \"%s\" = %g is out of range [%g, %g]", path, key, x, lo, hi);
    *out = x;
    return CPT_OK;
}

static int get_bool(json_t *root, const char *key, int def, int *out, const char *path, cpt_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return CPT_OK;
    }
    if (!json_is_boolean(v)) return cpt_err_set(err, CPT_EFORMAT, "%s: field \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return CPT_OK;
}

/* bos/eos may be an int, a list of ints (first is used) or null. */
static int get_token_id(json_t *root, const char *key, int *out, const char *path, cpt_err *err) {
    json_t *v = json_object_get(root, key);
    *out = -1;
    if (!v || json_is_null(v)) return CPT_OK;
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0);
    if (!json_is_integer(v)) return cpt_err_set(err, CPT_EFORMAT, "%s: field \"%s\" must be an integer or a list of integers", path, key);
    *out = (int)json_integer_value(v);
    return CPT_OK;
}

static int parse_rope_scaling(json_t *root, cpt_config *c, const char *path, cpt_err *err) {
    json_t *rs = json_object_get(root, "rope_scaling");
    memset(&c->rope_scaling, 0, sizeof c->rope_scaling);
    c->rope_scaling.type = CPT_ROPE_DEFAULT;
    if (!rs || json_is_null(rs)) return CPT_OK;
    if (!json_is_object(rs)) return cpt_err_set(err, CPT_EFORMAT, "%s: \"rope_scaling\" must be an object or null", path);
    /* "type" is the old alias. Llama/Qwen2/Qwen3Config copy it over "rope_type" when both are
     * present; MistralConfig does not, and its rotary embedding prefers "rope_type". */
    json_t *t = json_object_get(rs, "rope_type"), *legacy = json_object_get(rs, "type");
    if (legacy && (!t || c->arch != CPT_ARCH_MISTRAL)) t = legacy;
    if (!json_is_string(t))
        return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling needs a string \"rope_type\" (or \"type\")", path);
    const char *ty = json_string_value(t);
    static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope"};
    int found = -1;
    for (int i = 0; i < 6; i++)
        if (!strcmp(ty, names[i])) found = i;
    if (found < 0)
        return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling.rope_type \"%s\" is unknown. HINT: one of default, linear, dynamic, yarn, llama3, longrope", path, ty);
    cpt_rope_scaling *r = &c->rope_scaling;
    r->type = (cpt_rope_type)found;
    int rc;
    if (r->type != CPT_ROPE_DEFAULT) {
        json_t *f = json_object_get(rs, "factor");
        if (r->type != CPT_ROPE_LONGROPE && !json_is_number(f))
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling type \"%s\" needs a numeric \"factor\"", path, ty);
        if (json_is_number(f)) {
            r->factor = json_number_value(f);
            if (!(r->factor >= 1.0) && r->type != CPT_ROPE_LONGROPE)
                return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling.factor = %g must be >= 1", path, r->factor);
        }
    }
    long long omp = 0;
    if ((rc = get_int(rs, "original_max_position_embeddings", 0, 0, 1, 1LL << 40, &omp, path, err))) return rc;
    r->original_max_pos = omp;
    if (r->type == CPT_ROPE_LLAMA3) {
        if (!json_is_number(json_object_get(rs, "low_freq_factor")) ||
            !json_is_number(json_object_get(rs, "high_freq_factor")) || omp == 0)
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling type llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings", path);
        r->low_freq_factor = json_number_value(json_object_get(rs, "low_freq_factor"));
        r->high_freq_factor = json_number_value(json_object_get(rs, "high_freq_factor"));
        if (!(r->low_freq_factor > 0))
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling.low_freq_factor must be > 0", path);
        if (!(r->high_freq_factor > r->low_freq_factor))
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling.high_freq_factor must be greater than low_freq_factor", path);
    }
    /* 0 means "absent" for these (transformers: `x or default`, `if mscale and mscale_all_dim`);
     * an attention_factor of 0 would zero cos and sin, so it is refused rather than read as absent. */
    if (r->type == CPT_ROPE_YARN || r->type == CPT_ROPE_LONGROPE)
        if ((rc = get_num(rs, "attention_factor", 0, 1e-12, 1e9, &r->attention_factor, path, err))) return rc;
    if (r->type == CPT_ROPE_YARN) {
        if ((rc = get_num(rs, "beta_fast", 0, 0, 1e9, &r->beta_fast, path, err))) return rc;
        if ((rc = get_num(rs, "beta_slow", 0, 0, 1e9, &r->beta_slow, path, err))) return rc;
        if ((rc = get_num(rs, "mscale", 0, 0, 1e9, &r->mscale, path, err))) return rc;
        if ((rc = get_num(rs, "mscale_all_dim", 0, 0, 1e9, &r->mscale_all_dim, path, err))) return rc;
    }
    long long top = 0;
    if ((rc = get_int(root, "original_max_position_embeddings", 0, 0, 1, 1LL << 40, &top, path, err))) return rc;
    r->top_original_max_pos = top;
    if (r->type == CPT_ROPE_LONGROPE) {
        json_t *sf = json_object_get(rs, "short_factor"), *lf = json_object_get(rs, "long_factor");
        if (!json_is_array(sf) || !json_is_array(lf))
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling type longrope needs short_factor and long_factor lists", path);
        size_t n = json_array_size(sf);
        if (n != json_array_size(lf) || n == 0 || n > CPT_ROPE_MAX_FACTORS)
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling short_factor (%zu) and long_factor (%zu) must have the same length, 1..%d (rotary dim / 2)",
                               path, n, json_array_size(lf), CPT_ROPE_MAX_FACTORS);
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(sf, i), *b = json_array_get(lf, i);
            if (!json_is_number(a) || !json_is_number(b) || !(json_number_value(a) > 0) || !(json_number_value(b) > 0))
                return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling short_factor[%zu] / long_factor[%zu] must be positive numbers", path, i, i);
            r->short_factor[i] = json_number_value(a);
            r->long_factor[i] = json_number_value(b);
        }
        r->n_factors = (int)n;
        if (r->factor == 0 && top == 0 && r->attention_factor == 0)
            return cpt_err_set(err, CPT_EFORMAT, "%s: rope_scaling type longrope needs \"factor\" (or a top-level original_max_position_embeddings, or attention_factor)", path);
    }
    return CPT_OK;
}

int cpt_config_parse(cpt_config *c, const char *text, size_t len, const char *path, cpt_err *err) {
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cpt_err_set(err, CPT_EFORMAT, "%s: invalid JSON at line %d column %d: %s", path, je.line, je.column, je.text);
    int rc = CPT_OK;
    if (!json_is_object(root)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: top level must be a JSON object", path);
        goto done;
    }
    json_t *archs = json_object_get(root, "architectures");
    json_t *mt = json_object_get(root, "model_type");
    int idx = -1;
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs) || json_array_size(archs) == 0 || !json_is_string(json_array_get(archs, 0))) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: \"architectures\" must be a non-empty list of strings", path);
            goto done;
        }
        const char *a = json_string_value(json_array_get(archs, 0));
        for (size_t i = 0; i < NARCH; i++)
            if (!strcmp(a, ARCHS[i].arch)) idx = (int)i;
        if (idx < 0) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: field \"architectures\": \"%s\" is not supported. HINT: cpt supports LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM", path, a);
            goto done;
        }
    } else if (json_is_string(mt)) {
        for (size_t i = 0; i < NARCH; i++)
            if (!strcmp(json_string_value(mt), ARCHS[i].model_type)) idx = (int)i;
        if (idx < 0) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: field \"model_type\": \"%s\" is not supported. HINT: cpt supports llama, mistral, qwen2 and qwen3", path, json_string_value(mt));
            goto done;
        }
    } else {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: missing required field \"architectures\" (or \"model_type\")", path);
        goto done;
    }
    c->arch = ARCHS[idx].id;
    snprintf(c->architecture, sizeof c->architecture, "%s", ARCHS[idx].arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", ARCHS[idx].model_type);

    long long v = 0, hidden = 0, heads = 1, kv = 1, hd = 0, layers = 0, ffn = 0, maxpos = 0, sw = 0;
    const long long BIG = 1LL << 30;
    if ((rc = get_int(root, "vocab_size", 1, 0, 1, BIG, &v, path, err))) goto done;
    if ((rc = get_int(root, "hidden_size", 1, 0, 1, 1 << 20, &hidden, path, err))) goto done;
    if ((rc = get_int(root, "intermediate_size", 1, 0, 1, 1 << 22, &ffn, path, err))) goto done;
    if ((rc = get_int(root, "num_hidden_layers", 1, 0, 1, 4096, &layers, path, err))) goto done;
    if ((rc = get_int(root, "num_attention_heads", 1, 0, 1, 4096, &heads, path, err))) goto done;
    if ((rc = get_int(root, "num_key_value_heads", 0, heads, 1, 4096, &kv, path, err))) goto done;
    if ((rc = get_int(root, "head_dim", 0, hidden / heads, 2, 1 << 16, &hd, path, err))) goto done;
    if ((rc = get_int(root, "max_position_embeddings", 0, 2048, 1, BIG, &maxpos, path, err))) goto done;
    if (heads % kv != 0) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: field \"num_key_value_heads\" = %lld does not divide num_attention_heads = %lld. HINT: grouped-query attention needs heads to be a multiple of kv heads", path, kv, heads);
        goto done;
    }
    if (!json_object_get(root, "head_dim") && hidden % heads != 0) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: hidden_size %lld is not divisible by num_attention_heads %lld and no \"head_dim\" is given", path, hidden, heads);
        goto done;
    }
    if (hd % 2) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: field \"head_dim\" = %lld must be even for RoPE", path, hd);
        goto done;
    }
    c->vocab_size = (int)v, c->hidden_size = (int)hidden, c->intermediate_size = (int)ffn;
    c->n_layers = (int)layers, c->n_heads = (int)heads, c->n_kv_heads = (int)kv, c->head_dim = (int)hd;
    c->max_pos = (int)(maxpos > BIG ? BIG : maxpos);
    double def_eps = 1e-6; /* every supported config class defaults to 1e-6 */
    if ((rc = get_num(root, "rms_norm_eps", def_eps, 1e-30, 1.0, &c->rms_eps, path, err))) goto done;
    if ((rc = get_num(root, "rope_theta", 10000.0, 1.0, 1e30, &c->rope_theta, path, err))) goto done;
    if ((rc = get_num(root, "partial_rotary_factor", 1.0, 1e-9, 1.0, &c->partial_rotary_factor, path, err))) goto done;
    {
        /* rotate the first int(head_dim * factor) dims, pass the rest (transformers' partial-rotary models) */
        int rot = cpt_config_rot_dim(c);
        if (rot < 2 || rot % 2) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: field \"partial_rotary_factor\" = %g gives %d rotary dims of head_dim %d; it must be even and >= 2", path, c->partial_rotary_factor, rot, c->head_dim);
            goto done;
        }
    }
    if ((rc = get_bool(root, "tie_word_embeddings", 0, &c->tie_embeddings, path, err))) goto done;
    int ab = 0, mb = 0;
    if ((rc = get_bool(root, "attention_bias", 0, &ab, path, err))) goto done;
    if ((rc = get_bool(root, "mlp_bias", 0, &mb, path, err))) goto done;
    switch (c->arch) {
    case CPT_ARCH_QWEN2: c->qkv_bias = 1, c->o_bias = 0, c->mlp_bias = 0; break;
    case CPT_ARCH_MISTRAL: c->qkv_bias = 0, c->o_bias = 0, c->mlp_bias = 0; break;
    case CPT_ARCH_QWEN3: c->qkv_bias = ab, c->o_bias = ab, c->mlp_bias = 0, c->qk_norm = 1; break;
    default: c->qkv_bias = ab, c->o_bias = ab, c->mlp_bias = mb; break;
    }
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !(json_is_string(act) && !strcmp(json_string_value(act), "silu"))) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: field \"hidden_act\" must be \"silu\" for Llama-family models", path);
        goto done;
    }
    /* Sliding windows: Mistral's "sliding_window"; Qwen2/3 only when use_sliding_window. */
    int use_sw = c->arch == CPT_ARCH_MISTRAL;
    if (c->arch == CPT_ARCH_QWEN2 || c->arch == CPT_ARCH_QWEN3)
        if ((rc = get_bool(root, "use_sliding_window", 0, &use_sw, path, err))) goto done;
    if (use_sw && (rc = get_int(root, "sliding_window", 0, 0, 0, BIG, &sw, path, err))) goto done;
    c->sliding_window = use_sw ? sw : 0;
    if ((rc = get_token_id(root, "bos_token_id", &c->bos_id, path, err))) goto done;
    if ((rc = get_token_id(root, "eos_token_id", &c->eos_id, path, err))) goto done;
    if ((rc = parse_rope_scaling(root, c, path, err))) goto done;
    c->raw_json = malloc(len + 1);
    if (!c->raw_json) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(c->raw_json, text, len);
    c->raw_json[len] = '\0';
done:
    json_decref(root);
    return rc;
}

int cpt_config_load(cpt_config *cfg, const char *path, cpt_err *err) {
    char *text = NULL;
    size_t n = 0;
    int rc = cpt_read_file(path, &text, &n, err);
    if (rc) return rc;
    rc = cpt_config_parse(cfg, text, n, path, err);
    free(text);
    return rc;
}

void cpt_config_free(cpt_config *cfg) {
    free(cfg->raw_json);
    cfg->raw_json = NULL;
}

int cpt_config_rot_dim(const cpt_config *cfg) { return (int)(cfg->head_dim * cfg->partial_rotary_factor); }

long long cpt_config_context_len(const cpt_config *c) {
    const cpt_rope_scaling *r = &c->rope_scaling;
    double f = r->factor > 1.0 ? r->factor : 1.0;
    switch (r->type) {
    case CPT_ROPE_LINEAR:
    case CPT_ROPE_DYNAMIC: return (long long)(c->max_pos * f);
    case CPT_ROPE_YARN: return r->original_max_pos > 0 ? c->max_pos : (long long)(c->max_pos * f);
    default: return c->max_pos;
    }
}

/* rope_scaling as transformers reads it back: "rope_type" plus the fields the type uses. */
static json_t *rope_scaling_json(const cpt_config *c) {
    const cpt_rope_scaling *r = &c->rope_scaling;
    if (r->type == CPT_ROPE_DEFAULT) return json_null();
    static const char *names[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope"};
    json_t *o = json_object();
    json_object_set_new(o, "rope_type", json_string(names[r->type]));
    if (r->factor != 0) json_object_set_new(o, "factor", json_real(r->factor));
    if (r->original_max_pos > 0) json_object_set_new(o, "original_max_position_embeddings", json_integer(r->original_max_pos));
    if (r->type == CPT_ROPE_LLAMA3) {
        json_object_set_new(o, "low_freq_factor", json_real(r->low_freq_factor));
        json_object_set_new(o, "high_freq_factor", json_real(r->high_freq_factor));
    }
    if (r->attention_factor != 0) json_object_set_new(o, "attention_factor", json_real(r->attention_factor));
    if (r->type == CPT_ROPE_YARN) {
        if (r->beta_fast != 0) json_object_set_new(o, "beta_fast", json_real(r->beta_fast));
        if (r->beta_slow != 0) json_object_set_new(o, "beta_slow", json_real(r->beta_slow));
        if (r->mscale != 0) json_object_set_new(o, "mscale", json_real(r->mscale));
        if (r->mscale_all_dim != 0) json_object_set_new(o, "mscale_all_dim", json_real(r->mscale_all_dim));
    }
    if (r->type == CPT_ROPE_LONGROPE) {
        json_t *sf = json_array(), *lf = json_array();
        for (int i = 0; i < r->n_factors; i++) {
            json_array_append_new(sf, json_real(r->short_factor[i]));
            json_array_append_new(lf, json_real(r->long_factor[i]));
        }
        json_object_set_new(o, "short_factor", sf);
        json_object_set_new(o, "long_factor", lf);
    }
    return o;
}

char *cpt_config_to_json(const cpt_config *c, const char *dtype) {
    json_t *root = NULL;
    if (c->raw_json) root = json_loads(c->raw_json, 0, NULL);
    if (!root) root = json_object();
    if (!root) return NULL;
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(c->architecture));
    json_object_set_new(root, "architectures", arr);
    json_object_set_new(root, "model_type", json_string(c->model_type));
    json_object_set_new(root, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(root, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(root, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(root, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(root, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(root, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(root, "head_dim", json_integer(c->head_dim));
    json_object_set_new(root, "max_position_embeddings", json_integer(c->max_pos));
    json_object_set_new(root, "rms_norm_eps", json_real(c->rms_eps));
    json_object_set_new(root, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(root, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(root, "hidden_act", json_string("silu"));
    if (c->arch == CPT_ARCH_LLAMA || c->arch == CPT_ARCH_QWEN3)
        json_object_set_new(root, "attention_bias", json_boolean(c->qkv_bias));
    if (c->arch == CPT_ARCH_LLAMA) json_object_set_new(root, "mlp_bias", json_boolean(c->mlp_bias));
    /* RoPE comes from the struct, so a recipe's rope_theta / rope_scaling reach the export */
    json_object_set_new(root, "rope_scaling", rope_scaling_json(c));
    if (c->partial_rotary_factor != 1.0) json_object_set_new(root, "partial_rotary_factor", json_real(c->partial_rotary_factor));
    else json_object_del(root, "partial_rotary_factor");
    if (c->rope_scaling.top_original_max_pos > 0)
        json_object_set_new(root, "original_max_position_embeddings", json_integer(c->rope_scaling.top_original_max_pos));
    else json_object_del(root, "original_max_position_embeddings");
    if (c->bos_id >= 0 && !json_object_get(root, "bos_token_id")) json_object_set_new(root, "bos_token_id", json_integer(c->bos_id));
    if (c->eos_id >= 0 && !json_object_get(root, "eos_token_id")) json_object_set_new(root, "eos_token_id", json_integer(c->eos_id));
    json_object_set_new(root, "torch_dtype", json_string(dtype));
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    return s;
}

int cpt_config_override(cpt_config *c, const char *overrides, const char *where, cpt_err *err) {
    json_error_t je;
    json_t *ov = json_loads(overrides, JSON_REJECT_DUPLICATES, &je);
    if (!ov || !json_is_object(ov)) {
        json_decref(ov);
        return cpt_err_set(err, CPT_EINVAL, "%s: overrides are not a JSON object (%s)", where, je.text);
    }
    char *text = cpt_config_to_json(c, "float32");
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!root) {
        json_decref(ov);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    json_object_update(root, ov);
    json_decref(ov);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    cpt_config nc;
    int rc = cpt_config_parse(&nc, text, strlen(text), where, err);
    free(text);
    if (rc) return rc;
    cpt_config_free(c);
    *c = nc;
    return CPT_OK;
}
