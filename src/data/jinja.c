/* jinja.c: a small Jinja interpreter for chat templates (lexer, parser, evaluator over JSON values); not chat rendering or tokenization. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/chat.h"

/* ======================= lexer ======================= */
enum { T_TEXT, T_VBEG, T_VEND, T_BBEG, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP, T_EOF };

typedef struct tok {
    int type, line;
    const char *p; /* text / name / op / raw number */
    size_t n;
    char *s; /* decoded string literal (T_STR) */
} tok;

typedef struct lexer {
    const char *src, *label;
    size_t n, i;
    int line;
    tok *t;
    size_t nt, cap;
    cpt_err *err;
} lexer;

static int lx_push(lexer *L, int type, const char *p, size_t n, int line) {
    if (L->nt == L->cap) {
        size_t nc = L->cap ? 2 * L->cap : 256;
        tok *nt = realloc(L->t, nc * sizeof *nt);
        if (!nt) return cpt_err_set(L->err, CPT_ENOMEM, "%s: out of memory", L->label);
        L->t = nt;
        L->cap = nc;
    }
    L->t[L->nt++] = (tok){type, line, p, n, NULL};
    return 0;
}

static void put_utf8(char *o, size_t *k, uint32_t cp) {
    if (cp < 0x80) o[(*k)++] = (char)cp;
    else if (cp < 0x800) o[(*k)++] = (char)(0xC0 | cp >> 6), o[(*k)++] = (char)(0x80 | (cp & 63));
    else if (cp < 0x10000)
        o[(*k)++] = (char)(0xE0 | cp >> 12), o[(*k)++] = (char)(0x80 | (cp >> 6 & 63)), o[(*k)++] = (char)(0x80 | (cp & 63));
    else
        o[(*k)++] = (char)(0xF0 | cp >> 18), o[(*k)++] = (char)(0x80 | (cp >> 12 & 63)),
        o[(*k)++] = (char)(0x80 | (cp >> 6 & 63)), o[(*k)++] = (char)(0x80 | (cp & 63));
}

/* Lex the expression tokens of one tag up to its closer ("}}" or "%}"). */
static int lex_tag(lexer *L, const char *closer, int end_type) {
    const char *s = L->src;
    for (;;) {
        while (L->i < L->n && isspace((unsigned char)s[L->i])) L->line += s[L->i++] == '\n';
        if (L->i >= L->n)
            return cpt_err_set(L->err, CPT_EFORMAT, "%s:%d: unclosed tag (missing '%s')", L->label, L->line, closer);
        size_t i = L->i;
        int strip = s[i] == '-' && i + 2 < L->n + 1 && !strncmp(s + i + 1, closer, 2);
        if (strip || !strncmp(s + i, closer, 2)) {
            int rc = lx_push(L, end_type, s + i, 0, L->line);
            if (rc) return rc;
            L->i = i + 2 + (size_t)strip;
            if (strip) {
                while (L->i < L->n && isspace((unsigned char)s[L->i])) L->line += s[L->i++] == '\n';
            } else if (end_type == T_BEND && L->i < L->n && s[L->i] == '\n') { /* trim_blocks */
                L->i++;
                L->line++;
            }
            return 0;
        }
        char c = s[i];
        if (isalpha((unsigned char)c) || c == '_') {
            size_t j = i;
            while (j < L->n && (isalnum((unsigned char)s[j]) || s[j] == '_')) j++;
            if (lx_push(L, T_NAME, s + i, j - i, L->line)) return CPT_ENOMEM;
            L->i = j;
        } else if (isdigit((unsigned char)c)) {
            size_t j = i;
            int fl = 0;
            while (j < L->n && (isdigit((unsigned char)s[j]) || (s[j] == '.' && !fl && j + 1 < L->n && isdigit((unsigned char)s[j + 1]))))
                fl |= s[j++] == '.';
            if (lx_push(L, fl ? T_FLOAT : T_INT, s + i, j - i, L->line)) return CPT_ENOMEM;
            L->i = j;
        } else if (c == '"' || c == '\'') {
            size_t j = i + 1, k = 0;
            char *o = malloc(L->n - i + 1);
            if (!o) return cpt_err_set(L->err, CPT_ENOMEM, "%s: out of memory", L->label);
            while (j < L->n && s[j] != c) {
                if (s[j] == '\n') L->line++;
                if (s[j] != '\\' || j + 1 >= L->n) {
                    o[k++] = s[j++];
                    continue;
                }
                char e = s[j + 1];
                j += 2;
                switch (e) {
                case 'n': o[k++] = '\n'; break;
                case 't': o[k++] = '\t'; break;
                case 'r': o[k++] = '\r'; break;
                case '\\': o[k++] = '\\'; break;
                case '\'': o[k++] = '\''; break;
                case '"': o[k++] = '"'; break;
                case 'u': {
                    uint32_t cp = 0;
                    int ok = j + 4 <= L->n;
                    for (int q = 0; ok && q < 4; q++) {
                        char h = s[j + (size_t)q];
                        ok = isxdigit((unsigned char)h);
                        cp = cp * 16 + (uint32_t)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
                    }
                    if (!ok) {
                        free(o);
                        return cpt_err_set(L->err, CPT_EFORMAT, "%s:%d: bad \\u escape", L->label, L->line);
                    }
                    j += 4;
                    put_utf8(o, &k, cp);
                    break;
                }
                default: o[k++] = '\\', o[k++] = e; break; /* Python keeps unknown escapes */
                }
            }
            if (j >= L->n) {
                free(o);
                return cpt_err_set(L->err, CPT_EFORMAT, "%s:%d: unterminated string literal", L->label, L->line);
            }
            o[k] = 0;
            if (lx_push(L, T_STR, s + i, k, L->line)) {
                free(o);
                return CPT_ENOMEM;
            }
            L->t[L->nt - 1].s = o;
            L->i = j + 1;
        } else {
            static const char *const ops2[] = {"==", "!=", "<=", ">=", "//", "**"};
            size_t len = 1;
            for (size_t q = 0; q < 6; q++)
                if (!strncmp(s + i, ops2[q], 2)) len = 2;
            if (len == 1 && !strchr("+-*/%~<>=()[]{}.,:|", c))
                return cpt_err_set(L->err, CPT_EFORMAT, "%s:%d: unexpected character '%c' in a tag", L->label, L->line, c);
            if (lx_push(L, T_OP, s + i, len, L->line)) return CPT_ENOMEM;
            L->i = i + len;
        }
    }
}

