/* filter.c: Gopher repetition/quality and C4 document filters with per-rule counts (methods.md §11.3-11.4); not dedup. */
#include "cpt/filter.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static const char *rule_names[CPT_FR_N_RULES] = {
    "kept",
    "gopher_dup_paras", "gopher_dup_para_chars", "gopher_dup_lines", "gopher_dup_line_chars",
    "gopher_top_2gram", "gopher_top_3gram", "gopher_top_4gram",
    "gopher_dup_5gram", "gopher_dup_6gram", "gopher_dup_7gram", "gopher_dup_8gram",
    "gopher_dup_9gram", "gopher_dup_10gram",
    "gopher_few_words", "gopher_many_words", "gopher_short_words", "gopher_long_words",
    "gopher_hashes", "gopher_ellipses", "gopher_bullet_lines", "gopher_ellipsis_lines",
    "gopher_alpha_words", "gopher_stop_words",
    "c4_lorem_ipsum", "c4_curly_bracket", "c4_few_sentences",
};
static const char *line_rule_names[CPT_C4L_N] = {
    "c4_line_long_word", "c4_line_no_terminal_punct", "c4_line_few_words", "c4_line_javascript",
    "c4_line_policy",
};

const char *cpt_filter_rule_name(int r) { return r >= 0 && r < CPT_FR_N_RULES ? rule_names[r] : "?"; }
const char *cpt_filter_line_rule_name(int r) { return r >= 0 && r < CPT_C4L_N ? line_rule_names[r] : "?"; }

void cpt_filter_cfg_default(cpt_filter_cfg *c) {
    memset(c, 0, sizeof *c);
    c->gopher_repetition = c->gopher_quality = c->c4 = 1;
    c->dup_para_frac = 0.30;
    c->dup_para_char_frac = 0.20;
    c->dup_line_frac = 0.30;
    c->dup_line_char_frac = 0.20;
    c->top_ngram_frac[0] = 0.20;
    c->top_ngram_frac[1] = 0.18;
    c->top_ngram_frac[2] = 0.16;
    for (int i = 0; i < 6; i++) c->dup_ngram_frac[i] = 0.15 - 0.01 * i;
    c->min_words = 50;
    c->max_words = -1; /* Gopher's 100000 is a web-page limit; a book has more */
    c->min_mean_word_len = 3;
    c->max_mean_word_len = 10;
    c->max_hash_ratio = 0.1;
    c->max_ellipsis_ratio = 0.1;
    c->max_bullet_lines = 0.9;
    c->max_ellipsis_lines = 0.3;
    c->min_alpha_words = 0.8;
    c->min_stop_words = 2;
    c->c4_max_word_len = 1000;
    c->c4_min_words_per_line = 3;
    c->c4_min_sentences = 5;
    c->c4_citations = c->c4_terminal_punct = c->c4_lorem = c->c4_javascript = c->c4_curly = c->c4_policy = 1;
    c->script_aware = 1;
}

/* Scripts written without spaces between words (or, Hangul, with fused particles). */
static int nospace_cp(uint32_t cp) {
    return (cp >= 0x0E00 && cp <= 0x0FFF) ||   /* Thai, Lao, Tibetan */
           (cp >= 0x1000 && cp <= 0x109F) ||   /* Myanmar */
           (cp >= 0x1100 && cp <= 0x11FF) ||   /* Hangul jamo */
           (cp >= 0x1780 && cp <= 0x17FF) ||   /* Khmer */
           (cp >= 0x2E80 && cp <= 0x2FDF) ||   /* CJK radicals */
           (cp >= 0x3040 && cp <= 0x31FF) ||   /* kana, bopomofo, Hangul compatibility jamo */
           (cp >= 0x3400 && cp <= 0x4DBF) ||   /* CJK extension A */
           (cp >= 0x4E00 && cp <= 0x9FFF) ||   /* CJK unified ideographs */
           (cp >= 0xAC00 && cp <= 0xD7AF) ||   /* Hangul syllables */
           (cp >= 0xF900 && cp <= 0xFAFF) ||   /* CJK compatibility ideographs */
           (cp >= 0xFF66 && cp <= 0xFF9F) ||   /* half-width katakana */
           (cp >= 0x20000 && cp <= 0x3134F);   /* CJK extensions B-G */
}
static int latin_cp(uint32_t cp) {
    return (cp < 0x80 && isalpha((int)cp)) || (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) ||
           (cp >= 0x1E00 && cp <= 0x1EFF) || (cp >= 0xFF21 && cp <= 0xFF5A);
}

