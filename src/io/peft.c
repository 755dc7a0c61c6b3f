/* peft.c: LoRA adapters as Hugging Face PEFT directories (cpt/lora.h):
 * adapter_config.json (LoraConfig fields, as PEFT's save_pretrained writes them) and
 * adapter_model.safetensors (PEFT's tensor names without the adapter name, as
 * get_peft_model_state_dict gives them: "base_model.model.model.layers.N.self_attn.
 * q_proj.lora_A.weight"; modules_to_save as "base_model.model.model.embed_tokens.weight"
 * and "base_model.model.lm_head.weight"). Only what cpt can apply is accepted on load:
 * anything else (DoRA, bias, per-layer ranks, regex targets, ...) is a clear error. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/fileio.h"
#include "cpt/lora.h"
#include "cpt/safetensors.h"

#define CFG_NAME "adapter_config.json"
#define ST_NAME "adapter_model.safetensors"

static int json_set(json_t *o, const char *k, json_t *v, cpt_err *err) {
    if (!v || json_object_set_new(o, k, v)) return cpt_err_set(err, CPT_ENOMEM, "out of memory building " CFG_NAME);
    return CPT_OK;
}

int cpt_lora_save_peft(const cpt_lora *lo, const char *dir, const char *base_model_name_or_path, cpt_err *err) {
    const cpt_model *pm = lo->pm;
    int rc = cpt_mkdirs(dir, err);
    if (rc) return rc;
    /* adapter_config.json: the LoraConfig fields cpt uses, the rest at PEFT's defaults
     * (so from_pretrained reconstructs the same LoraConfig). */
    json_t *o = json_object(), *tm = json_array(), *ms = NULL;
    if (!o || !tm) {
        json_decref(o), json_decref(tm);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory building " CFG_NAME);
    }
    for (int t = 0; t < CPT_LORA_NT; t++)
        if (lo->cfg.targets & (1u << t)) json_array_append_new(tm, json_string(cpt_lora_target_name(t)));
    if (lo->embed_t >= 0 || lo->lm_head_t >= 0) {
        ms = json_array();
        if (lo->embed_t >= 0) json_array_append_new(ms, json_string("embed_tokens"));
        if (lo->lm_head_t >= 0) json_array_append_new(ms, json_string("lm_head"));
    }
    if ((rc = json_set(o, "peft_type", json_string("LORA"), err)) ||
        (rc = json_set(o, "task_type", json_string("CAUSAL_LM"), err)) ||
        (rc = json_set(o, "base_model_name_or_path",
                       base_model_name_or_path ? json_string(base_model_name_or_path) : json_null(), err)) ||
        (rc = json_set(o, "revision", json_null(), err)) || (rc = json_set(o, "inference_mode", json_true(), err)) ||
        (rc = json_set(o, "r", json_integer(lo->cfg.rank), err)) ||
        (rc = json_set(o, "lora_alpha", json_real(lo->cfg.alpha), err)) ||
        (rc = json_set(o, "lora_dropout", json_real(lo->cfg.dropout), err)) ||
        (rc = json_set(o, "target_modules", tm, err)) ||
        (rc = json_set(o, "modules_to_save", ms ? ms : json_null(), err)) ||
        (rc = json_set(o, "use_rslora", json_boolean(lo->cfg.use_rslora), err)) ||
        (rc = json_set(o, "bias", json_string("none"), err)) ||
        (rc = json_set(o, "fan_in_fan_out", json_false(), err)) ||
        (rc = json_set(o, "init_lora_weights", json_true(), err)) ||
        (rc = json_set(o, "use_dora", json_false(), err)) ||
        (rc = json_set(o, "layers_to_transform", json_null(), err)) ||
        (rc = json_set(o, "layers_pattern", json_null(), err)) ||
        (rc = json_set(o, "rank_pattern", json_object(), err)) ||
        (rc = json_set(o, "alpha_pattern", json_object(), err))) {
        json_decref(o);
        return rc;
    }
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!text) return cpt_err_set(err, CPT_ENOMEM, "out of memory serialising " CFG_NAME);
    char *cpath = cpt_path_join(dir, CFG_NAME), *spath = cpt_path_join(dir, ST_NAME);
    size_t bytes = cpt_model_buffer_bytes(pm);
    float *host = malloc(bytes ? bytes : 1);
    cpt_st_wtensor *wt = calloc((size_t)pm->n_tensors + 1, sizeof *wt);
    if (!cpath || !spath || !host || !wt) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory saving the LoRA adapter");
        goto done;
    }
    if ((rc = cpt_write_file_atomic(cpath, text, strlen(text), err))) goto done;
    pm->be->copy_to_host(host, pm->params, bytes);
    pm->be->sync();
    for (int i = 0; i < pm->n_tensors; i++) {
        const cpt_tensor *t = &pm->tensors[i];
        wt[i] = (cpt_st_wtensor){.name = t->name, .dtype = CPT_DT_F32, .ndim = t->ndim, .src_f32 = host + t->off};
        for (int d = 0; d < t->ndim; d++) wt[i].shape[d] = t->shape[d];
    }
    const char *meta[] = {"format", "pt", NULL};
    rc = cpt_st_write(spath, wt, (size_t)pm->n_tensors, meta, err);