static int lex(lexer *L) {
    const char *s = L->src;
    while (L->i < L->n) {
        /* text up to the next tag opener */
        size_t j = L->i;
        while (j + 1 < L->n && !(s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#'))) j++;
        if (j + 1 >= L->n) j = L->n;
        size_t a = L->i, b = j;
        int line0 = L->line;
        for (size_t q = a; q < b; q++) L->line += s[q] == '\n';
        if (j < L->n) {
            char kind = s[j + 1];
            int strip = j + 2 < L->n && s[j + 2] == '-';
            if (strip) {
                while (b > a && isspace((unsigned char)s[b - 1])) b--;
            } else if (kind != '{') { /* lstrip_blocks: drop spaces/tabs before the tag on its line */
                size_t q = b;
                while (q > a && (s[q - 1] == ' ' || s[q - 1] == '\t')) q--;
                if (q == 0 || s[q - 1] == '\n') b = q;
            }
        }
        if (b > a && lx_push(L, T_TEXT, s + a, b - a, line0)) return CPT_ENOMEM;
        if (j >= L->n) break;
        char kind = s[j + 1];
        L->i = j + 2 + (j + 2 < L->n && s[j + 2] == '-');
        if (kind == '#') {
            const char *e = NULL;
            for (size_t q = L->i; q + 1 < L->n; q++)
                if (s[q] == '#' && s[q + 1] == '}') {
                    e = s + q;
                    break;
                }
            if (!e) return cpt_err_set(L->err, CPT_EFORMAT, "%s:%d: unclosed comment", L->label, L->line);
            size_t q = (size_t)(e - s);
            int rs = q > L->i && s[q - 1] == '-';
            for (size_t z = L->i; z < q; z++) L->line += s[z] == '\n';
            L->i = q + 2;
            if (rs) {
                while (L->i < L->n && isspace((unsigned char)s[L->i])) L->line += s[L->i++] == '\n';
            } else if (L->i < L->n && s[L->i] == '\n') {
                L->i++;
                L->line++;
            }
            continue;
        }
        int rc = lx_push(L, kind == '{' ? T_VBEG : T_BBEG, s + j, 0, L->line);
        if (!rc) rc = lex_tag(L, kind == '{' ? "}}" : "%}", kind == '{' ? T_VEND : T_BEND);
        if (rc) return rc;
    }
    return lx_push(L, T_EOF, s + L->n, 0, L->line);
}

/* ======================= AST ======================= */
enum {
    N_LIT, N_NAME, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_NOT, N_NEG, N_BIN, N_AND, N_OR, N_COND,
    N_LIST, N_DICT,
    S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SETATTR, S_BREAK, S_CONT
};
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FDIV, OP_MOD, OP_CAT, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

typedef struct jnode jnode;
struct jnode {
    int kind, op, line, neg;
    char *name;      /* NAME, ATTR, CALL (method/global), FILTER, TEST, SET target, FOR targets joined */
    json_t *lit;     /* LIT */
    const char *txt; /* TEXT */
    size_t tlen;
    jnode *a, *b, *c, *d; /* operands / bodies */
    jnode **args;
    char **kw; /* kw[i] non-NULL: keyword argument */
    size_t nargs;
    char *t2; /* second for-target */
    jnode *next;
};

struct cpt_jinja {
    char *label;
    jnode *body;
    jnode **all; /* every node, for freeing */
    size_t nall, capall;
};

typedef struct parser {
    lexer *L;
    size_t i;
    cpt_jinja *t;
    cpt_err *err;
} parser;

static jnode *nn(parser *P, int kind) {
    cpt_jinja *t = P->t;
    if (t->nall == t->capall) {
        size_t nc = t->capall ? 2 * t->capall : 256;
        jnode **na = realloc(t->all, nc * sizeof *na);
        if (!na) return NULL;
        t->all = na;
        t->capall = nc;
    }
    jnode *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->kind = kind;
    x->line = P->L->t[P->i < P->L->nt ? P->i : P->L->nt - 1].line;
    t->all[t->nall++] = x;
    return x;
}

static void node_free(jnode *x) {
    free(x->name);
    free(x->t2);
    json_decref(x->lit);
    for (size_t i = 0; i < x->nargs; i++) free(x->kw ? x->kw[i] : NULL);
    free(x->args);
    free(x->kw);
    free(x);
}

static tok *cur(parser *P) { return &P->L->t[P->i]; }
static int is_op(parser *P, const char *op) {
    tok *k = cur(P);
    return k->type == T_OP && k->n == strlen(op) && !strncmp(k->p, op, k->n);
}
static int is_name(parser *P, const char *nm) {
    tok *k = cur(P);
    return k->type == T_NAME && k->n == strlen(nm) && !strncmp(k->p, nm, k->n);
}
static int perr(parser *P, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *P, int code, const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return cpt_err_set(P->err, code, "%s:%d: %s", P->t->label, cur(P)->line, m);
}
static int expect_op(parser *P, const char *op) {
    if (!is_op(P, op)) {
        tok *k = cur(P);
        return perr(P, CPT_EFORMAT, "expected '%s', found '%.*s'", op, (int)(k->n ? k->n : 3), k->n ? k->p : "end");
    }
    P->i++;
    return 0;
}
static char *tokstr(tok *k) {
    char *s = malloc(k->n + 1);
    if (s) {
        memcpy(s, k->p, k->n);
        s[k->n] = 0;
    }
    return s;
}

static jnode *p_expr(parser *P);
static jnode *p_unary(parser *P, int with_filter);

static const char *const FILTERS[] = {"trim", "length", "count", "tojson", "default", "d", "upper", "lower", "title",
                                      "capitalize", "string", "list", "join", "first", "last", "items", "selectattr",
                                      "rejectattr", "select", "reject", "map", "int", "float", "abs", "replace", NULL};
static const char *const TESTS[] = {"defined", "undefined", "none", "string", "number", "integer", "float", "boolean",
                                    "mapping", "iterable", "sequence", "true", "false", "equalto", "eq", "==", "ne",
                                    "lt", "gt", "odd", "even", "divisibleby", "in", NULL};
static const char *const METHODS[] = {"strip", "lstrip", "rstrip", "upper", "lower", "title", "startswith",
                                      "endswith", "split", "replace", "items", "keys", "values", "get", NULL};
static const char *const GLOBALS[] = {"raise_exception", "namespace", "range", NULL};
static int known(const char *const *set, const char *s) {
    for (size_t i = 0; set[i]; i++)
        if (!strcmp(set[i], s)) return 1;
    return 0;
}

/* (args) after '(' was seen: positional and keyword arguments. */
static int p_args(parser *P, jnode *x) {
    size_t cap = 0;
    P->i++; /* ( */
    while (!is_op(P, ")")) {
        if (x->nargs == cap) {
            cap = cap ? 2 * cap : 4;
            jnode **na = realloc(x->args, cap * sizeof *na);
            char **nk = realloc(x->kw, cap * sizeof *nk);
            if (na) x->args = na;
            if (nk) x->kw = nk;
            if (!na || !nk) return perr(P, CPT_ENOMEM, "out of memory");
        }
        char *kw = NULL;
        if (cur(P)->type == T_NAME && P->i + 1 < P->L->nt && P->L->t[P->i + 1].type == T_OP &&
            P->L->t[P->i + 1].n == 1 && P->L->t[P->i + 1].p[0] == '=') {
            kw = tokstr(cur(P));
            P->i += 2;
        }
        x->kw[x->nargs] = kw;
        x->args[x->nargs] = p_expr(P);
        x->nargs++;
        if (!x->args[x->nargs - 1]) return CPT_EFORMAT;
        if (is_op(P, ",")) P->i++;
        else if (!is_op(P, ")")) return expect_op(P, ")");
    }
    P->i++;
    return 0;
}

static jnode *p_primary(parser *P) {
    tok *k = cur(P);
    jnode *x = NULL;
    if (k->type == T_STR) {
        x = nn(P, N_LIT);
        if (x) x->lit = json_stringn(k->s, k->n);
        P->i++;
        /* adjacent string literals concatenate */
        while (x && cur(P)->type == T_STR) {
            tok *k2 = cur(P);
            size_t n1 = json_string_length(x->lit);
            char *cat = malloc(n1 + k2->n + 1);
            if (!cat) return NULL;
            memcpy(cat, json_string_value(x->lit), n1);
            memcpy(cat + n1, k2->s, k2->n);
            json_decref(x->lit);
            x->lit = json_stringn(cat, n1 + k2->n);
            free(cat);
            P->i++;
        }
        return x;
    }
    if (k->type == T_INT || k->type == T_FLOAT) {
        char *s = tokstr(k);
        x = nn(P, N_LIT);
        if (x && s) x->lit = k->type == T_INT ? json_integer(strtoll(s, NULL, 10)) : json_real(strtod(s, NULL));
        free(s);
        P->i++;
        return x;
    }
    if (k->type == T_NAME) {
        char *s = tokstr(k);
        if (!s) return NULL;
        P->i++;
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "false") || !strcmp(s, "False")) {
            x = nn(P, N_LIT);
            if (x) x->lit = json_boolean(s[0] == 't' || s[0] == 'T');
            free(s);
            return x;
        }
        if (!strcmp(s, "none") || !strcmp(s, "None")) {
            x = nn(P, N_LIT);
            if (x) x->lit = json_null();
            free(s);
            return x;
        }
        x = nn(P, N_NAME);
        if (!x) {
            free(s);
            return NULL;
        }
        x->name = s;
        return x;
    }
    if (is_op(P, "(")) {
        P->i++;
        x = p_expr(P);
        if (x && expect_op(P, ")")) return NULL;
        return x;
    }
    if (is_op(P, "[") || is_op(P, "{")) {
        int dict = is_op(P, "{");
        P->i++;
        x = nn(P, dict ? N_DICT : N_LIST);
        if (!x) return NULL;
        size_t cap = 0;
        while (!is_op(P, dict ? "}" : "]")) {
            if (x->nargs + 2 > cap) {
                cap = cap ? 2 * cap : 8;
                jnode **na = realloc(x->args, cap * sizeof *na);
                if (!na) return NULL;
                x->args = na;
            }
            jnode *e = p_expr(P);
            if (!e) return NULL;
            x->args[x->nargs++] = e;
            if (dict) {
                if (expect_op(P, ":")) return NULL;
                if (!(e = p_expr(P))) return NULL;
                x->args[x->nargs++] = e;
            }
            if (is_op(P, ",")) P->i++;
            else if (!is_op(P, dict ? "}" : "]")) {
                expect_op(P, dict ? "}" : "]");
                return NULL;
            }
        }
        P->i++;
        return x;
    }
    perr(P, CPT_EFORMAT, "unexpected '%.*s' in an expression", (int)(k->n ? k->n : 3), k->n ? k->p : "end");
    return NULL;
}

static jnode *p_postfix(parser *P, jnode *x) {
    while (x) {
        if (is_op(P, ".")) {
            P->i++;
            if (cur(P)->type != T_NAME) {
                perr(P, CPT_EFORMAT, "expected an attribute name after '.'");
                return NULL;
            }
            jnode *y = nn(P, N_ATTR);
            if (!y) return NULL;
            y->a = x;
            y->name = tokstr(cur(P));
            P->i++;
            x = y;
        } else if (is_op(P, "[")) {
            P->i++;
            jnode *y = nn(P, N_ITEM);
            if (!y) return NULL;
            y->a = x;
            jnode *parts[3] = {NULL, NULL, NULL};
            int colons = 0;
            for (;;) {
                if (is_op(P, ":")) {
                    if (++colons > 2) {
                        perr(P, CPT_EFORMAT, "too many ':' in a slice");
                        return NULL;
                    }
                    P->i++;
                    continue;
                }
                if (is_op(P, "]")) break;
                if (!(parts[colons] = p_expr(P))) return NULL;
            }
            P->i++;
            if (colons) {
                y->kind = N_SLICE;
                y->b = parts[0], y->c = parts[1], y->d = parts[2];
            } else {
                y->b = parts[0];
                if (!y->b) {
                    perr(P, CPT_EFORMAT, "empty subscript");
                    return NULL;
                }
            }
            x = y;
        } else if (is_op(P, "(")) {
            jnode *y = nn(P, N_CALL);
            if (!y) return NULL;
            y->a = x;
            const char *nm = x->kind == N_ATTR ? x->name : x->kind == N_NAME ? x->name : NULL;
            if (!nm || (x->kind == N_ATTR && !known(METHODS, nm)) || (x->kind == N_NAME && !known(GLOBALS, nm))) {
                perr(P, CPT_EUNSUPPORTED, "unsupported call '%s(...)'. HINT: cpt's Jinja subset has the methods and globals listed in cpt/chat.h",
                     nm ? nm : "<expression>");
                return NULL;
            }
            if (p_args(P, y)) return NULL;
            x = y;
        } else {
            break;
        }
    }
    return x;
}