int cpt_filter_script(const char *s, size_t n) {
    uint64_t latin = 0, nospace = 0, other = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = txt_next(s, n, &i);
        if (nospace_cp(cp)) nospace++;
        else if (latin_cp(cp)) latin++;
        else if (cp >= 0x80 && txt_is_alpha(cp)) other++;
    }
    uint64_t all = latin + nospace + other;
    if (2 * nospace > all) return CPT_SCRIPT_NOSPACE;
    if (2 * other > all) return CPT_SCRIPT_OTHER;
    return CPT_SCRIPT_LATIN;
}

const char *cpt_filter_script_name(int sc) {
    static const char *const names[CPT_SCRIPT_N] = {"latin", "other", "nospace"};
    return sc >= 0 && sc < CPT_SCRIPT_N ? names[sc] : "?";
}

void cpt_filter_cfg_for_script(const cpt_filter_cfg *c, int script, cpt_filter_cfg *o) {
    *o = *c;
    if (script == CPT_SCRIPT_LATIN) return;
    o->min_stop_words = -1; /* an English list */
    o->c4_terminal_punct = 0;
    o->c4_min_sentences = -1;
    if (script != CPT_SCRIPT_NOSPACE) return;
    o->min_words = o->max_words = o->min_mean_word_len = o->max_mean_word_len = -1;
    o->max_hash_ratio = o->max_ellipsis_ratio = o->min_alpha_words = -1;
    for (int k = 0; k < 3; k++) o->top_ngram_frac[k] = -1;
    for (int k = 0; k < 6; k++) o->dup_ngram_frac[k] = -1;
    o->c4_min_words_per_line = o->c4_max_word_len = -1; /* whitespace words */
}

static const char *const kind_names[CPT_KIND_N] = {"auto", "web", "book", "code"};
const char *cpt_filter_kind_name(int k) { return k >= 0 && k < CPT_KIND_N ? kind_names[k] : "?"; }
int cpt_filter_kind_parse(const char *name) {
    for (int k = 0; name && k < CPT_KIND_N; k++)
        if (!strcmp(name, kind_names[k])) return k;
    return -1;
}

void cpt_filter_cfg_for_kind(const cpt_filter_cfg *c, int kind, cpt_filter_cfg *o) {
    *o = *c;
    if (kind == CPT_KIND_BOOK) o->c4 = 0;
    if (kind == CPT_KIND_CODE) o->gopher_repetition = o->gopher_quality = o->c4 = 0;
}

static int is_ws_byte(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

/* Strip ASCII and Unicode whitespace from both ends of [*a, *b). */
static void strip(const char *s, size_t *a, size_t *b) {
    while (*a < *b) {
        size_t k = *a;
        if (!txt_is_space(txt_next(s, *b, &k))) break;
        *a = k;
    }
    while (*b > *a) {
        size_t st = *b - 1;
        while (st > *a && ((uint8_t)s[st] & 0xC0) == 0x80) st--;
        size_t k = st;
        if (!txt_is_space(txt_next(s, *b, &k)) || k != *b) break;
        *b = st;
    }
}

/* Duplicate elements and their characters (Gopher find_duplicates). */
static int dup_stats(const char *s, const txt_span *el, size_t n, size_t *dup_el, size_t *dup_ch) {
    txt_counter c;
    if (txt_counter_init(&c, n)) return -1;
    *dup_el = *dup_ch = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = txt_counter_add(&c, txt_hash64(s + el[i].off, el[i].len, 1));
        if (k == 0) {
            txt_counter_free(&c);
            return -1;
        }
        if (k > 1) {
            (*dup_el)++;
            *dup_ch += el[i].nchars;
        }
    }
    txt_counter_free(&c);
    return 0;
}

/* Bytes of the line break at s[i] (i < b): "\r\n" 2, '\n' or a lone '\r' 1, else 0. */
static size_t nl_len(const char *s, size_t i, size_t b) {
    if (s[i] == '\n') return 1;
    if (s[i] == '\r') return i + 1 < b && s[i + 1] == '\n' ? 2 : 1;
    return 0;
}

