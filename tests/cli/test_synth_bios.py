#!/usr/bin/env python3
"""test_synth_bios.py: `cpt synth bios` checked from the outside, by reading what it wrote:

  1. people.jsonl: unique names, exactly round(test_frac * n) test people, every attribute
     drawn from its pool file (the company's city the one of its company.txt line);
  2. bios.jsonl: K biographies per person, each naming the person and stating every one of
     their attribute values; no biography names another person;
  3. qa_train.jsonl / qa_test.jsonl: the seven canonical questions of each train / test
     person, answers equal to people.jsonl; the training files (qa_train.text, instruct.text
     and their .chat twins) never contain a held-out question's text, and instruct covers
     every person with P paraphrases per attribute;
  4. the same seed writes the same bytes, another seed other people;
  5. cpt eval reads qa_test.jsonl as a qa:FILE task (stories260K, 2 items);
  6. a missing --fields directory is refused naming the file, and writes nothing.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
import oracle_util as ou  # noqa: E402

ATTRS = ["birth_date", "birth_city", "university", "major", "company", "company_city", "job"]
FILES = ["people.jsonl", "bios.jsonl", "qa_train.jsonl", "qa_test.jsonl", "qa_train.text.jsonl",
         "instruct.text.jsonl", "qa_train.chat.jsonl", "instruct.chat.jsonl"]


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def pool(fields, name):
    with open(os.path.join(fields, name), encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip()]


def main():
    cpt = ou.cpt_bin()
    fields = os.path.join(ou.shared(), "data", "knowledge-injection", "bioS-fields")
    model = os.path.join(ou.shared(), "data", "models", "stories260K-hf")
    if not os.path.isdir(fields):
        ou.skip("%s not found (set CPT_SHARED)" % fields)
    tmp = ou.tmpdir("synth_bios")
    ck = ou.Checker("test_synth_bios")
    N, K, P = 80, 2, 2

    def run(out, seed, extra=()):
        return subprocess.run([cpt, "synth", "bios", "--fields", fields, "--out", out, "--people", str(N),
                               "--bios-per-person", str(K), "--paraphrases", str(P), "--test-frac", "0.25",
                               "--seed", str(seed)] + list(extra), capture_output=True, text=True, timeout=120)

    a = os.path.join(tmp, "a")
    r = run(a, 5)
    if not ck.check(r.returncode == 0, "synth bios exit %d: %s" % (r.returncode, r.stderr[-500:])):
        ck.finish()
    ou.log(r.stdout.strip())
    people = lines(os.path.join(a, "people.jsonl"))
    ck.check(len(people) == N and [p["id"] for p in people] == list(range(N)), "people.jsonl: %d lines" % len(people))
    names = [p["name"] for p in people]
    ck.check(len(set(names)) == N, "names are not unique")
    test = {p["id"] for p in people if p["split"] == "test"}
    ck.check(len(test) == 20 and all(p["split"] in ("train", "test") for p in people), "%d test people of %d" % (len(test), N))
    pools = {"birth_city": pool(fields, "city.txt"), "university": pool(fields, "university.txt"),
             "major": pool(fields, "field.txt"), "job": pool(fields, "job.txt")}
    companies = dict(tuple(x.strip() for x in l.split(";", 1)) for l in pool(fields, "company.txt"))
    first, middle, last = pool(fields, "first_name.txt"), pool(fields, "middle_name.txt"), pool(fields, "last_name.txt")
    for p in people:
        parts = p["name"].split(" ")
        ck.check(parts[0] in first and parts[-1] in last and " ".join(parts[1:-1]) in middle, "name %s" % p["name"])
        for k, v in pools.items():
            ck.check(p[k] in v, "person %d: %s %r is not in its pool" % (p["id"], k, p[k]))
        ck.check(companies.get(p["company"]) == p["company_city"], "person %d: %s is not in %s" % (p["id"], p["company"], p["company_city"]))
        m, rest = p["birth_date"].split(" ", 1)
        d, y = rest.split(", ")
        ck.check(m in ("January February March April May June July August September October November December").split()
                 and 1 <= int(d) <= 28 and 1900 <= int(y) <= 2099, "date %s" % p["birth_date"])

    bios = lines(os.path.join(a, "bios.jsonl"))
    ck.check(len(bios) == N * K, "%d biographies, want %d" % (len(bios), N * K))
    per = {}
    for b in bios:
        per.setdefault(b["person"], []).append(b["text"])
        p = people[b["person"]]
        for k in ATTRS:
            ck.check(p[k] in b["text"], "biography of %s lacks %s %r: %s" % (p["name"], k, p[k], b["text"]))
        others = [n for n in names if n != p["name"] and n in b["text"]]
        ck.check(not others, "biography of %s names %s" % (p["name"], others))
    ck.check(all(len(set(v)) == K for v in per.values()) and len(per) == N, "K biographies per person, all different")

    for split, fname in (("train", "qa_train.jsonl"), ("test", "qa_test.jsonl")):
        qa = lines(os.path.join(a, fname))
        ids = sorted({q["person"] for q in qa})
        want = sorted(p["id"] for p in people if p["split"] == split)
        ck.check(ids == want and len(qa) == 7 * len(want), "%s: people %s..., %d questions" % (fname, ids[:5], len(qa)))
        for q in qa:
            p = people[q["person"]]
            ck.check(q["answers"] == [p[q["attribute"]]] and p["name"] in q["question"], "%s: %s" % (fname, q))
    held = [q["question"] for q in lines(os.path.join(a, "qa_test.jsonl"))]
    for fname in ("qa_train.text.jsonl", "instruct.text.jsonl", "qa_train.chat.jsonl", "instruct.chat.jsonl"):
        with open(os.path.join(a, fname), encoding="utf-8") as f:
            text = f.read()
        leaked = [q for q in held if json.dumps(q)[1:-1] in text]
        ck.check(not leaked, "%s holds held-out questions: %s" % (fname, leaked[:2]))
    inst = lines(os.path.join(a, "instruct.text.jsonl"))
    ck.check(len(inst) == N * 7 * P, "instruct.text.jsonl: %d lines, want %d" % (len(inst), N * 7 * P))
    ck.check(all(any(n in x["text"] for x in inst) for n in names), "instruct does not cover every person")
    ck.check(all(x["text"].startswith("Question: ") and "\nAnswer: " in x["text"] for x in inst), "instruct text form")
    chat = lines(os.path.join(a, "qa_train.chat.jsonl"))
    ck.check(len(chat) == 7 * (N - len(test)) and all([m["role"] for m in c["messages"]] == ["user", "assistant"] for c in chat),
             "qa_train.chat.jsonl form")

    b = os.path.join(tmp, "b")
    c = os.path.join(tmp, "c")
    ck.check(run(b, 5).returncode == 0 and run(c, 6).returncode == 0, "reruns")
    for fn in FILES:
        with open(os.path.join(a, fn), "rb") as f1, open(os.path.join(b, fn), "rb") as f2:
            ck.check(f1.read() == f2.read(), "%s differs between two runs of seed 5" % fn)
    ck.check(len(set(names) & {p["name"] for p in lines(os.path.join(c, "people.jsonl"))}) < 5, "seed 6 drew seed 5's people")

    if os.path.isdir(model):
        e = subprocess.run([cpt, "eval", "--model", model, "--tasks", "qa:" + os.path.join(a, "qa_test.jsonl"), "--limit", "2",
                            "--max-new", "4", "--out", os.path.join(tmp, "e.json")], capture_output=True, text=True, timeout=300)
        ok = ck.check(e.returncode == 0, "cpt eval qa:qa_test.jsonl exit %d: %s" % (e.returncode, e.stderr[-400:]))
        if ok:
            with open(os.path.join(tmp, "e.json")) as f:
                t = json.load(f)["tasks"]
            ck.check(any(v.get("n") == 2 for v in t.values()), "eval output %s" % t)
    else:
        ck.check(not ou.skiputil.in_ci(), "%s missing" % model)

    d = os.path.join(tmp, "d")
    r = subprocess.run([cpt, "synth", "bios", "--fields", os.path.join(tmp, "nope"), "--out", d],
                       capture_output=True, text=True, timeout=60)
    ck.check(r.returncode != 0 and "first_name.txt" in r.stderr and "HINT" in r.stderr and not os.path.exists(d),
             "missing fields: exit %d, %s" % (r.returncode, r.stderr.strip()))
    ck.finish()


if __name__ == "__main__":
    main()