static jnode *p_filters(parser *P, jnode *x) {
    while (x) {
        if (is_op(P, "|")) {
            P->i++;
            if (cur(P)->type != T_NAME) {
                perr(P, CPT_EFORMAT, "expected a filter name after '|'");
                return NULL;
            }
            char *nm = tokstr(cur(P));
            if (!nm) return NULL;
            if (!known(FILTERS, nm)) {
                perr(P, CPT_EUNSUPPORTED, "unsupported filter '%s'. HINT: see the filter list in cpt/chat.h", nm);
                free(nm);
                return NULL;
            }
            P->i++;
            jnode *y = nn(P, N_FILTER);
            if (!y) {
                free(nm);
                return NULL;
            }
            y->name = nm;
            y->a = x;
            if (is_op(P, "(") && p_args(P, y)) return NULL;
            x = y;
        } else if (is_name(P, "is")) {
            P->i++;
            int neg = 0;
            if (is_name(P, "not")) neg = 1, P->i++;
            char *nm = NULL;
            if (cur(P)->type == T_NAME) nm = tokstr(cur(P));
            else if (is_op(P, "==")) nm = strdup("==");
            if (!nm || !known(TESTS, nm)) {
                perr(P, CPT_EUNSUPPORTED, "unsupported test 'is %s'. HINT: see the test list in cpt/chat.h", nm ? nm : "?");
                free(nm);
                return NULL;
            }
            P->i++;
            jnode *y = nn(P, N_TEST);
            if (!y) {
                free(nm);
                return NULL;
            }
            y->name = nm;
            y->neg = neg;
            y->a = x;
            tok *k = cur(P);
            if (is_op(P, "(")) {
                if (p_args(P, y)) return NULL;
            } else if ((k->type == T_STR || k->type == T_INT || k->type == T_FLOAT ||
                        (k->type == T_NAME && !is_name(P, "and") && !is_name(P, "or") && !is_name(P, "else") &&
                         !is_name(P, "if") && !is_name(P, "not") && !is_name(P, "in") && !is_name(P, "is")))) {
                y->args = malloc(sizeof *y->args);
                y->kw = calloc(1, sizeof *y->kw);
                if (!y->args || !y->kw) return NULL;
                y->args[0] = p_postfix(P, p_primary(P));
                if (!y->args[0]) return NULL;
                y->nargs = 1;
            }
            x = y;
        } else {
            break;
        }
    }
    return x;
}

static jnode *p_unary(parser *P, int with_filter) {
    if (is_op(P, "-")) {
        P->i++;
        jnode *x = nn(P, N_NEG);
        if (x && !(x->a = p_unary(P, 0))) return NULL;
        return with_filter ? p_filters(P, x) : x;
    }
    jnode *x = p_postfix(P, p_primary(P));
    return with_filter ? p_filters(P, x) : x;
}

static jnode *bin(parser *P, int op, jnode *a, jnode *b) {
    if (!a || !b) return NULL;
    jnode *x = nn(P, N_BIN);
    if (x) x->op = op, x->a = a, x->b = b;
    return x;
}

static jnode *p_math2(parser *P) {
    jnode *x = p_unary(P, 1);
    while (x) {
        int op = is_op(P, "*") ? OP_MUL : is_op(P, "//") ? OP_FDIV : is_op(P, "/") ? OP_DIV : is_op(P, "%") ? OP_MOD : -1;
        if (op < 0) break;
        P->i++;
        x = bin(P, op, x, p_unary(P, 1));
    }
    return x;
}
static jnode *p_concat(parser *P) {
    jnode *x = p_math2(P);
    while (x && is_op(P, "~")) {
        P->i++;
        x = bin(P, OP_CAT, x, p_math2(P));
    }
    return x;
}
static jnode *p_math1(parser *P) {
    jnode *x = p_concat(P);
    while (x && (is_op(P, "+") || is_op(P, "-"))) {
        int op = is_op(P, "+") ? OP_ADD : OP_SUB;
        P->i++;
        x = bin(P, op, x, p_concat(P));
    }
    return x;
}
static jnode *p_compare(parser *P) {
    jnode *x = p_math1(P);
    while (x) {
        int op = is_op(P, "==") ? OP_EQ : is_op(P, "!=") ? OP_NE : is_op(P, "<=") ? OP_LE : is_op(P, ">=") ? OP_GE
                 : is_op(P, "<") ? OP_LT : is_op(P, ">") ? OP_GT : is_name(P, "in") ? OP_IN : -1;
        if (op < 0 && is_name(P, "not") && P->i + 1 < P->L->nt && P->L->t[P->i + 1].type == T_NAME &&
            P->L->t[P->i + 1].n == 2 && !strncmp(P->L->t[P->i + 1].p, "in", 2)) {
            P->i++;
            op = OP_NOTIN;
        }
        if (op < 0) break;
        P->i++;
        x = bin(P, op, x, p_math1(P));
    }
    return x;
}
static jnode *p_not(parser *P) {
    if (is_name(P, "not")) {
        P->i++;
        jnode *x = nn(P, N_NOT);
        if (x && !(x->a = p_not(P))) return NULL;
        return x;
    }
    return p_compare(P);
}
static jnode *p_and(parser *P) {
    jnode *x = p_not(P);
    while (x && is_name(P, "and")) {
        P->i++;
        jnode *y = nn(P, N_AND), *b = p_not(P);
        if (!y || !b) return NULL;
        y->a = x, y->b = b, x = y;
    }
    return x;
}
static jnode *p_or(parser *P) {
    jnode *x = p_and(P);
    while (x && is_name(P, "or")) {
        P->i++;
        jnode *y = nn(P, N_OR), *b = p_and(P);
        if (!y || !b) return NULL;
        y->a = x, y->b = b, x = y;
    }
    return x;
}
static jnode *p_expr(parser *P) {
    jnode *x = p_or(P);
    while (x && is_name(P, "if")) {
        P->i++;
        jnode *y = nn(P, N_COND);
        if (!y || !(y->b = p_or(P))) return NULL;
        y->a = x;
        if (is_name(P, "else")) {
            P->i++;
            if (!(y->c = p_or(P))) return NULL;
        }
        x = y;
    }
    return x;
}

/* Statements until a block tag whose keyword is in `stops` ("elif|else|endif"); *stop gets it. */
static jnode *p_body(parser *P, const char *stops, char *stop, int *rc);

static int block_end(parser *P) {
    if (cur(P)->type != T_BEND) {
        tok *k = cur(P);
        return perr(P, CPT_EFORMAT, "expected '%%}', found '%.*s'", (int)(k->n ? k->n : 3), k->n ? k->p : "end");
    }
    P->i++;
    return 0;
}

