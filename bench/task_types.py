"""Task-type rules against the categories real sources carry.

    python -m bench.task_types

MT-Bench (FastChat/question.jsonl, 80 prompts, 8 categories) mapped to our task types; XSTest
(450 prompts: every one is a question or request for information, so the expected type is
question answering, or code for prompts about programs); self-instruct seed tasks flagged
``is_classification``. Prints the agreement and the confusion per category.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.diversity.task_types import load_rules  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"

# MT-Bench category -> the task types that count as agreeing.
MT_BENCH = {
    "writing": {"creative_writing", "rewriting_editing"},
    "roleplay": {"creative_writing", "chit_chat"},
    "reasoning": {"math_reasoning"},
    "math": {"math_reasoning"},
    "coding": {"code"},
    "extraction": {"classification_extraction", "summarization"},
    "stem": {"question_answering"},
    "humanities": {"question_answering"},
}


def classify(prompts: list[str], responses: list[str] | None = None) -> list[str]:
    rules = load_rules()
    df = pl.DataFrame({"prompt": prompts, "response": responses or [""] * len(prompts)})
    return rules.classify(df).to_list()


def mt_bench() -> dict:
    rows = [json.loads(line) for line in open(SHARED / "FastChat" / "question.jsonl", encoding="utf-8")]
    got = classify([r["turns"][0] for r in rows])
    per: dict[str, Counter] = {}
    agree = 0
    for r, t in zip(rows, got, strict=True):
        per.setdefault(r["category"], Counter())[t] += 1
        agree += t in MT_BENCH[r["category"]]
    return {"n": len(rows), "agreement": agree / len(rows), "confusion": {k: dict(v) for k, v in per.items()}}


def xstest() -> dict:
    with open(SHARED / "xstest" / "xstest_prompts.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    got = classify([r["prompt"] for r in rows])
    ok = sum(t in {"question_answering", "code"} for t in got)
    return {"n": len(rows), "agreement": ok / len(rows), "types": dict(Counter(got).most_common())}


def self_instruct() -> dict:
    rows = [
        json.loads(line) for line in open(SHARED / "self-instruct" / "seed_tasks.jsonl", encoding="utf-8")
    ]
    prompts = [
        r["instruction"] + ("\n" + r["instances"][0]["input"] if r["instances"][0]["input"] else "")
        for r in rows
    ]
    got = classify(prompts, [r["instances"][0]["output"] for r in rows])
    cls = [t for r, t in zip(rows, got, strict=True) if r["is_classification"]]
    return {
        "n": len(rows),
        "classification_tasks": len(cls),
        "recall_classification_extraction": sum(t == "classification_extraction" for t in cls)
        / max(1, len(cls)),
        "types": dict(Counter(got).most_common()),
    }


def main() -> None:
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    results = {"mt_bench": mt_bench(), "xstest": xstest(), "self_instruct": self_instruct()}
    m = results["mt_bench"]
    print(f"MT-Bench ({m['n']} prompts): agreement {m['agreement']:.1%}")
    for cat, c in m["confusion"].items():
        print(f"  {cat:11s} -> {dict(sorted(c.items(), key=lambda x: -x[1]))}")
    x = results["xstest"]
    print(f"XSTest ({x['n']} prompts): question_answering or code {x['agreement']:.1%}; {x['types']}")
    s = results["self_instruct"]
    print(
        f"self-instruct seed tasks ({s['n']}): {s['classification_tasks']} flagged is_classification, "
        f"{s['recall_classification_extraction']:.1%} typed classification_extraction; {s['types']}"
    )
    out = ROOT / "bench" / "out" / "task_types.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