/* Append a span to the growable array *v (capacity *cap, count *n); on failure frees it, -1. */
static int span_push(txt_span **v, size_t *cap, size_t *n, size_t off, size_t len, size_t nchars) {
    if (*n == *cap) {
        txt_span *nv = realloc(*v, 2 * *cap * sizeof *nv);
        if (!nv) {
            free(*v);
            return -1;
        }
        *v = nv;
        *cap *= 2;
    }
    (*v)[*n] = (txt_span){off, len, nchars};
    (*n)++;
    return 0;
}

/* Split [a, b) on runs of at least `minrun` line breaks (re.split(r"\n{minrun,}") on the text
 * with "\r\n" and lone "\r" read as "\n": a file with Windows line endings has the same lines,
 * paragraphs and duplicate fractions as its "\n" copy, not a duplicate "\r" per blank line). */
static size_t split_nl(const char *s, size_t a, size_t b, int minrun, txt_span **out) {
    size_t cap = 16, n = 0, start = a;
    txt_span *v = malloc(cap * sizeof *v);
    if (!v) return (size_t)-1;
    size_t i = a;
    for (;;) {
        int at_end = i >= b;
        size_t run = 0, breaks = 0, k;
        if (!at_end)
            while (i + run < b && (k = nl_len(s, i + run, b))) run += k, breaks++;
        if (at_end || (int)breaks >= minrun) {
            if (span_push(&v, &cap, &n, start, i - start, txt_nchars(s + start, i - start))) return (size_t)-1;
            if (at_end) break;
            i += run;
            start = i;
        } else {
            i += run ? run : 1;
        }
    }
    *out = v;
    return n;
}

/* Hash of the n words from w joined by `sep` (a byte or 0 for none); *chars gets its length. */
static uint64_t ngram_hash(const char *s, const txt_span *w, int n, char sep, size_t *chars) {
    uint64_t h = TXT_FNV0;
    size_t ch = 0;
    for (int j = 0; j < n; j++) {
        if (j && sep) {
            h = txt_fnv(h, &sep, 1);
            ch++;
        }
        h = txt_fnv(h, s + w[j].off, w[j].len);
        ch += w[j].nchars;
    }
    *chars = ch;
    return h;
}

int cpt_filter_gopher_repetition(const cpt_filter_cfg *c, const char *s, size_t n) {
    double L = (double)txt_nchars(s, n);
    size_t a = 0, b = n, de, dc;
    txt_span *el = NULL, *w = NULL;
    uint64_t *hs = NULL;
    int rule = CPT_FR_KEEP;
    strip(s, &a, &b);
    size_t np = split_nl(s, a, b, 2, &el);
    if (np == (size_t)-1 || dup_stats(s, el, np, &de, &dc)) goto oom;
    if (c->dup_para_frac >= 0 && (double)de / np > c->dup_para_frac) { rule = CPT_FR_DUP_PARAS; goto done; }
    if (c->dup_para_char_frac >= 0 && L > 0 && dc / L > c->dup_para_char_frac) { rule = CPT_FR_DUP_PARA_CHARS; goto done; }
    free(el);
    el = NULL;
    size_t nl = split_nl(s, 0, n, 1, &el);
    if (nl == (size_t)-1 || dup_stats(s, el, nl, &de, &dc)) goto oom;
    if (c->dup_line_frac >= 0 && (double)de / nl > c->dup_line_frac) { rule = CPT_FR_DUP_LINES; goto done; }
    if (c->dup_line_char_frac >= 0 && L > 0 && dc / L > c->dup_line_char_frac) { rule = CPT_FR_DUP_LINE_CHARS; goto done; }
    size_t nw = txt_words(s, n, &w);
    if (nw == (size_t)-1) goto oom;
    hs = malloc((nw + 1) * sizeof *hs);
    if (!hs) goto oom;
    for (int g = 2; g <= 4; g++) {
        double lim = c->top_ngram_frac[g - 2];
        if (lim < 0 || nw < (size_t)g || L == 0) continue;
        txt_counter cnt;
        if (txt_counter_init(&cnt, nw)) goto oom;
        uint32_t best = 0;
        size_t ch;
        for (size_t i = 0; i + g <= nw; i++) {
            hs[i] = ngram_hash(s, w + i, g, ' ', &ch);
            uint32_t k = txt_counter_add(&cnt, hs[i]);
            if (k == 0) {
                txt_counter_free(&cnt);
                goto oom;
            }
            if (k > best) best = k;
        }
        /* Counter.most_common(1): ties go to the n-gram seen first. */
        size_t top = 0;
        for (size_t i = 0; i + g <= nw; i++)
            if (txt_counter_get(&cnt, hs[i]) == best) {
                ngram_hash(s, w + i, g, ' ', &top);
                break;
            }
        txt_counter_free(&cnt);
        if (best >= 2 && (double)top * best / L > lim) { rule = CPT_FR_TOP_2GRAM + (g - 2); goto done; }
    }
    for (int g = 5; g <= 10; g++) {
        double lim = c->dup_ngram_frac[g - 5];
        if (lim < 0 || L == 0) continue;
        txt_counter seen;
        if (txt_counter_init(&seen, nw)) goto oom;
        size_t rep = 0, ch;
        for (size_t i = 0; i + g <= nw;) {
            uint32_t k = txt_counter_add(&seen, ngram_hash(s, w + i, g, 0, &ch));
            if (k == 0) {
                txt_counter_free(&seen);
                goto oom;
            }
            if (k > 1) {
                rep += ch;
                i += g;
            } else {
                i++;
            }
        }
        txt_counter_free(&seen);
        if ((double)rep / L > lim) { rule = CPT_FR_DUP_5GRAM + (g - 5); goto done; }
    }
done:
    free(el);
    free(w);
    free(hs);
    return rule;
oom:
    free(el);
    free(w);
    free(hs);
    return CPT_ENOMEM;
}