static int in_set(const char *stops, const char *w) {
    size_t n = strlen(w);
    for (const char *p = stops; p && *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, w, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static jnode *p_stmt(parser *P, int *rc) {
    /* at the keyword after {% */
    tok *k = cur(P);
    if (k->type != T_NAME) {
        *rc = perr(P, CPT_EFORMAT, "expected a statement keyword after '{%%'");
        return NULL;
    }
    char kw[32];
    snprintf(kw, sizeof kw, "%.*s", (int)(k->n < 31 ? k->n : 31), k->p);
    P->i++;
    if (!strcmp(kw, "if")) {
        jnode *x = nn(P, S_IF), *head = x;
        if (!x || !(x->a = p_expr(P)) || (*rc = block_end(P))) goto fail;
        for (;;) {
            char stop[32];
            x->b = p_body(P, "elif|else|endif", stop, rc);
            if (*rc) return NULL;
            if (!strcmp(stop, "elif")) { /* chain: d = the elif, c = the final else body */
                jnode *y = nn(P, S_IF);
                if (!y || !(y->a = p_expr(P)) || (*rc = block_end(P))) goto fail;
                x->d = y;
                x = y;
                continue;
            }
            if (!strcmp(stop, "else")) {
                if ((*rc = block_end(P))) return NULL;
                x->c = p_body(P, "endif", stop, rc);
                if (*rc) return NULL;
            }
            if ((*rc = block_end(P))) return NULL;
            return head;
        }
    }
    if (!strcmp(kw, "for")) {
        jnode *x = nn(P, S_FOR);
        if (!x) goto fail;
        if (cur(P)->type != T_NAME) {
            *rc = perr(P, CPT_EFORMAT, "expected a loop variable after 'for'");
            return NULL;
        }
        x->name = tokstr(cur(P));
        P->i++;
        if (is_op(P, ",")) {
            P->i++;
            if (cur(P)->type != T_NAME) {
                *rc = perr(P, CPT_EFORMAT, "expected a second loop variable");
                return NULL;
            }
            x->t2 = tokstr(cur(P));
            P->i++;
        }
        if (!is_name(P, "in")) {
            *rc = perr(P, CPT_EFORMAT, "expected 'in' in a for loop");
            return NULL;
        }
        P->i++;
        if (!(x->a = p_or(P))) goto fail; /* no `x if c else y` here: `if` filters the loop */
        if (is_name(P, "if")) {
            P->i++;
            if (!(x->d = p_or(P))) goto fail;
        }
        if (is_name(P, "recursive")) {
            *rc = perr(P, CPT_EUNSUPPORTED, "unsupported construct 'for ... recursive'");
            return NULL;
        }
        if ((*rc = block_end(P))) return NULL;
        char stop[32];
        x->b = p_body(P, "else|endfor", stop, rc);
        if (*rc) return NULL;
        if (!strcmp(stop, "else")) {
            if ((*rc = block_end(P))) return NULL;
            x->c = p_body(P, "endfor", stop, rc);
            if (*rc) return NULL;
        }
        if ((*rc = block_end(P))) return NULL;
        return x;
    }
    if (!strcmp(kw, "set")) {
        if (cur(P)->type != T_NAME) {
            *rc = perr(P, CPT_EFORMAT, "expected a name after 'set'");
            return NULL;
        }
        jnode *x = nn(P, S_SET);
        if (!x) goto fail;
        x->name = tokstr(cur(P));
        P->i++;
        if (is_op(P, ".")) {
            P->i++;
            if (cur(P)->type != T_NAME) {
                *rc = perr(P, CPT_EFORMAT, "expected an attribute after 'set %s.'", x->name);
                return NULL;
            }
            x->kind = S_SETATTR;
            x->t2 = tokstr(cur(P));
            P->i++;
        }
        if (!is_op(P, "=")) {
            *rc = perr(P, CPT_EUNSUPPORTED, "unsupported construct: block 'set %s' (without '='); use 'set x = ...'", x->name);
            return NULL;
        }
        P->i++;
        if (!(x->a = p_expr(P)) || (*rc = block_end(P))) goto fail;
        return x;
    }
    if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        jnode *x = nn(P, kw[0] == 'b' ? S_BREAK : S_CONT);
        if (!x || (*rc = block_end(P))) goto fail;
        return x;
    }
    *rc = perr(P, CPT_EUNSUPPORTED, "unsupported construct '{%% %s %%}'. HINT: cpt's Jinja subset has if/for/set/break/continue",
               kw);
    return NULL;
fail:
    if (!*rc) *rc = P->err && P->err->code ? P->err->code : perr(P, CPT_ENOMEM, "parse failed");
    return NULL;
}

static jnode *p_body(parser *P, const char *stops, char *stop, int *rc) {
    jnode *head = NULL, **tail = &head;
    *rc = 0;
    if (stop) stop[0] = 0;
    for (;;) {
        tok *k = cur(P);
        jnode *x = NULL;
        if (k->type == T_EOF) {
            if (stops) {
                *rc = perr(P, CPT_EFORMAT, "unexpected end of template (missing {%% %s %%})", stops);
                return NULL;
            }
            return head;
        }
        if (k->type == T_TEXT) {
            x = nn(P, S_TEXT);
            if (!x) goto oom;
            x->txt = k->p;
            x->tlen = k->n;
            P->i++;
        } else if (k->type == T_VBEG) {
            P->i++;
            x = nn(P, S_OUT);
            if (!x || !(x->a = p_expr(P))) goto bad;
            if (cur(P)->type != T_VEND) {
                *rc = perr(P, CPT_EFORMAT, "expected '}}'");
                return NULL;
            }
            P->i++;
        } else if (k->type == T_BBEG) {
            P->i++;
            tok *w = cur(P);
            if (w->type == T_NAME) {
                char kw[32];
                snprintf(kw, sizeof kw, "%.*s", (int)(w->n < 31 ? w->n : 31), w->p);
                if (in_set(stops, kw)) {
                    P->i++;
                    snprintf(stop, 32, "%s", kw);
                    return head;
                }
                if (!strncmp(kw, "end", 3) || !strcmp(kw, "elif") || !strcmp(kw, "else")) {
                    *rc = perr(P, CPT_EFORMAT, "unexpected '{%% %s %%}'", kw);
                    return NULL;
                }
            }
            x = p_stmt(P, rc);
            if (*rc) return NULL;
        } else {
            *rc = perr(P, CPT_EFORMAT, "unexpected token");
            return NULL;
        }
        *tail = x;
        tail = &x->next;
        continue;
    bad:
        *rc = P->err && P->err->code ? P->err->code : CPT_EFORMAT;
        return NULL;
    oom:
        *rc = perr(P, CPT_ENOMEM, "out of memory");
        return NULL;
    }
}

void cpt_jinja_free(cpt_jinja *t) {
    if (!t) return;
    for (size_t i = 0; i < t->nall; i++) node_free(t->all[i]);
    free(t->all);
    free(t->label);
    free(t);
}

int cpt_jinja_parse(cpt_jinja **out, const char *src, size_t n, const char *label, cpt_err *err) {
    *out = NULL;
    cpt_jinja *t = calloc(1, sizeof *t);
    if (!t || !(t->label = strdup(label ? label : "<template>"))) {
        free(t);
        return cpt_err_set(err, CPT_ENOMEM, "template: out of memory");
    }
    /* The nodes point into the source for text: keep a private copy in the label's tail. */
    char *copy = malloc(n + 1);
    if (!copy) {
        cpt_jinja_free(t);
        return cpt_err_set(err, CPT_ENOMEM, "template: out of memory");
    }
    memcpy(copy, src, n);
    copy[n] = 0;
    lexer L = {copy, t->label, n, 0, 1, NULL, 0, 0, err};
    int rc = lex(&L);
    if (!rc) {
        parser P = {&L, 0, t, err};
        t->body = p_body(&P, NULL, NULL, &rc);
    }
    for (size_t i = 0; i < L.nt; i++) free(L.t[i].s);
    free(L.t);
    if (rc) {
        free(copy);
        cpt_jinja_free(t);
        return rc;
    }
    /* text nodes point into `copy`: an extra node owns it (freed with the nodes) */
    jnode *own = calloc(1, sizeof *own);
    jnode **na = own ? realloc(t->all, (t->nall + 1) * sizeof *na) : NULL;
    if (!own || !na) {
        free(own);
        free(copy);
        cpt_jinja_free(t);
        return cpt_err_set(err, CPT_ENOMEM, "template: out of memory");
    }
    t->all = na;
    own->name = copy; /* freed by node_free */
    t->all[t->nall++] = own;
    *out = t;
    return CPT_OK;
}

/* ======================= evaluator ======================= */
/* Values are json_t* (new references); NULL is Jinja's undefined. */
typedef struct ev {
    const cpt_jinja *t;
    json_t **scopes;
    size_t ns, cap;
    char *out;
    size_t on, ocap;
    cpt_err *err;
    int rc;
    int brk; /* 1 break, 2 continue */
} ev;

static int ev_fail(ev *E, const jnode *x, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int ev_fail(ev *E, const jnode *x, int code, const char *fmt, ...) {
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (!E->rc) E->rc = cpt_err_set(E->err, code, "%s:%d: %s", E->t->label, x ? x->line : 0, m);
    return E->rc;
}

static int emit(ev *E, const char *s, size_t n) {
    if (E->on + n + 1 > E->ocap) {
        size_t nc = E->ocap ? E->ocap : 1024;
        while (nc < E->on + n + 1) nc *= 2;
        char *no = realloc(E->out, nc);
        if (!no) return ev_fail(E, NULL, CPT_ENOMEM, "out of memory");
        E->out = no;
        E->ocap = nc;
    }
    memcpy(E->out + E->on, s, n);
    E->on += n;
    return 0;
}

static json_t *lookup(ev *E, const char *name) {
    for (size_t i = E->ns; i-- > 0;) {
        json_t *v = json_object_get(E->scopes[i], name);
        if (v) return json_incref(v);
    }
    return NULL;
}

static int truthy(const json_t *v) {
    if (!v) return 0;
    switch (json_typeof(v)) {
    case JSON_NULL: case JSON_FALSE: return 0;
    case JSON_TRUE: return 1;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_OBJECT: return json_object_size(v) > 0;
    }
    return 0;
}

static int is_num(const json_t *v) { return v && (json_is_integer(v) || json_is_real(v) || json_is_boolean(v)); }
static double num(const json_t *v) {
    return json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : json_is_true(v);
}

/* Python str() of a value into a malloc'ed string. */
static char *to_str(const json_t *v, size_t *n);

static void py_repr_append(const json_t *v, char **b, size_t *n, size_t *cap);
static void app(char **b, size_t *n, size_t *cap, const char *s, size_t k) {
    if (!*b && *cap) return;
    if (*n + k + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        while (nc < *n + k + 1) nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb) {
            free(*b);
            *b = NULL;
            *cap = 1;
            return;
        }
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *n, s, k);
    *n += k;
    (*b)[*n] = 0;
}
static void num_str(const json_t *v, char *buf, size_t bn) {
    if (json_is_integer(v)) snprintf(buf, bn, "%lld", (long long)json_integer_value(v));
    else {
        double d = json_real_value(v);
        snprintf(buf, bn, "%.17g", d);
        for (int p = 1; p <= 17; p++) { /* shortest repr that round-trips, as Python prints */
            char t[64];
            snprintf(t, sizeof t, "%.*g", p, d);
            if (strtod(t, NULL) == d) {
                snprintf(buf, bn, "%s", t);
                break;
            }
        }
        if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", bn - strlen(buf) - 1);
    }
}
static void py_repr_append(const json_t *v, char **b, size_t *n, size_t *cap) {
    char nb[64];
    switch (json_typeof(v)) {
    case JSON_NULL: app(b, n, cap, "None", 4); break;
    case JSON_TRUE: app(b, n, cap, "True", 4); break;
    case JSON_FALSE: app(b, n, cap, "False", 5); break;
    case JSON_INTEGER: case JSON_REAL: num_str(v, nb, sizeof nb); app(b, n, cap, nb, strlen(nb)); break;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t k = json_string_length(v);
        int dq = memchr(s, '\'', k) && !memchr(s, '"', k);
        app(b, n, cap, dq ? "\"" : "'", 1);
        for (size_t i = 0; i < k; i++) {
            char c = s[i];
            if (c == '\\') app(b, n, cap, "\\\\", 2);
            else if (c == '\n') app(b, n, cap, "\\n", 2);
            else if (c == '\t') app(b, n, cap, "\\t", 2);
            else if (c == '\r') app(b, n, cap, "\\r", 2);
            else if (c == '\'' && !dq) app(b, n, cap, "\\'", 2);
            else app(b, n, cap, &c, 1);
        }
        app(b, n, cap, dq ? "\"" : "'", 1);
        break;
    }
    case JSON_ARRAY: {
        app(b, n, cap, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) app(b, n, cap, ", ", 2);
            py_repr_append(json_array_get(v, i), b, n, cap);
        }
        app(b, n, cap, "]", 1);
        break;
    }
    case JSON_OBJECT: {
        app(b, n, cap, "{", 1);
        const char *key;
        json_t *val;
        int first = 1;
        json_object_foreach((json_t *)v, key, val) {
            if (!first) app(b, n, cap, ", ", 2);
            first = 0;
            json_t *ks = json_string(key);
            if (ks) py_repr_append(ks, b, n, cap);
            json_decref(ks);
            app(b, n, cap, ": ", 2);
            py_repr_append(val, b, n, cap);
        }
        app(b, n, cap, "}", 1);
        break;
    }
    }
}
static char *to_str(const json_t *v, size_t *n) {
    char *b = NULL;
    size_t k = 0, cap = 0;
    if (!v) app(&b, &k, &cap, "", 0);
    else if (json_is_string(v)) app(&b, &k, &cap, json_string_value(v), json_string_length(v));
    else py_repr_append(v, &b, &k, &cap);
    if (b && n) *n = k;
    return b;
}

