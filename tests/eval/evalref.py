"""evalref.py: an independent reference for `cpt eval`, written from lm-evaluation-harness's
definitions (the task yamls / utils.py of lm_eval/tasks and HFLM.loglikelihood), not from
cpt's code, scoring with transformers (torch fp32, eager attention).

Not a test itself (CTest picks up only test_*.py): test_eval_ref.py (stories260K) and
test_eval_ref_smollm2.py (SmolLM2-135M-Instruct) import it.

What it does, per task, from the raw files of ../shared/data/eval:
  docs -> (doc_to_text, doc_to_choice, gold) as lm-eval's yaml for that task defines them,
  requests (context, target_delimiter + choice) or, for Winogrande (multiple_input),
  (choice, " " + target); LAMBADA (text without its last word, " " + last word), delimiter "";
  each request scored as HFLM does: context trailing whitespace moved to the continuation,
  continuation tokens = tokens of context+continuation past len(tokens of context), no special
  tokens, an empty context = [BOS]; input = (ctx + cont)[-(max_length + 1):][:-1];
  ll = sum log_softmax at the continuation tokens, greedy = all argmax.
  acc = argmax ll == gold, acc_norm = argmax ll / len(choice) == gold, stderr = stdev / sqrt(n);
  LAMBADA acc = greedy, perplexity = exp(-mean ll).
Then compares cpt's --items / --out with it. Tolerances: per choice log-likelihood
1e-4 + 1e-6 |ll| (fp32 forward in both; cpt's BLAS and its vectorised exp sum in another order,
and a long continuation sums that error over its tokens: piqa's -110.7 differed by 1.04e-4,
relative 9.4e-7, about 8 fp32 ulp); the same prediction per item unless the reference's best two
scores are within twice that tolerance (a tie either side may take); aggregate
acc / acc_norm then equal exactly when no such tie occurred, stderr to 1e-9, perplexity rel 1e-4.
"""
import json
import math
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
import oracle_util as ou  # noqa: E402

LL_TOL = 1e-4    # absolute part of the per-choice log-likelihood tolerance
LL_RTOL = 1e-6   # relative part (long continuations sum per-token rounding)


def ll_tol(ref):
    return LL_TOL + LL_RTOL * abs(ref)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


# ---- lm-eval task definitions (doc_to_text, doc_to_choice, gold), from the raw files ----

def _hs_pre(text):  # lm_eval/tasks/hellaswag/utils.py preprocess
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def docs_hellaswag(d):
    out = []
    for doc in read_jsonl(os.path.join(d, "hellaswag", "hellaswag_val_1k.jsonl")):
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        out.append(dict(text=_hs_pre(doc["activity_label"] + ": " + ctx),
                        choices=[_hs_pre(e) for e in doc["endings"]], gold=int(doc["label"])))
    return out


def _strip_prefix(s, p):
    assert s.startswith(p), (s[:40], p)
    return s[len(p):]


def docs_arc(d, which):  # arc_easy.yaml: "Question: {{question}}\nAnswer:", choices.text
    out = []
    for doc in read_jsonl(os.path.join(d, "llm-foundry", which + ".jsonl")):
        q = _strip_prefix(doc["query"], "Question: ")  # the gauntlet file holds "Question: " + question
        out.append(dict(text="Question: " + q + "\nAnswer:", choices=doc["choices"], gold=doc["gold"]))
    return out


def docs_piqa(d):  # piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2]
    out = []
    for doc in read_jsonl(os.path.join(d, "llm-foundry", "piqa.jsonl")):
        goal = _strip_prefix(doc["query"], "Question: ")
        goal = goal[:-1] if goal.endswith("\n") else goal  # the file ends the goal with a newline
        out.append(dict(text="Question: " + goal + "\nAnswer:", choices=doc["choices"], gold=doc["gold"]))
    return out


def docs_boolq(d):  # super_glue boolq: "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no", "yes"]
    out = []
    for doc in read_jsonl(os.path.join(d, "llm-foundry", "boolq.jsonl")):
        body = _strip_prefix(doc["query"], "Passage: ")
        passage, question = body.rsplit("\nQuestion: ", 1)
        question = question[:-1] if question.endswith("?") else question
        assert doc["choices"] == ["no", "yes"]
        out.append(dict(text=passage + "\nQuestion: " + question + "?\nAnswer:", choices=["no", "yes"],
                        gold=doc["gold"]))
    return out


