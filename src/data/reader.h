/* reader.h: private streaming reader of corpus files (.txt / .jsonl, plain, .gz or .zst) for prepare.c; not a public API. */
#ifndef CPT_DATA_READER_H
#define CPT_DATA_READER_H

#include "cpt/common.h"

typedef struct drd drd;

/* Kind by name: NAME.jsonl, NAME.jsonl.gz, NAME.jsonl.zst hold one JSON object per line
 * with a string field `field`; anything else (NAME.txt, .gz, .zst) is one document. */
int drd_open(drd **out, const char *path, const char *field, cpt_err *err);
void drd_close(drd *r);
/* Next document: returns 1 with *text and *len (valid until the next call; *malformed set
 * when the line is not a JSON object with a string `field`), 0 at the end, <0 on I/O or
 * decompression errors (message names the file and the line). *line gets the 1-based
 * line of the document (1 for .txt). */
int drd_next(drd *r, const char **text, size_t *len, int *malformed, size_t *line, cpt_err *err);

#endif