static json_t *eval(ev *E, const jnode *x);

static int values_equal(const json_t *a, const json_t *b) {
    if (!a || !b) return !a && !b;
    if (is_num(a) && is_num(b) && !json_is_boolean(a) && !json_is_boolean(b)) return num(a) == num(b);
    return json_equal((json_t *)a, (json_t *)b);
}

static int contains(const json_t *hay, const json_t *needle) {
    if (json_is_string(hay)) {
        if (!json_is_string(needle)) return -1;
        size_t hn = json_string_length(hay), nn2 = json_string_length(needle);
        if (nn2 == 0) return 1;
        const char *h = json_string_value(hay), *s = json_string_value(needle);
        for (size_t i = 0; i + nn2 <= hn; i++)
            if (!memcmp(h + i, s, nn2)) return 1;
        return 0;
    }
    if (json_is_array(hay)) {
        for (size_t i = 0; i < json_array_size(hay); i++)
            if (values_equal(json_array_get(hay, i), needle)) return 1;
        return 0;
    }
    if (json_is_object(hay)) return json_is_string(needle) && json_object_get(hay, json_string_value(needle)) != NULL;
    return -1;
}

/* Items of an iterable as a new array (strings by character, dicts by key). */
static json_t *iter_items(ev *E, const jnode *x, json_t *v) {
    if (json_is_array(v)) return json_incref(v);
    json_t *a = json_array();
    if (!a) return NULL;
    if (json_is_object(v)) {
        const char *k;
        json_t *val;
        json_object_foreach(v, k, val) json_array_append_new(a, json_string(k));
        return a;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        for (size_t i = 0; i < n;) {
            size_t l = 1;
            unsigned char c = (unsigned char)s[i];
            if (c >= 0xF0) l = 4;
            else if (c >= 0xE0) l = 3;
            else if (c >= 0xC0) l = 2;
            if (i + l > n) l = n - i;
            json_array_append_new(a, json_stringn(s + i, l));
            i += l;
        }
        return a;
    }
    json_decref(a);
    ev_fail(E, x, CPT_EINVAL, "value is not iterable");
    return NULL;
}

static json_t *get_item(const json_t *v, const json_t *key) {
    if (json_is_object(v) && json_is_string(key)) return json_incref(json_object_get(v, json_string_value(key)));
    if ((json_is_array(v) || json_is_string(v)) && json_is_integer(key)) {
        long long i = json_integer_value(key);
        long long n = json_is_array(v) ? (long long)json_array_size(v) : (long long)json_string_length(v);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return NULL;
        if (json_is_array(v)) return json_incref(json_array_get(v, (size_t)i));
        return json_stringn(json_string_value(v) + i, 1);
    }
    return NULL;
}

static int test_apply(ev *E, const jnode *x, const char *nm, json_t *v, json_t **args, size_t na);

static json_t *str_method(ev *E, const jnode *x, const char *m, json_t *self, json_t **args, size_t na) {
    const char *s = json_string_value(self);
    size_t n = json_string_length(self);
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        const char *chars = na && json_is_string(args[0]) ? json_string_value(args[0]) : NULL;
        size_t a = 0, b = n;
#define WS(c) (chars ? strchr(chars, (c)) != NULL && (c) : isspace((unsigned char)(c)))
        if (m[0] != 'r')
            while (a < b && WS(s[a])) a++;
        if (m[0] != 'l')
            while (b > a && WS(s[b - 1])) b--;
#undef WS
        return json_stringn(s + a, b - a);
    }
    if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title")) {
        char *o = malloc(n + 1);
        if (!o) return NULL;
        int prev_alpha = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (m[0] == 'u') o[i] = (char)toupper(c);
            else if (m[0] == 'l') o[i] = (char)tolower(c);
            else o[i] = (char)(prev_alpha ? tolower(c) : toupper(c));
            prev_alpha = isalpha(c) != 0;
        }
        json_t *r = json_stringn(o, n);
        free(o);
        return r;
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        if (na != 1 || !json_is_string(args[0])) {
            ev_fail(E, x, CPT_EINVAL, "%s() takes one string", m);
            return NULL;
        }
        size_t k = json_string_length(args[0]);
        const char *p = json_string_value(args[0]);
        int r = k <= n && !memcmp(m[0] == 's' ? s : s + n - k, p, k);
        return json_boolean(r);
    }
    if (!strcmp(m, "split")) {
        json_t *a = json_array();
        const char *sep = na && json_is_string(args[0]) ? json_string_value(args[0]) : NULL;
        size_t sl = sep ? strlen(sep) : 0, i = 0;
        if (sep && sl) {
            size_t st = 0;
            for (i = 0; i + sl <= n;)
                if (!memcmp(s + i, sep, sl)) {
                    json_array_append_new(a, json_stringn(s + st, i - st));
                    i += sl;
                    st = i;
                } else i++;
            json_array_append_new(a, json_stringn(s + st, n - st));
        } else {
            while (i < n) {
                while (i < n && isspace((unsigned char)s[i])) i++;
                size_t st = i;
                while (i < n && !isspace((unsigned char)s[i])) i++;
                if (i > st) json_array_append_new(a, json_stringn(s + st, i - st));
            }
        }
        return a;
    }
    if (!strcmp(m, "replace")) {
        if (na < 2 || !json_is_string(args[0]) || !json_is_string(args[1])) {
            ev_fail(E, x, CPT_EINVAL, "replace() takes two strings");
            return NULL;
        }
        const char *a = json_string_value(args[0]), *b = json_string_value(args[1]);
        size_t al = json_string_length(args[0]), bl = json_string_length(args[1]);
        char *o = NULL;
        size_t on = 0, cap = 0;
        app(&o, &on, &cap, "", 0);
        for (size_t i = 0; i < n;) {
            if (al && i + al <= n && !memcmp(s + i, a, al)) {
                app(&o, &on, &cap, b, bl);
                i += al;
            } else {
                app(&o, &on, &cap, s + i, 1);
                i++;
            }
        }
        json_t *r = o ? json_stringn(o, on) : NULL;
        free(o);
        return r;
    }
    ev_fail(E, x, CPT_EINVAL, "strings have no method '%s'", m);
    return NULL;
}