def docs_plain(d, fname):  # copa (premise[:-1] + " therefore"/" because" is the file's query), openbookqa
    return [dict(text=doc["query"], choices=doc["choices"], gold=doc["gold"])
            for doc in read_jsonl(os.path.join(d, "llm-foundry", fname))]


def docs_winogrande(d):  # partial scoring: choices are contexts, the target is shared
    return [dict(text=None, choices=doc["context_options"], target=doc["continuation"], gold=doc["gold"])
            for doc in read_jsonl(os.path.join(d, "llm-foundry", "winogrande.jsonl"))]


def docs_lambada(d):  # lambada_openai: text minus last word, " " + last word, delimiter ""
    return [dict(text=doc["context"], choices=[" " + doc["continuation"]], gold=0)
            for doc in read_jsonl(os.path.join(d, "llm-foundry", "lambada_openai.jsonl"))]


def docs_fictional(d, level):
    """Chang et al. 2024's probes, as their dataset defines them: input + " " + target for
    each of the 5 probes of each document, document-major (score: target log-prob per token)."""
    with open(os.path.join(d, "..", "knowledge-injection", "fictional-knowledge", "fictional_knowledge.json")) as f:
        docs = json.load(f)
    return [dict(text=inp, choices=[" " + tgt], gold=0)
            for doc in docs for inp, tgt in zip(doc[level + "_input"], doc[level + "_target"])]


def docs_mmlu_cs(d):  # mmlu default template + description
    out = []
    for doc in read_jsonl(os.path.join(d, "llm-foundry", "mmlu_full_cs.jsonl")):
        q = _strip_prefix(doc["query"], "Question: ").split("\nChoices", 1)[0]
        text = q.strip() + "".join("\n%s. %s" % ("ABCD"[i], c) for i, c in enumerate(doc["choices"])) + "\nAnswer:"
        out.append(dict(text=text, choices=list("ABCD"[:len(doc["choices"])]), gold=doc["gold"]))
    return out


MMLU_DESC = "The following are multiple choice questions (with answers) about high school computer science.\n\n"

# name -> (docs builder, kind, has acc_norm, description)
TASKS = {
    "hellaswag": (docs_hellaswag, "mc", True, ""),
    "arc_easy": (lambda d: docs_arc(d, "arc_easy"), "mc", True, ""),
    "arc_challenge": (lambda d: docs_arc(d, "arc_challenge"), "mc", True, ""),
    "piqa": (docs_piqa, "mc", True, ""),
    "winogrande": (docs_winogrande, "partial", False, ""),
    "boolq": (docs_boolq, "mc", False, ""),
    "copa": (lambda d: docs_plain(d, "copa.jsonl"), "mc", False, ""),
    "openbookqa": (lambda d: docs_plain(d, "openbook_qa.jsonl"), "mc", True, ""),
    "lambada_openai": (docs_lambada, "cloze", False, ""),
    "mmlu_cs": (docs_mmlu_cs, "mc", True, MMLU_DESC),
    "fictional_mem": (lambda d: docs_fictional(d, "mem"), "cloze", False, ""),
    "fictional_gen": (lambda d: docs_fictional(d, "gen"), "cloze", False, ""),
    "fictional_hard": (lambda d: docs_fictional(d, "hard_gen"), "cloze", False, ""),
}


def requests(task, docs, i, shots):
    """lm-eval's construct_requests for doc i with the few-shot docs `shots`."""
    _, kind, _, desc = TASKS[task]
    delim = "" if kind == "cloze" else " "

    def solved(doc):  # doc_to_text + target_delimiter + doc_to_target
        if kind == "partial":
            return doc["choices"][doc["gold"]] + delim + doc["target"]
        return doc["text"] + delim + doc["choices"][doc["gold"]]
    prefix = desc + "".join(solved(docs[s]) + "\n\n" for s in shots)
    doc = docs[i]
    if kind == "partial":
        return [(prefix + c, delim + doc["target"]) for c in doc["choices"]]
    return [(prefix + doc["text"], delim + c) for c in doc["choices"]]


# ---- HFLM.loglikelihood ----