static size_t count_sub(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat), c = 0;
    for (size_t i = 0; i + m <= n;) {
        if (memcmp(s + i, pat, m) == 0) {
            c++;
            i += m;
        } else {
            i++;
        }
    }
    return c;
}

static int starts_with(const char *s, size_t a, size_t b, const char *p) {
    size_t m = strlen(p);
    return b - a >= m && memcmp(s + a, p, m) == 0;
}
static int ends_with(const char *s, size_t a, size_t b, const char *p) {
    size_t m = strlen(p);
    return b - a >= m && memcmp(s + b - m, p, m) == 0;
}

/* str.splitlines(): \n, \r\n, \r; no trailing empty line. */
static size_t split_lines(const char *s, size_t n, txt_span **out) {
    size_t cap = 16, k = 0, start = 0;
    txt_span *v = malloc(cap * sizeof *v);
    if (!v) return (size_t)-1;
    for (size_t i = 0; i <= n; i++) {
        size_t br = i < n ? nl_len(s, i, n) : 0;
        if (!br && !(i == n && start < n)) continue;
        if (span_push(&v, &cap, &k, start, i - start, 0)) return (size_t)-1;
        if (br) i += br - 1;
        start = i + 1;
    }
    *out = v;
    return k;
}

int cpt_filter_gopher_quality(const cpt_filter_cfg *c, const char *s, size_t n) {
    static const char *stop[] = {"the", "be", "to", "of", "and", "that", "have", "with"};
    txt_span *w = NULL, *ln = NULL;
    size_t nw = txt_words(s, n, &w);
    if (nw == (size_t)-1) return CPT_ENOMEM;
    size_t ns = 0, ns_chars = 0, alpha = 0, stops = 0;
    for (size_t i = 0; i < nw; i++) {
        int has_core = 0, has_alpha = 0;
        for (size_t j = w[i].off; j < w[i].off + w[i].len;) {
            uint32_t cp = txt_next(s, w[i].off + w[i].len, &j);
            has_core |= !txt_is_punct(cp);
            has_alpha |= txt_is_alpha(cp);
        }
        if (has_core) {
            ns++;
            ns_chars += w[i].nchars;
        }
        alpha += has_alpha;
        if (w[i].len <= 4) {
            char low[5] = {0};
            for (size_t j = 0; j < w[i].len; j++) low[j] = (char)tolower((unsigned char)s[w[i].off + j]);
            for (size_t k = 0; k < sizeof stop / sizeof *stop; k++) stops += strcmp(low, stop[k]) == 0;
        }
    }
    free(w);
    int rule = CPT_FR_KEEP;
    double mean = ns ? (double)ns_chars / ns : 0;
    if (c->min_words >= 0 && ns < c->min_words) return CPT_FR_FEW_WORDS;
    if (c->max_words >= 0 && ns > c->max_words) return CPT_FR_MANY_WORDS;
    if (ns && c->min_mean_word_len >= 0 && mean < c->min_mean_word_len) return CPT_FR_SHORT_WORDS;
    if (ns && c->max_mean_word_len >= 0 && mean > c->max_mean_word_len) return CPT_FR_LONG_WORDS;
    if (nw && c->max_hash_ratio >= 0 && (double)count_sub(s, n, "#") / nw > c->max_hash_ratio)
        return CPT_FR_HASHES;
    if (nw && c->max_ellipsis_ratio >= 0 &&
        (double)(count_sub(s, n, "...") + count_sub(s, n, "\xE2\x80\xA6")) / nw > c->max_ellipsis_ratio)
        return CPT_FR_ELLIPSES;
    size_t nl = split_lines(s, n, &ln);
    if (nl == (size_t)-1) return CPT_ENOMEM;
    size_t bullets = 0, ell = 0;
    for (size_t i = 0; i < nl; i++) {
        /* strip both ends: lstrip for the bullet test, rstrip for the ellipsis test */
        size_t la = ln[i].off, lb = ln[i].off + ln[i].len;
        strip(s, &la, &lb);
        bullets += starts_with(s, la, lb, "\xE2\x80\xA2");
        ell += ends_with(s, la, lb, "...") || ends_with(s, la, lb, "\xE2\x80\xA6");
    }
    free(ln);
    if (nl && c->max_bullet_lines >= 0 && (double)bullets / nl > c->max_bullet_lines) return CPT_FR_BULLET_LINES;
    if (nl && c->max_ellipsis_lines >= 0 && (double)ell / nl > c->max_ellipsis_lines) return CPT_FR_ELLIPSIS_LINES;
    if (nw && c->min_alpha_words >= 0 && (double)alpha / nw < c->min_alpha_words) return CPT_FR_ALPHA_WORDS;
    if (c->min_stop_words >= 0 && stops < c->min_stop_words) return CPT_FR_STOP_WORDS;
    return rule;
}

