#!/usr/bin/env python3
"""extract-corpus.py: the one step of `make demo-smollm2` that cpt does not do itself.

`cpt data prepare` reads .txt and .jsonl; the demo's domain corpora ship as one JSON object
(PubMedQA) and as CSV (arXiv abstracts). This turns either into .jsonl with one document per
line in the field "text", and does nothing else (no cleaning, filtering or dedup: those are
cpt's job, so the demo shows what cpt's pipeline keeps). Python standard library only, so the
demo needs no torch.

  pubmedqa: ../shared/data/corpora/medical/pubmedqa_ori_pqal.json, a dict id -> item.
            An item is one PubMed abstract cut into parts: QUESTION (the title rephrased as a
            question), CONTEXTS (the structured abstract without its conclusion) and
            LONG_ANSWER (the conclusion). A document is those three, in that order, which
            puts the abstract back together as it was published (title, body, conclusion).
  arxiv:    ../shared/data/corpora/arxiv/arxiv_cs_ml_abstracts.csv (titles, summaries, ...):
            a document is the title, a blank line, then the abstract.

usage: extract-corpus.py {pubmedqa|arxiv} IN OUT.jsonl    (prints the document count)
Errors (a missing file, an unexpected layout) exit 1 with a message naming the file and field.
"""
import csv
import json
import sys


def die(msg):
    sys.stderr.write("extract-corpus.py: error: %s\n" % msg)
    sys.exit(1)


def pubmedqa(path):
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not data:
        die("%s: expected a JSON object mapping PubMed ids to items" % path)
    for pmid, item in data.items():  # file order: deterministic
        try:
            parts = [item["QUESTION"].strip()] + [c.strip() for c in item["CONTEXTS"]] + [item["LONG_ANSWER"].strip()]
        except (KeyError, TypeError, AttributeError):
            die("%s: item %s lacks QUESTION / CONTEXTS / LONG_ANSWER strings" % (path, pmid))
        yield "\n".join(p for p in parts if p)


def arxiv(path):
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(fh)
        if not rows.fieldnames or "titles" not in rows.fieldnames or "summaries" not in rows.fieldnames:
            die("%s: expected CSV columns 'titles' and 'summaries', found %s" % (path, rows.fieldnames))
        for row in rows:
            t, s = (row["titles"] or "").strip(), (row["summaries"] or "").strip()
            if s:
                yield t + "\n\n" + s if t else s


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("pubmedqa", "arxiv"):
        die("usage: extract-corpus.py {pubmedqa|arxiv} IN OUT.jsonl")
    kind, src, out = sys.argv[1:]
    try:
        docs = list((pubmedqa if kind == "pubmedqa" else arxiv)(src))
    except OSError as e:
        die("%s: %s" % (src, e.strerror or e))
    except (ValueError, csv.Error) as e:
        die("%s: not valid %s: %s" % (src, "JSON" if kind == "pubmedqa" else "CSV", e))
    if not docs:
        die("%s: no documents found" % src)
    with open(out, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    print(len(docs))


if __name__ == "__main__":
    main()