class Scorer:
    def __init__(self, model_dir):
        self.torch = ou.torch_setup()
        from transformers import AutoTokenizer
        # lm-eval's HFLM loads the fast tokenizer; for a directory with only a SentencePiece
        # tokenizer.model, transformers' converted fast tokenizer ignores the model's
        # normalizer_spec.remove_extra_whitespaces (a double space becomes an extra "▁"
        # token) while sentencepiece itself collapses it; the reference then takes the
        # sentencepiece-backed tokenizer (lm-eval's use_fast_tokenizer=False), the model's own.
        spm_only = not os.path.exists(os.path.join(model_dir, "tokenizer.json"))
        self.tok = AutoTokenizer.from_pretrained(model_dir, use_fast=not spm_only)
        self.model = ou.hf_load(model_dir)
        self.max_length = self.model.config.max_position_embeddings

    def enc(self, s):
        return self.tok(s, add_special_tokens=False).input_ids

    def encode_pair(self, context, continuation):
        if context == "":
            pre = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
            return [pre], self.enc(continuation)
        n = len(context) - len(context.rstrip())
        if n > 0:
            continuation = context[-n:] + continuation
            context = context[:-n]
        whole = self.enc(context + continuation)
        ctx = self.enc(context)
        return ctx, whole[len(ctx):]

    def loglikelihood(self, context, continuation):
        torch = self.torch
        ctx, cont = self.encode_pair(context, continuation)
        full = (ctx + cont)[-(self.max_length + 1):]
        inp = torch.tensor([full[:-1]], dtype=torch.long)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(inp).logits[0].double(), dim=-1)
        n = len(cont)
        tgt = torch.tensor(full[-n:], dtype=torch.long)
        rows = logp[-n:]
        ll = float(rows.gather(1, tgt[:, None]).sum())
        greedy = bool((rows.argmax(dim=-1) == tgt).all())
        return ll, greedy, n


def mean_stderr(xs):
    return statistics.mean(xs), (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0)


def compare(ck, scorer, task, data_dir, cpt_items, cpt_metrics, tag):
    """Score cpt's items of `task` with the reference and check them against cpt's numbers."""
    builder, kind, has_norm, _ = TASKS[task]
    docs = builder(data_dir)
    acc, accn, lls_all, per_tok = [], [], [], []
    ties = 0
    worst = 0.0
    for it in cpt_items:
        i = it["item"]
        doc = docs[i]
        ck.check(it["gold"] == doc["gold"], "%s %s item %d: gold %d, reference %d" % (tag, task, i, it["gold"], doc["gold"]))
        reqs = requests(task, docs, i, it["shots"])
        ref = [scorer.loglikelihood(c, k) for c, k in reqs]
        lls = [r[0] for r in ref]
        if not ck.check(len(it["ll"]) == len(lls), "%s %s item %d: %d lls, reference %d" % (tag, task, i, len(it["ll"]), len(lls))):
            continue
        for c, (a, b) in enumerate(zip(it["ll"], lls)):
            worst = max(worst, abs(a - b))
            ck.check(abs(a - b) <= ll_tol(b), "%s %s item %d choice %d: ll %.7f, reference %.7f (tolerance %.2e)" % (tag, task, i, c, a, b, ll_tol(b)))
        if kind == "cloze":
            ck.check(it["greedy"][0] == ref[0][1], "%s %s item %d: greedy %s, reference %s" % (tag, task, i, it["greedy"][0], ref[0][1]))
            acc.append(float(ref[0][1]))
            lls_all.append(lls[0])
            per_tok.append(lls[0] / ref[0][2])
            continue
        norm = [l / len(ch) for l, ch in zip(lls, doc["choices"])]
        for name, scores, got in (("acc", lls, it["pred"]), ("acc_norm", norm, it["pred_norm"])):
            best = max(range(len(scores)), key=lambda c: (scores[c], -c))
            top2 = sorted(scores, reverse=True)[:2]
            if got != best:
                if top2[0] - top2[1] <= 2 * ll_tol(top2[0]):
                    ties += 1
                    ou.log("  %s %s item %d: %s pick %d vs reference %d within the tolerance (a tie)" % (tag, task, i, name, got, best))
                else:
                    ck.check(False, "%s %s item %d: %s picks %d, reference %d (scores %s)" % (tag, task, i, name, got, best, scores))
        acc.append(float(int(max(range(len(lls)), key=lambda c: (lls[c], -c))) == doc["gold"]))
        accn.append(float(int(max(range(len(norm)), key=lambda c: (norm[c], -c))) == doc["gold"]))
    m = cpt_metrics
    ck.check(m["n"] == len(cpt_items), "%s %s: n %s, items %d" % (tag, task, m["n"], len(cpt_items)))
    if acc and not ties:
        mu, se = mean_stderr(acc)
        ck.check(abs(m["acc"] - mu) < 1e-12 and abs(m["acc_stderr"] - se) < 1e-9,
                 "%s %s: acc %s +- %s, reference %s +- %s" % (tag, task, m["acc"], m["acc_stderr"], mu, se))
        if has_norm:
            mu, se = mean_stderr(accn)
            ck.check(abs(m["acc_norm"] - mu) < 1e-12 and abs(m["acc_norm_stderr"] - se) < 1e-9,
                     "%s %s: acc_norm %s +- %s, reference %s +- %s" % (tag, task, m["acc_norm"], m["acc_norm_stderr"], mu, se))
        else:
            ck.check(m["acc_norm"] is None, "%s %s: acc_norm %s, lm-eval defines none" % (tag, task, m["acc_norm"]))
    if kind == "cloze" and lls_all:
        ppl = math.exp(-statistics.mean(lls_all))
        ck.check(abs(m["perplexity"] - ppl) <= 1e-4 * ppl, "%s %s: perplexity %s, reference %s" % (tag, task, m["perplexity"], ppl))
        mu, se = mean_stderr(per_tok)
        ck.check(abs(m["logprob_per_token"] - mu) <= 1e-4 + 1e-6 * abs(mu) and abs(m["logprob_per_token_stderr"] - se) <= 1e-4,
                 "%s %s: log-prob per token %s +- %s, reference %s +- %s" % (tag, task, m["logprob_per_token"],
                                                                            m["logprob_per_token_stderr"], mu, se))
    ou.log("  %-8s %-15s n=%-3d acc %.3f  max |ll - ref| %.2e%s" % (tag, task, len(cpt_items), m["acc"], worst,
                                                                   "  (%d ties)" % ties if ties else ""))


