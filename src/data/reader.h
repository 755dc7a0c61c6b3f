/* reader.h: private streaming reader of corpus files (.txt / .jsonl, plain, .gz or .zst) for prepare.c; not a public API. */
#ifndef CPT_DATA_READER_H
#define CPT_DATA_READER_H

#include "cpt/common.h"

typedef struct drd drd;

/* Kind by name: NAME.jsonl, NAME.jsonl.gz, NAME.jsonl.zst hold one JSON object per line
 * with a string field `field`; anything else (NAME.txt, .gz, .zst) is text: one document
 * per file, or (txt_blank) documents separated by blank lines (lines of only spaces, tabs
 * and CR), each document the bytes of its lines joined by their newlines. */
int drd_open(drd **out, const char *path, const char *field, int txt_blank, cpt_err *err);
void drd_close(drd *r);
/* Why a .jsonl line yields no text. */
enum { DRD_OK = 0, DRD_BAD_JSON = 1, DRD_NO_FIELD = 2, DRD_BAD_UTF8 = 3 };

/* Next document: returns 1 with *text and *len (valid until the next call; *malformed is
 * DRD_BAD_JSON when the line is not a JSON object, DRD_NO_FIELD when it lacks a string
 * `field`, DRD_BAD_UTF8 when the line is not UTF-8, else DRD_OK), 0 at the end, <0 on I/O or decompression errors (message names
 * the file and the line). *line gets the 1-based line where the document starts. */
int drd_next(drd *r, const char **text, size_t *len, int *malformed, size_t *line, cpt_err *err);

/* .jsonl only: return each non-blank line itself (trimmed, not parsed; *malformed stays
 * DRD_OK), for chat data whose documents are whole JSON objects. */
void drd_set_raw_lines(drd *r);

/* Bytes of the underlying (compressed) file consumed so far, for progress reports. */
uint64_t drd_bytes(const drd *r);

#endif