done:
    free(text), free(cpath), free(spath), free(host), free(wt);
    return rc;
}

/* adapter_config.json -> cfg, with every field cpt cannot honour rejected by name. */
static int parse_config(cpt_lora_cfg *cfg, const char *dir, const cpt_config *mc, cpt_err *err) {
    char *path = cpt_path_join(dir, CFG_NAME);
    if (!path) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    memset(cfg, 0, sizeof *cfg);
    json_error_t je;
    json_t *o = NULL;
    int rc = CPT_OK;
    if (!cpt_is_file(path)) {
        rc = cpt_err_set(err, CPT_ENOTFOUND, "%s: no such file. HINT: a PEFT adapter directory holds " CFG_NAME " and " ST_NAME " (PeftModel.save_pretrained)", path);
        goto done;
    }
    if (!(o = json_load_file(path, 0, &je)) || !json_is_object(o)) {
        rc = o ? cpt_err_set(err, CPT_EFORMAT, "%s: not a JSON object", path)
               : cpt_err_set(err, CPT_EFORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        goto done;
    }
    json_t *v = json_object_get(o, "peft_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "LORA")) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"peft_type\" is %s; cpt reads LoRA adapters only (\"LORA\")", path,
                         json_is_string(v) ? json_string_value(v) : "missing");
        goto done;
    }
    v = json_object_get(o, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: \"r\" must be an integer in [1, 65536]", path);
        goto done;
    }
    cfg->rank = (int)json_integer_value(v);
    v = json_object_get(o, "lora_alpha");
    cfg->alpha = v ? json_number_value(v) : 8; /* LoraConfig's default */
    if (v && !json_is_number(v)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: \"lora_alpha\" must be a number", path);
        goto done;
    }
    /* lora_dropout acts only while training; applying the adapter does not use it. */
    cfg->dropout = 0;
    v = json_object_get(o, "use_rslora");
    cfg->use_rslora = json_is_true(v);
    static const char *const must_false[] = {"use_dora", "fan_in_fan_out"};
    for (size_t i = 0; i < sizeof must_false / sizeof *must_false; i++)
        if (json_is_true(json_object_get(o, must_false[i]))) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"%s\": true is not supported by cpt's LoRA. HINT: use a plain LoRA adapter", path, must_false[i]);
            goto done;
        }
    v = json_object_get(o, "bias");
    if (json_is_string(v) && strcmp(json_string_value(v), "none")) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"bias\": \"%s\" is not supported; only \"none\"", path, json_string_value(v));
        goto done;
    }
    static const char *const must_empty[] = {"rank_pattern", "alpha_pattern"};
    for (size_t i = 0; i < sizeof must_empty / sizeof *must_empty; i++) {
        v = json_object_get(o, must_empty[i]);
        if (v && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0)) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"%s\" (per-module ranks or alphas) is not supported. HINT: one rank and alpha for every targeted linear", path, must_empty[i]);
            goto done;
        }
    }
    static const char *const must_null[] = {"layers_to_transform", "layers_pattern"};
    for (size_t i = 0; i < sizeof must_null / sizeof *must_null; i++) {
        v = json_object_get(o, must_null[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"%s\" (LoRA on some layers only) is not supported", path, must_null[i]);
            goto done;
        }
    }
    v = json_object_get(o, "target_modules");
    if (json_is_string(v)) {
        if (!(cfg->targets = cpt_lora_target_bits(json_string_value(v)))) {
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"target_modules\": \"%s\" (a regular expression) is not supported. HINT: a list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or \"all-linear\"", path, json_string_value(v));
            goto done;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            unsigned bit = json_is_string(e) ? cpt_lora_target_bits(json_string_value(e)) : 0;
            if (!bit) {
                rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"target_modules\"[%zu] %s is not a linear cpt can adapt. HINT: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", path, i,
                                 json_is_string(e) ? json_string_value(e) : "(not a string)");
                goto done;
            }
            cfg->targets |= bit;
        }
    } else if (v && !json_is_null(v)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: \"target_modules\" must be a list of names or a string", path);
        goto done;
    }
    v = json_object_get(o, "modules_to_save");
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            const char *s = json_is_string(e) ? json_string_value(e) : "";
            if (!strcmp(s, "embed_tokens")) cfg->save_embed = 1;
            else if (!strcmp(s, "lm_head") && !mc->tie_embeddings) cfg->save_lm_head = 1;
            else if (!strcmp(s, "lm_head")) {
                rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"modules_to_save\" lists lm_head, but the base model ties it to embed_tokens", path);
                goto done;
            } else {
                rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: \"modules_to_save\"[%zu] '%s' is not supported. HINT: embed_tokens and lm_head", path, i, s);
                goto done;
            }
        }
    } else if (v && !json_is_null(v)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: \"modules_to_save\" must be a list or null", path);
        goto done;
    }