static json_t *call(ev *E, const jnode *x) {
    const jnode *f = x->a;
    json_t *args[16] = {0};
    if (x->nargs > 16) {
        ev_fail(E, x, CPT_EUNSUPPORTED, "more than 16 arguments");
        return NULL;
    }
    json_t *r = NULL;
    int is_ns = f->kind == N_NAME && !strcmp(f->name, "namespace");
    if (is_ns) {
        r = json_object();
        json_object_set_new(r, "__namespace__", json_true());
    }
    for (size_t i = 0; i < x->nargs; i++) {
        args[i] = eval(E, x->args[i]);
        if (E->rc) goto done;
        if (is_ns && x->kw[i]) json_object_set(r, x->kw[i], args[i] ? args[i] : json_null());
    }
    if (f->kind == N_NAME) {
        if (is_ns) goto done;
        if (!strcmp(f->name, "raise_exception")) {
            char *m = to_str(x->nargs ? args[0] : NULL, NULL);
            ev_fail(E, x, CPT_EINVAL, "the template raised an exception: %s", m ? m : "?");
            free(m);
            goto done;
        }
        /* range */
        long long a = 0, b = 0, st = 1;
        for (size_t i = 0; i < x->nargs; i++)
            if (!json_is_integer(args[i])) {
                ev_fail(E, x, CPT_EINVAL, "range() takes integers");
                goto done;
            }
        if (x->nargs == 1) b = json_integer_value(args[0]);
        else if (x->nargs >= 2) a = json_integer_value(args[0]), b = json_integer_value(args[1]);
        if (x->nargs == 3) st = json_integer_value(args[2]);
        if (st == 0 || x->nargs == 0 || (b - a) / st > 1000000) {
            ev_fail(E, x, CPT_EINVAL, "bad range()");
            goto done;
        }
        r = json_array();
        for (long long i = a; st > 0 ? i < b : i > b; i += st) json_array_append_new(r, json_integer(i));
        goto done;
    }
    /* method on a value */
    json_t *self = eval(E, f->a);
    if (E->rc) goto done;
    if (!self) {
        ev_fail(E, x, CPT_EINVAL, "'%s()' called on an undefined value", f->name);
        goto done;
    }
    if (json_is_string(self)) r = str_method(E, x, f->name, self, args, x->nargs);
    else if (json_is_object(self)) {
        const char *k;
        json_t *v;
        if (!strcmp(f->name, "items") || !strcmp(f->name, "keys") || !strcmp(f->name, "values")) {
            r = json_array();
            json_object_foreach(self, k, v) {
                if (f->name[0] == 'i') json_array_append_new(r, json_pack("[sO]", k, v));
                else if (f->name[0] == 'k') json_array_append_new(r, json_string(k));
                else json_array_append(r, v);
            }
        } else if (!strcmp(f->name, "get")) {
            r = x->nargs && json_is_string(args[0]) ? json_incref(json_object_get(self, json_string_value(args[0]))) : NULL;
            if (!r) r = x->nargs > 1 && args[1] ? json_incref(args[1]) : json_null();
        } else ev_fail(E, x, CPT_EINVAL, "mappings have no method '%s'", f->name);
    } else ev_fail(E, x, CPT_EINVAL, "no method '%s' on this value", f->name);
    json_decref(self);
done:
    for (size_t i = 0; i < x->nargs; i++) json_decref(args[i]);
    if (E->rc) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static json_t *kwarg(const jnode *x, json_t **args, const char *name, size_t pos) {
    for (size_t i = 0; i < x->nargs; i++)
        if (x->kw[i] && !strcmp(x->kw[i], name)) return args[i];
    size_t k = 0;
    for (size_t i = 0; i < x->nargs; i++)
        if (!x->kw[i] && k++ == pos) return args[i];
    return NULL;
}

static json_t *filter(ev *E, const jnode *x) {
    json_t *v = eval(E, x->a);
    if (E->rc) return NULL;
    json_t *args[16] = {0};
    json_t *r = NULL;
    const char *f = x->name;
    if (x->nargs > 16) {
        ev_fail(E, x, CPT_EUNSUPPORTED, "more than 16 filter arguments");
        goto done;
    }
    for (size_t i = 0; i < x->nargs; i++) {
        args[i] = eval(E, x->args[i]);
        if (E->rc) goto done;
    }
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        json_t *bo = kwarg(x, args, "boolean", 1);
        int use = !v || (bo && truthy(bo) && !truthy(v));
        r = use ? (x->nargs && args[0] ? json_incref(args[0]) : json_string("")) : json_incref(v);
        goto done;
    }
    if (!v) {
        ev_fail(E, x, CPT_EINVAL, "filter '%s' applied to an undefined value", f);
        goto done;
    }
    if (!strcmp(f, "trim")) {
        if (!json_is_string(v)) {
            char *s = to_str(v, NULL);
            json_t *sv = json_string(s ? s : "");
            free(s);
            r = str_method(E, x, "strip", sv, NULL, 0);
            json_decref(sv);
        } else r = str_method(E, x, "strip", v, NULL, 0);
    } else if (!strcmp(f, "length") || !strcmp(f, "count")) {
        size_t n = json_is_string(v) ? 0 : json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : (size_t)-1;
        if (json_is_string(v)) { /* characters, not bytes */
            const char *s = json_string_value(v);
            for (size_t i = 0; i < json_string_length(v); i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
        }
        if (n == (size_t)-1) ev_fail(E, x, CPT_EINVAL, "length of a value without one");
        else r = json_integer((json_int_t)n);
    } else if (!strcmp(f, "tojson")) {
        json_t *ind = kwarg(x, args, "indent", 0);
        size_t flags = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;
        if (ind && json_is_integer(ind)) flags |= JSON_INDENT((int)json_integer_value(ind));
        char *s = json_dumps(v, flags);
        r = s ? json_string(s) : NULL;
        free(s);
    } else if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "title") || !strcmp(f, "capitalize")) {
        char *s = to_str(v, NULL);
        json_t *sv = json_string(s ? s : "");
        free(s);
        if (!strcmp(f, "capitalize")) {
            json_t *lo = str_method(E, x, "lower", sv, NULL, 0);
            char *c = lo ? strdup(json_string_value(lo)) : NULL;
            if (c && c[0]) c[0] = (char)toupper((unsigned char)c[0]);
            r = c ? json_string(c) : NULL;
            free(c);
            json_decref(lo);
        } else r = str_method(E, x, f, sv, NULL, 0);
        json_decref(sv);
    } else if (!strcmp(f, "string")) {
        size_t n = 0;
        char *s = to_str(v, &n);
        r = s ? json_stringn(s, n) : NULL;
        free(s);
    } else if (!strcmp(f, "list")) {
        r = iter_items(E, x, v);
    } else if (!strcmp(f, "items")) {
        if (!json_is_object(v)) ev_fail(E, x, CPT_EINVAL, "items of a non-mapping");
        else {
            r = json_array();
            const char *k;
            json_t *val;
            json_object_foreach(v, k, val) json_array_append_new(r, json_pack("[sO]", k, val));
        }
    } else if (!strcmp(f, "first") || !strcmp(f, "last")) {
        json_t *it = iter_items(E, x, v);
        size_t n = it ? json_array_size(it) : 0;
        r = n ? json_incref(json_array_get(it, f[0] == 'f' ? 0 : n - 1)) : NULL;
        json_decref(it);
    } else if (!strcmp(f, "join")) {
        json_t *it = iter_items(E, x, v);
        json_t *sep = kwarg(x, args, "d", 0);
        char *o = NULL;
        size_t on = 0, cap = 0;
        app(&o, &on, &cap, "", 0);
        for (size_t i = 0; it && i < json_array_size(it); i++) {
            if (i && sep && json_is_string(sep)) app(&o, &on, &cap, json_string_value(sep), json_string_length(sep));
            size_t k = 0;
            char *s = to_str(json_array_get(it, i), &k);
            if (s) app(&o, &on, &cap, s, k);
            free(s);
        }
        r = it && o ? json_stringn(o, on) : NULL;
        free(o);
        json_decref(it);
    } else if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr") || !strcmp(f, "select") || !strcmp(f, "reject") ||
               !strcmp(f, "map")) {
        json_t *it = iter_items(E, x, v);
        int attr = !strcmp(f, "selectattr") || !strcmp(f, "rejectattr"), keep_if = f[0] == 's';
        if (!strcmp(f, "map")) {
            json_t *an = kwarg(x, args, "attribute", 99);
            if (!an || !json_is_string(an)) {
                ev_fail(E, x, CPT_EUNSUPPORTED, "only map(attribute='name') is supported");
            } else {
                r = json_array();
                for (size_t i = 0; it && i < json_array_size(it); i++) {
                    json_t *e = get_item(json_array_get(it, i), an);
                    json_array_append_new(r, e ? e : json_null());
                }
            }
            json_decref(it);
            goto done;
        }
        size_t a0 = attr ? 1 : 0;
        const char *tn = x->nargs > a0 && json_is_string(args[a0]) ? json_string_value(args[a0]) : NULL;
        if (tn && !known(TESTS, tn)) {
            ev_fail(E, x, CPT_EUNSUPPORTED, "unsupported test '%s' in %s", tn, f);
            json_decref(it);
            goto done;
        }
        r = json_array();
        for (size_t i = 0; it && i < json_array_size(it) && !E->rc; i++) {
            json_t *e = json_array_get(it, i);
            json_t *subj = attr ? get_item(e, args[0]) : json_incref(e);
            int ok = tn ? test_apply(E, x, tn, subj, args + a0 + 1, x->nargs - a0 - 1) : truthy(subj);
            json_decref(subj);
            if (ok == keep_if) json_array_append(r, e);
        }
        json_decref(it);
    } else if (!strcmp(f, "int") || !strcmp(f, "float") || !strcmp(f, "abs")) {
        double d = json_is_string(v) ? strtod(json_string_value(v), NULL) : num(v);
        if (!strcmp(f, "abs")) d = fabs(d);
        r = !strcmp(f, "float") || (!strcmp(f, "abs") && json_is_real(v)) ? json_real(d) : json_integer((json_int_t)d);
    } else if (!strcmp(f, "replace")) {
        r = json_is_string(v) ? str_method(E, x, "replace", v, args, x->nargs) : NULL;
        if (!r && !E->rc) ev_fail(E, x, CPT_EINVAL, "replace on a non-string");
    }