static int contains_ci(const char *s, size_t a, size_t b, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = a; i + m <= b; i++) {
        size_t j = 0;
        while (j < m && tolower((unsigned char)s[i + j]) == pat[j]) j++;
        if (j == m) return 1;
    }
    return 0;
}

/* Sentences in a kept line: runs of . ? ! followed by a blank or the end; at least 1. */
static int count_sentences(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '.' && s[i] != '?' && s[i] != '!') continue;
        size_t j = i;
        while (j < n && (s[j] == '.' || s[j] == '?' || s[j] == '!')) j++;
        if (j == n || is_ws_byte(s[j])) k++;
        i = j - 1;
    }
    return k ? k : 1;
}

int cpt_filter_c4(const cpt_filter_cfg *c, const char *s, size_t n, char **out, size_t *out_n,
                  uint64_t *line_counts, uint64_t *citations) {
    static const char *policy[] = {"terms of use", "privacy policy", "cookie policy", "uses cookies",
                                   "use of cookies", "use cookies"};
    *out = NULL;
    *out_n = 0;
    txt_span *ln = NULL;
    size_t nl = split_lines(s, n, &ln);
    if (nl == (size_t)-1) return CPT_ENOMEM;
    char *buf = malloc(n + 1), *line = malloc(n + 1);
    if (!buf || !line) {
        free(ln);
        free(buf);
        free(line);
        return CPT_ENOMEM;
    }
    size_t used = 0;
    int sentences = 0, rule = CPT_FR_KEEP;
    uint64_t dummy[CPT_C4L_N], dummy_cit = 0;
    if (!line_counts) line_counts = dummy;
    if (!citations) citations = &dummy_cit;
    for (size_t li = 0; li < nl; li++) {
        size_t a = ln[li].off, b = a + ln[li].len;
        strip(s, &a, &b);
        /* words = line.split(); the longest word and the count, before citation removal */
        size_t nwords = 0, longest = 0;
        for (size_t i = a; i < b;) {
            while (i < b && is_ws_byte(s[i])) i++;
            if (i >= b) break;
            size_t j = i;
            while (j < b && !is_ws_byte(s[j])) j++;
            size_t ch = txt_nchars(s + i, j - i);
            if (ch > longest) longest = ch;
            nwords++;
            i = j;
        }
        if (c->c4_max_word_len >= 0 && longest > (size_t)c->c4_max_word_len) {
            line_counts[CPT_C4L_LONG_WORD]++;
            continue;
        }
        /* remove citations: [digits*], [edit], [citation needed] */
        size_t m = 0;
        for (size_t i = a; i < b;) {
            if (c->c4_citations && s[i] == '[') {
                size_t j = i + 1;
                while (j < b && s[j] >= '0' && s[j] <= '9') j++;
                size_t cut = 0;
                if (j < b && s[j] == ']') cut = j + 1 - i;
                else if (starts_with(s, i, b, "[edit]")) cut = 6;
                else if (starts_with(s, i, b, "[citation needed]")) cut = 17;
                if (cut) {
                    (*citations)++;
                    i += cut;
                    continue;
                }
            }
            line[m++] = s[i++];
        }
        if (c->c4_terminal_punct) {
            char last = m ? line[m - 1] : 0;
            int term = last == '.' || last == '?' || last == '!' || last == '"' || last == '\'';
            if (!term || ends_with(line, 0, m, "...")) {
                line_counts[CPT_C4L_NO_TERMINAL]++;
                continue;
            }
        }
        if (c->c4_min_words_per_line >= 0 && nwords < (size_t)c->c4_min_words_per_line) {
            line_counts[CPT_C4L_FEW_WORDS]++;
            continue;
        }
        if (c->c4_lorem && contains_ci(line, 0, m, "lorem ipsum")) {
            rule = CPT_FR_C4_LOREM;
            break;
        }
        if (c->c4_javascript && contains_ci(line, 0, m, "javascript")) {
            line_counts[CPT_C4L_JAVASCRIPT]++;
            continue;
        }
        if (c->c4_curly && memchr(line, '{', m)) {
            rule = CPT_FR_C4_CURLY;
            break;
        }
        int pol = 0;
        for (size_t k = 0; c->c4_policy && k < sizeof policy / sizeof *policy && !pol; k++)
            pol = contains_ci(line, 0, m, policy[k]);
        if (pol) {
            line_counts[CPT_C4L_POLICY]++;
            continue;
        }
        sentences += count_sentences(line, m);
        if (used) buf[used++] = '\n';
        memcpy(buf + used, line, m);
        used += m;
    }
    free(ln);
    free(line);
    if (rule == CPT_FR_KEEP && c->c4_min_sentences >= 0 && sentences < c->c4_min_sentences)
        rule = CPT_FR_C4_FEW_SENTENCES;
    if (rule != CPT_FR_KEEP) {
        free(buf);
        return rule;
    }
    size_t a = 0, b = used;
    strip(buf, &a, &b);
    memmove(buf, buf + a, b - a);
    buf[b - a] = '\0';
    *out = buf;
    *out_n = b - a;
    return CPT_FR_KEEP;
}