def run_cpt_eval(ck, model_dir, data_dir, tasks, limit, fewshot, tmp, tag, batch=4, timeout=1200):
    out, items = os.path.join(tmp, tag + ".json"), os.path.join(tmp, tag + ".items.jsonl")
    p = ou.run_cpt(["eval", "--model", model_dir, "--tasks", ",".join(tasks), "--limit", limit, "--fewshot", fewshot,
                    "--batch", batch, "--data-dir", data_dir, "--out", out, "--items", items], timeout=timeout)
    if not ck.check(p.returncode == 0, "%s: cpt eval exit %d: %s" % (tag, p.returncode, p.stderr[-600:])):
        return None, None
    ou.log(p.stdout.rstrip())
    with open(out) as f:
        metrics = json.load(f)["tasks"]
    by_task = {}
    for it in read_jsonl(items):
        by_task.setdefault(it["task"], []).append(it)
    for t in tasks:
        ck.check(t in metrics and len(by_task.get(t, [])) == min(limit, len(TASKS[t][0](data_dir))),
                 "%s: task %s missing or short in the output" % (tag, t))
    return metrics, by_task


def check_model(ck, model_dir, data_dir, tasks, limit, tmp, tag, fewshot_tasks=(), fewshot=2):
    scorer = Scorer(model_dir)
    metrics, items = run_cpt_eval(ck, model_dir, data_dir, tasks, limit, 0, tmp, tag)
    if metrics:
        for t in tasks:
            if t in metrics and t in items:
                compare(ck, scorer, t, data_dir, items[t], metrics[t], tag)
    if fewshot_tasks:
        ftag = tag + "-%dshot" % fewshot
        metrics, items = run_cpt_eval(ck, model_dir, data_dir, list(fewshot_tasks), max(4, limit // 3), fewshot, tmp, ftag)
        if metrics:
            for t in fewshot_tasks:
                if t in metrics and t in items:
                    for it in items[t]:
                        ck.check(len(it["shots"]) == fewshot and it["item"] not in it["shots"]
                                 and len(set(it["shots"])) == fewshot, "%s %s item %d: shots %s" % (ftag, t, it["item"], it["shots"]))
                    compare(ck, scorer, t, data_dir, items[t], metrics[t], ftag)