done:
    json_decref(o);
    free(path);
    return rc;
}

int cpt_lora_read_tensors(cpt_lora *lo, const char *dir, cpt_err *err) {
    cpt_model *pm = lo->pm;
    char *spath = cpt_path_join(dir, ST_NAME);
    if (!spath) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    cpt_st_file *f = NULL;
    size_t bytes = cpt_model_buffer_bytes(pm);
    float *host = NULL;
    int rc = cpt_st_open(&f, spath, err);
    if (rc) goto done;
    if (!(host = calloc(1, bytes ? bytes : 1))) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory reading %s", spath);
        goto done;
    }
    for (int i = 0; i < pm->n_tensors; i++) {
        const cpt_tensor *t = &pm->tensors[i];
        const cpt_st_tensor *st = cpt_st_find(f, t->name);
        if (!st) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' is missing. HINT: " CFG_NAME " (r, target_modules, modules_to_save) does not match the tensors, or the adapter was made for another model", spath, t->name);
            goto done;
        }
        if (st->ndim != 2 || st->shape[0] != t->shape[0] || st->shape[1] != t->shape[1]) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' has %d dims [%lld, %lld], expected [%lld, %lld]. HINT: the adapter was made for another base model or rank",
                             spath, t->name, st->ndim, (long long)st->shape[0], st->ndim > 1 ? (long long)st->shape[1] : 0LL,
                             (long long)t->shape[0], (long long)t->shape[1]);
            goto done;
        }
        if ((rc = cpt_st_read_f32(f, st, host + t->off, err))) goto done;
    }
    /* Nothing that cpt would silently drop. */
    for (size_t i = 0; i < cpt_st_count(f); i++) {
        const cpt_st_tensor *st = cpt_st_get(f, i);
        if (!cpt_model_find(pm, st->name)) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: unexpected tensor '%s'. HINT: " CFG_NAME " does not describe this adapter (target_modules, modules_to_save)", spath, st->name);
            goto done;
        }
    }
    pm->be->copy_to_device(pm->params, host, bytes);
    pm->be->sync();
done:
    cpt_st_close(f);
    free(host), free(spath);
    return rc;
}

int cpt_lora_check_config(const cpt_lora *lo, const char *dir, cpt_err *err) {
    cpt_lora_cfg c;
    int rc = parse_config(&c, dir, &lo->base->cfg, err);
    if (rc) return rc;
    const cpt_lora_cfg *w = &lo->cfg;
    const char *what = c.rank != w->rank                                          ? "r (lora.rank)"
                       : c.alpha != w->alpha                                     ? "lora_alpha (lora.alpha)"
                       : c.use_rslora != w->use_rslora                           ? "use_rslora (lora.rslora)"
                       : c.targets != w->targets                                 ? "target_modules (lora.targets)"
                       : c.save_embed != w->save_embed || c.save_lm_head != w->save_lm_head ? "modules_to_save (lora.modules_to_save)"
                                                                                 : NULL;
    if (what)
        return cpt_err_set(err, CPT_ESTATE, "%s/" CFG_NAME ": the adapter's %s differs from the run's. HINT: resume with the lora.* settings the checkpoint was made with",
                           dir, what);
    return CPT_OK;
}

int cpt_lora_load_peft(cpt_lora **out, cpt_model *m, const char *dir, cpt_err *err) {
    *out = NULL;
    cpt_lora_cfg cfg;
    int rc = parse_config(&cfg, dir, &m->cfg, err);
    if (rc) return rc;
    cpt_lora *lo = NULL;
    if ((rc = cpt_lora_create(&lo, m, &cfg, 0, err))) return rc;
    if ((rc = cpt_lora_read_tensors(lo, dir, err))) {
        cpt_lora_free(lo);
        return rc;
    }
    *out = lo;
    return CPT_OK;
}