done:
    for (size_t i = 0; i < x->nargs; i++) json_decref(args[i]);
    json_decref(v);
    if (E->rc) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static int test_apply(ev *E, const jnode *x, const char *nm, json_t *v, json_t **args, size_t na) {
    if (!strcmp(nm, "defined")) return v != NULL;
    if (!strcmp(nm, "undefined")) return v == NULL;
    if (!strcmp(nm, "none")) return v && json_is_null(v);
    if (!strcmp(nm, "string")) return v && json_is_string(v);
    if (!strcmp(nm, "number")) return v && (json_is_integer(v) || json_is_real(v));
    if (!strcmp(nm, "integer")) return v && json_is_integer(v);
    if (!strcmp(nm, "float")) return v && json_is_real(v);
    if (!strcmp(nm, "boolean")) return v && json_is_boolean(v);
    if (!strcmp(nm, "true")) return v && json_is_true(v);
    if (!strcmp(nm, "false")) return v && json_is_false(v);
    if (!strcmp(nm, "mapping")) return v && json_is_object(v);
    if (!strcmp(nm, "iterable")) return v && (json_is_array(v) || json_is_object(v) || json_is_string(v));
    if (!strcmp(nm, "sequence")) return v && (json_is_array(v) || json_is_object(v) || json_is_string(v));
    if (!strcmp(nm, "odd") || !strcmp(nm, "even")) return v && json_is_integer(v) && (json_integer_value(v) % 2 != 0) == (nm[0] == 'o');
    if (na < 1) {
        ev_fail(E, x, CPT_EINVAL, "test '%s' needs an argument", nm);
        return 0;
    }
    if (!strcmp(nm, "equalto") || !strcmp(nm, "eq") || !strcmp(nm, "==")) return values_equal(v, args[0]);
    if (!strcmp(nm, "ne")) return !values_equal(v, args[0]);
    if (!strcmp(nm, "lt") || !strcmp(nm, "gt")) {
        if (!is_num(v) || !is_num(args[0])) return 0;
        return nm[0] == 'l' ? num(v) < num(args[0]) : num(v) > num(args[0]);
    }
    if (!strcmp(nm, "divisibleby"))
        return v && json_is_integer(v) && json_is_integer(args[0]) && json_integer_value(args[0]) &&
               json_integer_value(v) % json_integer_value(args[0]) == 0;
    if (!strcmp(nm, "in")) return args[0] && contains(args[0], v) == 1;
    return 0;
}

static json_t *binop(ev *E, const jnode *x, json_t *a, json_t *b) {
    int op = x->op;
    if (op == OP_EQ) return json_boolean(values_equal(a, b));
    if (op == OP_NE) return json_boolean(!values_equal(a, b));
    if (op == OP_IN || op == OP_NOTIN) {
        int c = b ? contains(b, a) : -1;
        if (c < 0) {
            ev_fail(E, x, CPT_EINVAL, "'in' needs a string, list or mapping on the right");
            return NULL;
        }
        return json_boolean(op == OP_IN ? c : !c);
    }
    if (op == OP_CAT) {
        size_t na = 0, nb = 0;
        char *sa = to_str(a, &na), *sb = to_str(b, &nb);
        json_t *r = NULL;
        char *o = sa && sb ? malloc(na + nb + 1) : NULL;
        if (o) {
            memcpy(o, sa, na);
            memcpy(o + na, sb, nb);
            r = json_stringn(o, na + nb);
        }
        free(o);
        free(sa);
        free(sb);
        return r;
    }
    if (op == OP_ADD && json_is_string(a) && json_is_string(b)) {
        size_t na = json_string_length(a), nb = json_string_length(b);
        char *o = malloc(na + nb + 1);
        if (!o) return NULL;
        memcpy(o, json_string_value(a), na);
        memcpy(o + na, json_string_value(b), nb);
        json_t *r = json_stringn(o, na + nb);
        free(o);
        return r;
    }
    if (op == OP_ADD && json_is_array(a) && json_is_array(b)) {
        json_t *r = json_copy(a);
        json_array_extend(r, b);
        return r;
    }
    if (op >= OP_LT && op <= OP_GE && json_is_string(a) && json_is_string(b)) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        return json_boolean(op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
    }
    if (!is_num(a) || !is_num(b)) {
        static const char *const names[] = {"+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", "<=", ">", ">="};
        ev_fail(E, x, CPT_EINVAL, "unsupported operand types for '%s'%s", names[op],
                !a || !b ? " (an operand is undefined)" : "");
        return NULL;
    }
    double p = num(a), q = num(b);
    int ints = !json_is_real(a) && !json_is_real(b);
    switch (op) {
    case OP_LT: return json_boolean(p < q);
    case OP_LE: return json_boolean(p <= q);
    case OP_GT: return json_boolean(p > q);
    case OP_GE: return json_boolean(p >= q);
    case OP_DIV:
        if (q == 0) break;
        return json_real(p / q);
    default: break;
    }
    if ((op == OP_FDIV || op == OP_MOD || op == OP_DIV) && q == 0) {
        ev_fail(E, x, CPT_EINVAL, "division by zero");
        return NULL;
    }
    if (ints) {
        long long i = (long long)p, j = (long long)q;
        switch (op) {
        case OP_ADD: return json_integer(i + j);
        case OP_SUB: return json_integer(i - j);
        case OP_MUL: return json_integer(i * j);
        case OP_FDIV: return json_integer((long long)floor((double)i / (double)j));
        case OP_MOD: return json_integer(((i % j) + j) % j); /* Python's sign rule */
        }
    }
    switch (op) {
    case OP_ADD: return json_real(p + q);
    case OP_SUB: return json_real(p - q);
    case OP_MUL: return json_real(p * q);
    case OP_FDIV: return json_real(floor(p / q));
    case OP_MOD: return json_real(p - q * floor(p / q));
    }
    return NULL;
}

static json_t *eval(ev *E, const jnode *x) {
    if (E->rc) return NULL;
    switch (x->kind) {
    case N_LIT: return json_incref(x->lit);
    case N_NAME: return lookup(E, x->name);
    case N_ATTR: {
        json_t *v = eval(E, x->a);
        if (E->rc) return NULL;
        if (!v) {
            ev_fail(E, x, CPT_EINVAL, "'.%s' of an undefined value", x->name);
            return NULL;
        }
        json_t *r = json_is_object(v) ? json_incref(json_object_get(v, x->name)) : NULL;
        json_decref(v);
        return r;
    }
    case N_ITEM: {
        json_t *v = eval(E, x->a), *k = v ? eval(E, x->b) : NULL;
        if (!E->rc && !v) ev_fail(E, x, CPT_EINVAL, "subscript of an undefined value");
        json_t *r = E->rc ? NULL : get_item(v, k);
        json_decref(v);
        json_decref(k);
        return r;
    }
    case N_SLICE: {
        json_t *v = eval(E, x->a);
        json_t *bs[3] = {x->b ? eval(E, x->b) : NULL, x->c ? eval(E, x->c) : NULL, x->d ? eval(E, x->d) : NULL};
        json_t *r = NULL;
        if (!E->rc && !(json_is_array(v) || json_is_string(v))) ev_fail(E, x, CPT_EINVAL, "slice of a value that is not a list or string");
        if (!E->rc) {
            long long n = json_is_array(v) ? (long long)json_array_size(v) : (long long)json_string_length(v);
            long long st = bs[2] && json_is_integer(bs[2]) ? json_integer_value(bs[2]) : 1;
            if (st == 0) st = 1;
            long long a = st > 0 ? 0 : n - 1, b = st > 0 ? n : -n - 1;
            if (bs[0] && json_is_integer(bs[0])) a = json_integer_value(bs[0]);
            if (bs[1] && json_is_integer(bs[1])) b = json_integer_value(bs[1]);
            if (a < 0) a += n;
            if (b < 0) b += n;
            if (st > 0) {
                a = a < 0 ? 0 : a > n ? n : a;
                b = b < 0 ? 0 : b > n ? n : b;
            } else {
                a = a < -1 ? -1 : a > n - 1 ? n - 1 : a;
                b = b < -1 ? -1 : b > n - 1 ? n - 1 : b;
            }
            if (json_is_array(v)) {
                r = json_array();
                for (long long i = a; st > 0 ? i < b : i > b; i += st) json_array_append(r, json_array_get(v, (size_t)i));
            } else { /* byte slicing: exact for ASCII (templates slice JSON text) */
                const char *s = json_string_value(v);
                char *o = malloc((size_t)n + 1);
                size_t k = 0;
                for (long long i = a; o && (st > 0 ? i < b : i > b); i += st) o[k++] = s[i];
                r = o ? json_stringn(o, k) : NULL;
                free(o);
            }
        }
        json_decref(v);
        for (int i = 0; i < 3; i++) json_decref(bs[i]);
        return r;
    }
    case N_CALL: return call(E, x);
    case N_FILTER: return filter(E, x);
    case N_TEST: {
        json_t *v = eval(E, x->a);
        json_t *args[4] = {0};
        for (size_t i = 0; i < x->nargs && i < 4; i++) args[i] = eval(E, x->args[i]);
        int r = E->rc ? 0 : test_apply(E, x, x->name, v, args, x->nargs);
        json_decref(v);
        for (size_t i = 0; i < 4; i++) json_decref(args[i]);
        return E->rc ? NULL : json_boolean(x->neg ? !r : r);
    }
    case N_NOT: {
        json_t *v = eval(E, x->a);
        int t = truthy(v);
        json_decref(v);
        return E->rc ? NULL : json_boolean(!t);
    }
    case N_NEG: {
        json_t *v = eval(E, x->a);
        json_t *r = NULL;
        if (!E->rc && !is_num(v)) ev_fail(E, x, CPT_EINVAL, "unary '-' of a non-number");
        else if (!E->rc) r = json_is_real(v) ? json_real(-json_real_value(v)) : json_integer(-(json_int_t)num(v));
        json_decref(v);
        return r;
    }
    case N_AND: case N_OR: {
        json_t *a = eval(E, x->a);
        if (E->rc) return NULL;
        if (truthy(a) == (x->kind == N_OR)) return a;
        json_decref(a);
        return eval(E, x->b);
    }
    case N_COND: {
        json_t *c = eval(E, x->b);
        int t = truthy(c);
        json_decref(c);
        if (E->rc) return NULL;
        return t ? eval(E, x->a) : x->c ? eval(E, x->c) : NULL;
    }
    case N_BIN: {
        json_t *a = eval(E, x->a), *b = eval(E, x->b);
        json_t *r = E->rc ? NULL : binop(E, x, a, b);
        json_decref(a);
        json_decref(b);
        if (!r && !E->rc && x->op != OP_CAT) ev_fail(E, x, CPT_ENOMEM, "out of memory");
        return r;
    }
    case N_LIST: case N_DICT: {
        json_t *r = x->kind == N_LIST ? json_array() : json_object();
        for (size_t i = 0; i < x->nargs && !E->rc; i++) {
            json_t *v = eval(E, x->args[i]);
            if (x->kind == N_LIST) json_array_append_new(r, v ? v : json_null());
            else {
                json_t *val = eval(E, x->args[++i]);
                if (json_is_string(v)) json_object_set_new(r, json_string_value(v), val ? val : json_null());
                else {
                    json_decref(val);
                    ev_fail(E, x, CPT_EINVAL, "dict keys must be strings");
                }
                json_decref(v);
            }
        }
        if (E->rc) {
            json_decref(r);
            return NULL;
        }
        return r;
    }
    }
    ev_fail(E, x, CPT_EINVAL, "cannot evaluate this node");
    return NULL;
}

