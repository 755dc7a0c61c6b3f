#!/usr/bin/env python3
"""test_data_books.py: `cpt data prepare` with its DEFAULT options keeps long documents, code and
non-English text (issue 11, "Data for long context").

Inputs, one document per file: three real long texts from ../shared/data/corpora/general
(tinyshakespeare.txt: 1.1 MB, about 200k words, speaker lines and verse without terminal
punctuation; wikitext2_raw_test.txt: 1.3 MB of articles with "= Heading =" lines and CRLF line ends;
tinystories_train_head.txt: 944 kB of formulaic stories, whose duplicated 5-gram fraction is 0.150
over the whole text and about 0.05 per 10000 words, the repetition window), a Chinese
novel excerpt, a Japanese and a Thai text written here (no spaces between words), a Python file
(kind code by extension), and a .jsonl of web documents in which one good document appears twice
and one document is too short. Before the fix this run kept 0 of these documents and exited 0.

Oracle: HF `tokenizers` (GPT-2 tokenizer.json) encode(file text) + EOS must equal each kept
document's tokens in the shard, so every book is kept whole (no line rewritten or dropped);
stats.json: the repeated line is an exact duplicate (not "filtered"), the short one is filtered
by gopher_few_words, kinds and scripts are counted. Then: a run that keeps nothing fails
(non-zero exit) with a HINT naming the rule that removed the most and the option that turns it
off; --min-doc-tokens / --max-doc-tokens keep exactly the documents in range (counts from the
oracle's token counts).
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

ZH = "\n\n".join([
    "春天的早晨，小镇上的人们还在睡梦中，只有面包店的灯已经亮了。老李每天四点起床，和面、发酵、烤制，几十年如一日。",
    "他的女儿小梅在城里读大学，每到假期就回来帮忙。她总说父亲的手艺应该让更多人知道，可老李只是笑笑，说做面包不是为了出名。",
    "有一年冬天，大雪封住了通往县城的路。镇上的商店都关了门，只有老李的面包店照常营业。人们踩着积雪来买面包，顺便在店里烤烤火，聊聊天。",
    "那一段日子，面包店成了全镇最热闹的地方。孩子们在窗边画画，老人们讲起年轻时的故事，连平时不爱说话的邮递员也唱起了歌。",
    "雪化以后，一位记者来到小镇，写了一篇关于面包店的文章。文章登在报纸上，许多外地人慕名而来，想尝一尝老李的手艺。",
    "老李并没有因此扩大店面。他依旧每天四点起床，依旧只烤那几种面包。他说，面包的味道来自耐心，而耐心是急不来的。",
    "后来小梅毕业了，她没有留在城里工作，而是回到小镇，接过了父亲的围裙。她在店里加了一张长桌，供来往的旅人歇脚。",
    "多年以后，有人问小梅为什么放弃城里的机会。她想了想说，城市里什么都快，可她更喜欢看着面团慢慢长大的样子。",
]) + "\n"
JA = ("駅前の古い喫茶店は、朝七時に店を開ける。店主の佐藤さんは、毎朝同じ豆を同じ手順で挽いている。\n"
      "常連の客は新聞を広げ、窓の外を走る電車をぼんやりと眺める。雨の日には、店の中がいつもより静かになる。\n"
      "ある秋の午後、見慣れない若い女性が一冊の古い本を持って店に入ってきた。\n"
      "彼女は、祖母がこの店で書いた手紙を探しているのだと言った。佐藤さんは棚の奥から小さな箱を取り出した。\n")
TH = ("หมู่บ้านเล็ก ๆ ริมแม่น้ำตื่นขึ้นก่อนพระอาทิตย์ขึ้น ชาวประมงเตรียมเรือและตาข่ายของพวกเขา\n"
      "เด็ก ๆ เดินไปโรงเรียนพร้อมกับหัวเราะ ส่วนยายนั่งขายผลไม้อยู่หน้าบ้านทุกเช้า\n"
      "เมื่อฝนตกหนัก น้ำในแม่น้ำก็สูงขึ้น และทุกคนช่วยกันย้ายของขึ้นที่สูง\n")
WEB = ("A short web page about gardening in small city yards. Tomatoes need sun for most of the day and water "
       "in the morning. The soil should drain well, so that the roots do not rot in the wet weeks of spring. "
       "Basil grows well beside them and keeps some pests away. Many gardeners use raised beds, which warm up "
       "sooner and are easier on the back. Compost from kitchen scraps feeds the beds through the year. In "
       "autumn the old plants are pulled and the beds are covered with straw. That protects the soil from heavy "
       "rain and frost during the winter.")
CODE = ("def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n"
        "if __name__ == \"__main__\":\n    print({i: fib(i) for i in range(10)})\n")


def read_shard(path):
    b = open(path, "rb").read()
    magic, ver, tb, vocab, flags, nd, nt, idx, fsize = struct.unpack_from("<8sIIIIQQQQ", b, 0)
    assert magic == b"CPTSHARD" and fsize == len(b), path
    toks = struct.unpack_from("<%d%s" % (nt, "H" if tb == 2 else "I"), b, 64)
    off = struct.unpack_from("<%dQ" % (nd + 1), b, idx)
    return [list(toks[off[i]:off[i + 1]]) for i in range(nd)]


def identity(st):
    return st["docs_in"] == sum(st.get(k, 0) for k in ("kept", "malformed", "filtered", "exact_duplicates",
                                                        "contaminated", "near_duplicates", "too_short", "too_long"))


def main():
    ck = ou.Checker("test_data_books")
    ou.require_commands("data")
    tokp = os.path.join(ou.shared(), "data", "tokenizers", "gpt2", "hf", "tokenizer.json")
    gen = os.path.join(ou.shared(), "data", "corpora", "general")
    books = [os.path.join(gen, n) for n in ("tinyshakespeare.txt", "wikitext2_raw_test.txt",
                                            "tinystories_train_head.txt")]
    for p in [tokp] + books:
        if not os.path.isfile(p):
            ou.skip("missing %s" % p)
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(tokp)
    hf.no_truncation()  # the file sets a truncation length; whole documents are compared
    hf.no_padding()
    eos = hf.token_to_id("<|endoftext|>")

    d = ou.tmpdir("test_data_books")
    corpus = os.path.join(d, "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus)
    files = list(books)
    for name, text in (("novel_zh.txt", ZH), ("cafe_ja.txt", JA), ("river_th.txt", TH), ("fib.py", CODE)):
        p = os.path.join(corpus, name)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        files.append(p)
    web = os.path.join(corpus, "web.jsonl")
    with open(web, "w") as f:
        f.write(json.dumps({"text": WEB}) + "\n")
        f.write(json.dumps({"text": "Too short to be a web page."}) + "\n")
        f.write(json.dumps({"text": WEB}) + "\n")  # exact duplicate of line 1
        f.write(json.dumps({"text": "Too short to be a web page."}) + "\n")  # a repeat of a filtered one
    files.append(web)
    texts = [open(p, encoding="utf-8", newline="").read() for p in files[:-1]] + [WEB]  # CRLF kept
    want = [hf.encode(t).ids + [eos] for t in texts]

    out = os.path.join(d, "out")
    shutil.rmtree(out, ignore_errors=True)
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input"] + files +
                   ["--out", out, "--val-fraction", "0", "--quiet"], timeout=600)
    ck.check(p.returncode == 0, "prepare exit %d: %s" % (p.returncode, p.stderr[-500:]))
    st = json.load(open(os.path.join(out, "stats.json"))) if p.returncode == 0 else {}
    ck.check(st.get("docs_in") == 11 and st.get("kept") == 8, "kept %s of %s (want 8 of 11): filtered by rule %s"
             % (st.get("kept"), st.get("docs_in"), {k: v for k, v in st.get("filtered_by_rule", {}).items() if v}))
    ck.check(st.get("exact_duplicates") == 2 and st.get("filtered") == 1
             and st.get("filtered_by_rule", {}).get("gopher_few_words") == 1,
             "duplicates %s filtered %s (want 2 and 1: gopher_few_words)" % (st.get("exact_duplicates"),
                                                                            st.get("filtered")))
    ck.check(st and identity(st), "accounting identity: %s" % st)
    ck.check(st.get("docs_by_kind") == {"web": 4, "book": 6, "code": 1}, "kinds %s" % st.get("docs_by_kind"))
    ck.check(st.get("docs_by_script", {}).get("nospace") == 3, "scripts %s" % st.get("docs_by_script"))
    docs = read_shard(os.path.join(out, "train-00000.shard")) if p.returncode == 0 else []
    ck.check(len(docs) == len(want), "shard has %d documents, want %d" % (len(docs), len(want)))
    for i, (got, w) in enumerate(zip(docs, want)):
        ck.check(got == w, "%s: %d tokens in the shard, HF encode + EOS gives %d (kept whole?)"
                 % (os.path.basename(files[i]), len(got), len(w)))
    ck.check(st.get("train_tokens") == sum(map(len, want)), "train_tokens %s" % st.get("train_tokens"))
    ou.log("kept %s documents, %s tokens; Shakespeare %d tokens" % (st.get("kept"), st.get("train_tokens"),
                                                                   len(want[0])))
    ck.check("exact duplicates" in p.stdout and "kind book" in p.stdout, "summary: %r" % p.stdout[-600:])
    buckets = [0] * 6  # < 512, < 2K, < 8K, < 32K, < 128K, more (tokens of each written document)
    for w in want:
        buckets[sum(len(w) >= 512 * 4 ** k for k in range(5))] += 1
    ck.check(list(st.get("docs_by_tokens", {}).get(k) for k in ("<512", "512-2K", "2K-8K", "8K-32K", "32K-128K",
                                                               ">=128K")) == buckets,
             "docs_by_tokens %s, want %s" % (st.get("docs_by_tokens"), buckets))

    # Repetition judged over the whole 944 kB text (Gopher as written) drops the stories; the
    # keep-nothing error names the rule and the options.
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input", books[2], "--out", os.path.join(d, "whole"),
                    "--quiet", "--repetition-window", "0"], timeout=300)
    ck.check(p.returncode != 0 and "gopher_dup_5gram removed 1" in p.stderr and "--no-gopher-repetition" in p.stderr
             and "--repetition-window" in p.stderr, "stories, whole-text repetition: exit %d %r"
             % (p.returncode, p.stderr[-300:]))

    # A run that keeps nothing is an error naming the top rule and the option that turns it off.
    short = os.path.join(d, "short.jsonl")
    with open(short, "w") as f:
        for i in range(3):
            f.write(json.dumps({"text": "Line %d is short." % i}) + "\n")
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input", short, "--out", os.path.join(d, "none"),
                    "--quiet"], timeout=120)
    ck.check(p.returncode != 0 and "kept 0 of 3" in p.stderr and "gopher_few_words removed 3" in p.stderr
             and "HINT: --no-gopher-quality" in p.stderr, "keep-nothing: exit %d %r" % (p.returncode, p.stderr))
    ck.check(os.path.isfile(os.path.join(d, "none", "stats.json")), "keep-nothing run wrote no stats.json")
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input", web, web, "--out", os.path.join(d, "dups"),
                    "--quiet", "--no-filters"], timeout=120)
    ck.check(p.returncode == 0, "a repeated file keeps its first copy: exit %d %r" % (p.returncode, p.stderr))

    # Length filters: exactly the documents with min <= tokens <= max survive.
    lo, hi = 200, 300000
    n_in = sum(1 for w in want if lo <= len(w) <= hi)
    n_short = sum(1 for w in want if len(w) < lo)
    n_long = sum(1 for w in want if len(w) > hi)
    ck.check(n_in and n_short and n_long, "bad test data: lengths %s" % [len(w) for w in want])
    out2 = os.path.join(d, "out_len")
    shutil.rmtree(out2, ignore_errors=True)
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input"] + files +
                   ["--out", out2, "--val-fraction", "0", "--quiet", "--min-doc-tokens", str(lo),
                    "--max-doc-tokens", str(hi)], timeout=600)
    ck.check(p.returncode == 0, "length filter: exit %d %s" % (p.returncode, p.stderr[-300:]))
    st = json.load(open(os.path.join(out2, "stats.json"))) if p.returncode == 0 else {}
    ck.check(st.get("too_short") == n_short and st.get("too_long") == n_long and st.get("kept") == n_in
             and st.get("train_docs") == n_in, "length filter: %s" % {k: st.get(k) for k in
                                                                     ("too_short", "too_long", "kept")})
    ck.check(st and identity(st), "accounting identity with length filters")
    docs = read_shard(os.path.join(out2, "train-00000.shard")) if p.returncode == 0 else []
    ck.check(docs == [w for w in want if lo <= len(w) <= hi], "length filter kept other documents")
    p = ou.run_cpt(["data", "prepare", "--tokenizer", tokp, "--input", web, "--out", os.path.join(d, "bad"),
                    "--min-doc-tokens", "10", "--max-doc-tokens", "5"], timeout=60)
    ck.check(p.returncode == 2 and "--min-doc-tokens" in p.stderr, "min > max: exit %d" % p.returncode)
    p = ou.run_cpt(["data", "prepare", "--help"], timeout=60)
    for opt in ("--kind", "auto|web|book|code", "--min-doc-tokens", "--max-doc-tokens", "--repetition-window"):
        ck.check(opt in p.stdout, "prepare --help lacks %s" % opt)
    ck.finish()


if __name__ == "__main__":
    main()
