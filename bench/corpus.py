"""Generated benchmark corpus: N conversations of ~1 KB with realistic defects and duplicates.

Built from the same seeded banks as the bundled sample (data/generate_sample.py): chat, facts,
rewriting, code and math, 1-3 turns, with truncations, loops, refusals, empty answers, other
languages, exact and near duplicates at the sample's rates.

    python -m bench.corpus --rows 100000 --out bench/out/corpus-100000.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sample_module():
    spec = importlib.util.spec_from_file_location("generate_sample", ROOT / "data" / "generate_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def conversations(n: int, seed: int = 0):
    g = _sample_module()
    rng = random.Random(seed)
    made: list[list[dict]] = []
    for _ in range(n):
        r = rng.random()
        if made and r < 0.04:  # exact duplicate of an earlier row
            conv = json.loads(json.dumps(rng.choice(made)))
        elif made and r < 0.08:  # near duplicate: one word of the answer edited
            conv = json.loads(json.dumps(rng.choice(made)))
            if conv[-1]["content"].strip():
                conv[-1]["content"] = g.near_dup(conv[-1]["content"], rng)
        else:
            conv = []
            if rng.random() < 0.3:
                conv.append({"role": "system", "content": g.SUPPORT_SYSTEM})
            for _turn in range(rng.choice([1, 2, 2, 3])):
                k = rng.random()
                if k < 0.05:
                    q, a = rng.choice(g.FOREIGN)
                elif k < 0.35:
                    q, a = rng.choice(g.FACTS)
                    a = a + " " + rng.choice(g.FACTS)[1]  # longer answers, ~1 KB conversations
                elif k < 0.55:
                    q, a = rng.choice(g.CODE)
                elif k < 0.65:
                    src, a = rng.choice(g.REWRITES)
                    q = "Rewrite the sentence to be clear and concise.\n\n" + src
                else:
                    q, a = g.math_problem(rng)
                conv += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            conv[-1]["content"] = g.apply_defect(g.defect(rng, g.RATES), conv[-1]["content"], rng)
        made.append(conv)
        yield conv


def write_corpus(n: int, out: Path, seed: int = 0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i, conv in enumerate(conversations(n, seed)):
            f.write(json.dumps({"messages": conv, "uid": i}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    out = args.out or ROOT / "bench" / "out" / f"corpus-{args.rows}.jsonl"
    print(write_corpus(args.rows, out))


if __name__ == "__main__":
    main()