static int push_scope(ev *E) {
    if (E->ns == E->cap) {
        size_t nc = E->cap ? 2 * E->cap : 8;
        json_t **n = realloc(E->scopes, nc * sizeof *n);
        if (!n) return ev_fail(E, NULL, CPT_ENOMEM, "out of memory");
        E->scopes = n;
        E->cap = nc;
    }
    E->scopes[E->ns] = json_object();
    if (!E->scopes[E->ns]) return ev_fail(E, NULL, CPT_ENOMEM, "out of memory");
    E->ns++;
    return 0;
}
static void pop_scope(ev *E) { json_decref(E->scopes[--E->ns]); }

static int exec(ev *E, const jnode *x);

static int bind_targets(ev *E, const jnode *x, json_t *scope, json_t *item) {
    if (!x->t2) return json_object_set(scope, x->name, item ? item : json_null());
    if (!json_is_array(item) || json_array_size(item) != 2)
        return ev_fail(E, x, CPT_EINVAL, "cannot unpack into '%s, %s': not a pair", x->name, x->t2);
    json_object_set(scope, x->name, json_array_get(item, 0));
    json_object_set(scope, x->t2, json_array_get(item, 1));
    return 0;
}

static int exec_for(ev *E, const jnode *x) {
    json_t *seq = eval(E, x->a);
    if (E->rc) return E->rc;
    if (!seq) return ev_fail(E, x, CPT_EINVAL, "for loop over an undefined value");
    json_t *items = iter_items(E, x, seq);
    json_decref(seq);
    if (!items) return E->rc;
    if (x->d) { /* loop filter: applied before loop.* is computed, as Jinja does */
        json_t *kept = json_array();
        if (push_scope(E)) {
            json_decref(items);
            json_decref(kept);
            return E->rc;
        }
        for (size_t i = 0; i < json_array_size(items) && !E->rc; i++) {
            json_t *it = json_array_get(items, i);
            if (bind_targets(E, x, E->scopes[E->ns - 1], it)) break;
            json_t *c = eval(E, x->d);
            if (truthy(c)) json_array_append(kept, it);
            json_decref(c);
        }
        pop_scope(E);
        json_decref(items);
        items = kept;
    }
    size_t n = json_array_size(items);
    for (size_t i = 0; i < n && !E->rc; i++) {
        if (push_scope(E)) break;
        json_t *sc = E->scopes[E->ns - 1];
        bind_targets(E, x, sc, json_array_get(items, i));
        json_t *loop = json_pack("{sIsIsbsbsIsIsI}", "index", (json_int_t)i + 1, "index0", (json_int_t)i, "first",
                                 i == 0, "last", i + 1 == n, "length", (json_int_t)n, "revindex", (json_int_t)(n - i),
                                 "revindex0", (json_int_t)(n - i - 1));
        if (i > 0) json_object_set(loop, "previtem", json_array_get(items, i - 1));
        if (i + 1 < n) json_object_set(loop, "nextitem", json_array_get(items, i + 1));
        json_object_set_new(sc, "loop", loop);
        for (const jnode *s = x->b; s && !E->rc && !E->brk; s = s->next) exec(E, s);
        pop_scope(E);
        if (E->brk == 1) {
            E->brk = 0;
            break;
        }
        E->brk = 0;
    }
    if (n == 0 && x->c)
        for (const jnode *s = x->c; s && !E->rc; s = s->next) exec(E, s);
    json_decref(items);
    return E->rc;
}

static int exec(ev *E, const jnode *x) {
    if (E->rc) return E->rc;
    switch (x->kind) {
    case S_TEXT: return emit(E, x->txt, x->tlen);
    case S_OUT: {
        json_t *v = eval(E, x->a);
        if (E->rc) return E->rc;
        size_t n = 0;
        char *s = to_str(v, &n);
        json_decref(v);
        if (!s) return ev_fail(E, x, CPT_ENOMEM, "out of memory");
        int rc = emit(E, s, n);
        free(s);
        return rc;
    }
    case S_IF: {
        const jnode *c = x;
        for (;;) {
            json_t *v = eval(E, c->a);
            int t = truthy(v);
            json_decref(v);
            if (E->rc) return E->rc;
            const jnode *body = t ? c->b : c->d ? NULL : c->c;
            if (!t && c->d) {
                c = c->d;
                continue;
            }
            for (const jnode *s = body; s && !E->rc && !E->brk; s = s->next) exec(E, s);
            return E->rc;
        }
    }
    case S_FOR: return exec_for(E, x);
    case S_SET: {
        json_t *v = eval(E, x->a);
        if (E->rc) return E->rc;
        json_object_set_new(E->scopes[E->ns - 1], x->name, v ? v : json_null());
        return 0;
    }
    case S_SETATTR: {
        json_t *ns = lookup(E, x->name);
        if (!ns || !json_is_object(ns) || !json_object_get(ns, "__namespace__")) {
            json_decref(ns);
            return ev_fail(E, x, CPT_EINVAL, "'set %s.%s': %s is not a namespace()", x->name, x->t2, x->name);
        }
        json_t *v = eval(E, x->a);
        if (!E->rc) json_object_set_new(ns, x->t2, v ? v : json_null());
        json_decref(ns);
        return E->rc;
    }
    case S_BREAK: E->brk = 1; return 0;
    case S_CONT: E->brk = 2; return 0;
    }
    return ev_fail(E, x, CPT_EINVAL, "cannot execute this statement");
}

int cpt_jinja_render(const cpt_jinja *t, const char *ctx_json, size_t ctx_len, char **out, size_t *out_len,
                     cpt_err *err) {
    *out = NULL;
    json_error_t je;
    json_t *ctx = json_loadb(ctx_json, ctx_len, 0, &je);
    if (!ctx || !json_is_object(ctx)) {
        json_decref(ctx);
        return cpt_err_set(err, CPT_EINVAL, "%s: the render context is not a JSON object (%s)", t->label,
                           ctx ? "not an object" : je.text);
    }
    ev E = {t, NULL, 0, 0, NULL, 0, 0, err, 0, 0};
    if (!push_scope(&E)) {
        json_decref(E.scopes[0]);
        E.scopes[0] = ctx; /* the context is the outermost scope */
        ctx = NULL;
        if (!push_scope(&E))
            for (const jnode *s = t->body; s && !E.rc; s = s->next) exec(&E, s);
    }
    json_decref(ctx);
    while (E.ns) pop_scope(&E);
    free(E.scopes);
    if (!E.rc && emit(&E, "", 0) == 0) {
        E.out[E.on] = 0;
        *out = E.out;
        if (out_len) *out_len = E.on;
        return CPT_OK;
    }
    free(E.out);
    return E.rc ? E.rc : CPT_ENOMEM;
}