int cpt_filter_apply(const cpt_filter_cfg *c0, const char *s, size_t n, char **out, size_t *out_n,
                     cpt_filter_stats *st, cpt_err *err) {
    *out = NULL;
    *out_n = 0;
    int r = CPT_FR_KEEP;
    cpt_filter_cfg cs;
    const cpt_filter_cfg *c = c0;
    if (c0->script_aware && (c0->gopher_repetition || c0->gopher_quality || c0->c4)) {
        int sc = cpt_filter_script(s, n);
        if (st) st->by_script[sc]++;
        cpt_filter_cfg_for_script(c0, sc, &cs);
        c = &cs;
    }
    if (c->gopher_repetition) r = cpt_filter_gopher_repetition(c, s, n);
    if (r == CPT_FR_KEEP && c->gopher_quality) r = cpt_filter_gopher_quality(c, s, n);
    if (r == CPT_FR_KEEP) {
        if (c->c4) {
            uint64_t lc[CPT_C4L_N] = {0}, cit = 0;
            r = cpt_filter_c4(c, s, n, out, out_n, lc, &cit);
            if (st && r >= 0) {
                for (int k = 0; k < CPT_C4L_N; k++) st->c4_lines_dropped[k] += lc[k];
                st->c4_citations += cit;
            }
        } else {
            *out = malloc(n + 1);
            if (!*out) r = CPT_ENOMEM;
            else {
                memcpy(*out, s, n);
                (*out)[n] = '\0';
                *out_n = n;
            }
        }
    }
    if (r < 0) return cpt_err_set(err, r, "filter: out of memory on a %zu-byte document", n);
    if (st) {
        st->docs++;
        if (r == CPT_FR_KEEP) st->kept++;
        else st->dropped[r]++;
    }
    return r;
}
