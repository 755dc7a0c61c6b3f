#!/usr/bin/env python3
"""lmeval_check.py: cpt eval against lm-evaluation-harness itself, offline on the local files.

Not a CTest test (lm-eval is not in tests/requirements.txt, and CI=true turns a missing
prerequisite into a failure): run it by hand where lm-eval is installed, e.g.
    python3 -m venv --system-site-packages /tmp/lmeval && /tmp/lmeval/bin/pip install lm-eval==0.4.8
    CPT_BIN=build/cpt /tmp/lmeval/bin/python tests/eval/lmeval_check.py [MODEL_DIR] [LIMIT]
It writes lm-eval task yamls for the gauntlet files (dataset_path: json, the file as the test
split) in the prompt formats of lm-eval's own arc_easy / piqa / winogrande / lambada_openai
yamls, runs lm_eval.simple_evaluate with its HF model (float32, the sentencepiece tokenizer
where the directory has no tokenizer.json: see evalref.py) and log_samples, and checks every
choice's log-likelihood against `cpt eval --items` (1e-4 + 1e-6 |ll|), the same picks and the same acc.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CPT_SRC", os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("CPT_SHARED", os.path.join(SRC, "..", "shared"))
DATA = os.path.join(SHARED, "data", "eval")

YAML = {
    "arc_easy": """task: cpt_arc_easy
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/llm-foundry/arc_easy.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{query}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""",
    "piqa": """task: cpt_piqa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/llm-foundry/piqa.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{query}}}}Answer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""",
    "winogrande": """task: cpt_winogrande
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/llm-foundry/winogrande.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{gold}}}}"
doc_to_choice: "{{{{context_options}}}}"
doc_to_target: "{{{{continuation}}}}"
metric_list:
  - metric: acc
""",
    "lambada_openai": """task: cpt_lambada_openai
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/llm-foundry/lambada_openai.jsonl
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{' ' + continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
  - metric: acc
""",
}


def main():
    import lm_eval
    from lm_eval.tasks import TaskManager
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SHARED, "data", "models", "stories260K-hf")
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    cpt = os.environ.get("CPT_BIN", os.path.join(SRC, "build", "cpt"))
    tmp = tempfile.mkdtemp()
    for name, y in YAML.items():
        with open(os.path.join(tmp, "cpt_%s.yaml" % name), "w") as f:
            f.write(y.format(data=DATA))
    items = os.path.join(tmp, "items.jsonl")
    subprocess.run([cpt, "eval", "--model", model, "--tasks", ",".join(YAML), "--limit", str(limit), "--items", items,
                    "--data-dir", DATA], check=True)
    mine = {}
    for l in open(items):
        it = json.loads(l)
        mine[(it["task"], it["item"])] = it
    spm_only = not os.path.exists(os.path.join(model, "tokenizer.json"))
    res = lm_eval.simple_evaluate(
        model="hf", model_args="pretrained=%s,dtype=float32,use_fast_tokenizer=%s" % (model, not spm_only),
        tasks=["cpt_" + n for n in YAML], task_manager=TaskManager(include_path=tmp), limit=limit, batch_size=1,
        device="cpu", log_samples=True, num_fewshot=0)
    fails, worst = 0, 0.0
    for name in YAML:
        for s in res["samples"]["cpt_" + name]:
            it = mine[(name, s["doc_id"])]
            lls = [float(r[0][0]) if isinstance(r[0], (list, tuple)) else float(r[0]) for r in s["resps"]]
            for a, b in zip(it["ll"], lls):
                worst = max(worst, abs(a - b))
                if abs(a - b) > 1e-4 + 1e-6 * abs(b):
                    fails += 1
                    print("FAIL %s item %d: cpt ll %.7f, lm-eval %.7f" % (name, s["doc_id"], a, b))
            if name != "lambada_openai":
                want = max(range(len(lls)), key=lambda c: (lls[c], -c))
                if want != it["pred"]:
                    fails += 1
                    print("FAIL %s item %d: cpt picks %d, lm-eval %d" % (name, s["doc_id"], it["pred"], want))
        acc = res["results"]["cpt_" + name]["acc,none"]
        print("%-15s lm-eval acc %.4f  (n=%d)" % (name, acc, len(res["samples"]["cpt_" + name])))
    print("lm-eval vs cpt: %d mismatches, max |ll - lm-eval| %.2e" % (fails, worst))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
