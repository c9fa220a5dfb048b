"""Raw vs curated: the same LoRA fine-tune on a raw corpus and on its curated shards.

    python -m bench.ab              # SmolLM2-135M-Instruct on the CPU, ~20 minutes
    python -m bench.ab --quick      # smaller budget, under 10 minutes
    python -m bench.ab --train-tokens 400000 --eval-rows 400 --gen-prompts 200 --max-length-cap 1024   # a GPU

1. The pool: the real sources in ../shared/data (ShareGPT chat, self-instruct, GSM8K, HumanEval,
   hh-rlhf transcripts).
2. A clean evaluation set is held out first: rows the default curation keeps, sampled with the
   seed; every pool row with the same id, the same normalized prompt, or a near-duplicate prompt
   (MinHash clusters at Jaccard 0.7, the project's own near-dedup) is removed from the pool.
3. Defects raw SFT data really has are injected into the rest by a seeded generator at the rates
   in DEFECTS: truncated answers, looping answers, one prompt copied many times, lightly edited
   copies, refusals where none is needed, answers in the wrong language, empty answers.
4. Arm B: the default curation of that raw corpus. Arm A: the raw corpus with every filter off.
   Both are cut to the same budget of trained (assistant) tokens by the mixer, so the comparison
   is about quality, not quantity; same base model, LoRA settings and seed.
5. Evaluation of the base model and both arms: loss on the held-out set; greedy answers to
   held-out prompts and to XSTest's safe prompts, scored for degenerate output (see README), for
   refusals of prompts that need none, and for length. Printed as a table, written to
   bench/out/ab/ab.json, and shown in reports/ab/index.html with answers side by side.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.config import CurateConfig, NearDedupConfig, SourceConfig, config_from_dict  # noqa: E402
from curation.dedup.keys import key_texts  # noqa: E402
from curation.dedup.stages import NearDedupStage  # noqa: E402
from curation.io.reader import read_source  # noqa: E402
from curation.run.pipeline import run_curation  # noqa: E402
from curation.schema import records_table  # noqa: E402
from curation.stages.refusal import RefusalStage  # noqa: E402
from curation.stages.repetition import RepetitionStage  # noqa: E402
from curation.stages.truncation import TruncationStage  # noqa: E402

log = logging.getLogger("bench.ab")
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "ab"

REAL_SOURCES = [
    {"name": "chat", "path": "FastChat/dummy_conversation.json"},
    {"name": "instructions", "path": "self-instruct/*.jsonl"},
    {"name": "math", "path": "AlpacaDataCleaned/gsm_8k_train.json"},
    {
        "name": "code",
        "path": "human-eval/HumanEval.jsonl.gz",
        "columns": {"prompt": "prompt", "response": "canonical_solution"},
    },
    {"name": "safety", "path": "hh-rlhf/test.jsonl.gz"},
]

# Share of pool rows given each defect (exclusive, in this order); copies are extra rows.
DEFECTS = {
    "truncated": 0.08,  # answer cut mid-sentence, 30-70% of the way in
    "looping": 0.05,  # one sentence of the answer repeated 8-15 times
    "needless_refusal": 0.05,  # a benign prompt answered with a refusal
    "wrong_language": 0.04,  # an English prompt answered in Spanish, French or German
    "empty": 0.03,  # an empty or placeholder answer
}
COPIES = {
    "exact_copies": (0.02, 5, 15),  # share of rows copied, min and max copies: one prompt many times
    "near_copies": (0.03, 2, 5),  # lightly edited copies (1-3 words changed)
}
REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I cannot provide that information.",
    "I apologize, but I am not able to assist with this.",
]
FOREIGN = [
    "Lo siento, la respuesta depende de muchos factores. En general, es mejor revisar la documentación y probar paso a paso.",
    "Bien sûr ! La réponse dépend du contexte, mais en général il faut vérifier chaque étape avec soin avant de conclure.",
    "Natürlich! Die Antwort hängt vom Kontext ab, aber im Allgemeinen sollte man jeden Schritt sorgfältig prüfen.",
]
PLACEHOLDERS = ["", "N/A", "...", "TODO"]


@dataclass
class Settings:
    # Defaults sized for ~25 minutes on a 2-core CPU (LoRA on SmolLM2 at max_length 256 trains
    # ~70 tokens/s here, prompts included).
    train_tokens: int = 12_000  # trained (assistant) tokens per arm
    eval_rows: int = 100  # held-out conversations for the loss
    gen_prompts: int = 48  # held-out prompts answered greedily
    safe_prompts: int = 16  # XSTest safe prompts (need no refusal)
    max_new_tokens: int = 96
    max_length_cap: int = 256
    effective_batch_size: int = 8
    seed: int = 0
    model: str | None = None  # default SmolLM2-135M-Instruct
    tokenizer: str | None = None  # for token counts in curation (default: the model's)
    sources: list[dict] = field(default_factory=lambda: list(REAL_SOURCES))
    base_dir: Path = SHARED
    out: Path = OUT
    learning_rate: float = 5e-4  # a short run: a higher LoRA rate than the trainer's default


QUICK = {"train_tokens": 4_000, "eval_rows": 60, "gen_prompts": 16, "safe_prompts": 8, "max_new_tokens": 64}


# -- the corpus -------------------------------------------------------------------------------


def load_pool(settings: Settings) -> pa.Table:
    parts = []
    for spec in settings.sources:
        read = read_source(SourceConfig(**spec), settings.base_dir)
        parts.append(read.records)
    return pa.concat_tables(parts, promote_options="default")


def curate_config(
    settings: Settings, sources: list[dict], raw: bool = False, total_tokens: int | None = None
) -> CurateConfig:
    data: dict = {"run_name": "ab", "seed": settings.seed, "sources": sources}
    # Rows longer than the trainer's max_length are dropped in both arms, so that the assistant
    # tokens counted for the budget are exactly the tokens trained on (nothing truncated).
    length = {
        "tokenizer": settings.tokenizer or settings.model,
        "max_length": settings.max_length_cap,
        "max_total_tokens": settings.max_length_cap,
    }
    stages: dict = {"length": length}
    if raw:  # every filter off: only token counts (for the budget)
        for name in (
            "task_type",
            "empty",
            "truncation",
            "repetition",
            "refusal",
            "language",
            "exact_dedup",
            "near_dedup",
        ):
            stages[name] = {"enabled": False}
    data["stages"] = stages
    if total_tokens is not None:
        data["mix"] = {"targets": {s["name"]: 1.0 for s in sources}, "total_tokens": total_tokens}
    data["report"] = False
    return config_from_dict(data, base_dir=settings.base_dir)


def hold_out(pool: pa.Table, settings: Settings, work: Path) -> tuple[pa.Table, pa.Table, dict]:
    """(clean held-out rows, pool without them or anything near them, counts)."""
    clean = run_curation(curate_config(settings, settings.sources), out=work / "clean", overwrite=True).kept
    # Single-turn rows make clean generation prompts; sample them with the seed.
    single = clean.filter(pc.equal(clean["n_turns"], 2)) if "n_turns" in clean.column_names else clean
    rng = np.random.default_rng(settings.seed)
    pick = rng.choice(
        single.num_rows, min(settings.eval_rows, single.num_rows), replace=False
    )  # mixed sources
    held = single.take(pa.array(pick)).select(["id", "source", "messages", "meta"])
    # Remove from the pool: same id, same normalized prompt, or a near-duplicate prompt.
    both = pa.concat_tables([held, pool.select(["id", "source", "messages", "meta"])])
    n_held = held.num_rows
    prompts = key_texts(both, "prompt").to_numpy()
    near = NearDedupStage(NearDedupConfig(key="prompt", threshold=0.7, char_ngram=5)).clusters(both)
    held_ids = set(held["id"].to_pylist())
    held_prompts = set(prompts[:n_held].tolist())
    held_clusters = set(near[:n_held].tolist())
    pool_ids = both["id"].to_pylist()[n_held:]
    leak = np.array(
        [
            pid in held_ids or p in held_prompts or c in held_clusters
            for pid, p, c in zip(pool_ids, prompts[n_held:], near[n_held:], strict=True)
        ]
    )
    rest = pool.filter(pa.array(~leak))
    return held, rest, {"held_out": n_held, "pool": pool.num_rows, "removed_from_pool": int(leak.sum())}


def _answer_index(messages: list[dict]) -> int:
    return max(i for i, m in enumerate(messages) if m["role"] == "assistant")


def inject_defects(pool: pa.Table, seed: int) -> tuple[list[dict], dict]:
    """Raw rows (OpenAI messages + a ``defect`` field) with seeded defects at the stated rates."""
    rng = random.Random(seed)
    rows, counts = [], {k: 0 for k in (*DEFECTS, *COPIES, "none")}
    for messages, source in zip(pool["messages"].to_pylist(), pool["source"].to_pylist(), strict=True):
        msgs = [dict(m) for m in messages]
        i = _answer_index(msgs)
        answer = msgs[i]["content"]
        r, acc, defect = rng.random(), 0.0, "none"
        for name, rate in DEFECTS.items():
            acc += rate
            if r < acc:
                defect = name
                break
        if defect == "truncated" and len(answer) > 10:
            cut = int(len(answer) * rng.uniform(0.3, 0.7))
            msgs[i]["content"] = answer[:cut].rstrip(" .!?\n")
        elif defect == "looping":
            sentence = answer.split(". ")[0].strip()[:200] or answer[:80]
            msgs[i]["content"] = " ".join([sentence.rstrip(".") + "."] * rng.randint(8, 15))
        elif defect == "needless_refusal":
            msgs[i]["content"] = rng.choice(REFUSALS)
        elif defect == "wrong_language":
            msgs[i]["content"] = rng.choice(FOREIGN)
        elif defect == "empty":
            msgs[i]["content"] = rng.choice(PLACEHOLDERS)
        else:
            defect = "none"
        counts[defect] += 1
        rows.append({"messages": msgs, "defect": defect, "origin": source})
        for name, (rate, lo, hi) in COPIES.items():
            if defect == "none" and rng.random() < rate:
                for _ in range(rng.randint(lo, hi)):
                    copy = [dict(m) for m in msgs]
                    if name == "near_copies":
                        words = copy[i]["content"].split(" ")
                        for _ in range(rng.randint(1, 3)):
                            words[rng.randrange(len(words))] = rng.choice(["indeed", "also", "then", "so"])
                        copy[i]["content"] = " ".join(words)
                    rows.append({"messages": copy, "defect": name, "origin": source})
                    counts[name] += 1
    rng.shuffle(rows)
    return rows, counts


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# -- scoring generations ----------------------------------------------------------------------


def score_answers(prompts: list[str], answers: list[str], finished: list[bool]) -> dict:
    """Degenerate: the repetition stage rejects the answer (a loop), or it is empty, or it ended
    (not cut by max_new_tokens) where the truncation stage says an answer cannot end."""
    convs = [
        [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        for p, a in zip(prompts, answers, strict=True)
    ]
    batch = records_table(convs)
    rep = RepetitionStage()
    looping = [r is not None for r in rep.decide(rep.annotate(batch))]
    trunc = TruncationStage()
    cut = [r is not None for r in trunc.decide(trunc.annotate(batch))]
    refusal = RefusalStage().annotate(batch)["is_refusal"].to_pylist()
    empty = [not a.strip() for a in answers]
    degenerate = [lp or e or (c and f) for lp, e, c, f in zip(looping, empty, cut, finished, strict=True)]
    return {
        "degenerate": degenerate,
        "looping": looping,
        "stopped_mid_sentence": [c and f for c, f in zip(cut, finished, strict=True)],
        "refusal": refusal,
        "hit_max_new_tokens": [not f for f in finished],
        "words": [len(a.split()) for a in answers],
    }


def summarize(scores: dict, n_gen: int) -> dict:
    def share(key, sl):
        v = scores[key][sl]
        return sum(v) / len(v) if v else 0.0

    held, safe = slice(0, n_gen), slice(n_gen, None)
    return {
        "degenerate": share("degenerate", slice(None)),
        "looping": share("looping", slice(None)),
        "stopped_mid_sentence": share("stopped_mid_sentence", slice(None)),
        "hit_max_new_tokens": share("hit_max_new_tokens", slice(None)),
        "refusal_held_out": share("refusal", held),
        "refusal_xstest_safe": share("refusal", safe),
        "mean_words": float(np.mean(scores["words"])) if scores["words"] else 0.0,
    }


# -- the experiment ---------------------------------------------------------------------------


def xstest_safe(n: int, seed: int) -> list[str]:
    path = SHARED / "xstest" / "xstest_prompts.csv"
    if not path.is_file() or n == 0:
        return []
    with open(path, encoding="utf-8") as f:
        safe = [r["prompt"] for r in csv.DictReader(f) if r["label"] == "safe"]
    return random.Random(seed).sample(safe, min(n, len(safe)))


def run(settings: Settings) -> dict:
    from training.config import TrainConfig
    from training.run import train

    t_start = time.perf_counter()
    work = settings.out
    work.mkdir(parents=True, exist_ok=True)
    pool = load_pool(settings)
    held, rest, split_counts = hold_out(pool, settings, work)
    held_file = write_jsonl([{"messages": m} for m in held["messages"].to_pylist()], work / "held_out.jsonl")
    raw_rows, defect_counts = inject_defects(rest, settings.seed)
    raw_file = write_jsonl(raw_rows, work / "raw.jsonl")
    raw_source = [{"name": "raw", "path": str(raw_file)}]

    # Arm B first (its trained tokens bound the budget), then both cut to the same budget.
    full_b = run_curation(curate_config(settings, raw_source), out=work / "curated_full", overwrite=True)
    b_tokens = int(pc.sum(full_b.kept["completion_tokens"]).as_py() or 0)
    budget = min(settings.train_tokens, b_tokens)
    arm_b = run_curation(
        curate_config(settings, raw_source, total_tokens=budget), out=work / "curated", overwrite=True
    )
    arm_a = run_curation(
        curate_config(settings, raw_source, raw=True, total_tokens=budget), out=work / "raw", overwrite=True
    )
    removed = {}
    rej = full_b.rejected
    for defect, reason in zip(
        [json.loads(m).get("defect", "none") for m in rej["meta"].to_pylist()],
        rej["reject_reason"].to_pylist(),
        strict=True,
    ):
        removed.setdefault(defect, {}).setdefault(reason.split(":")[0], 0)
        removed[defect][reason.split(":")[0]] += 1

    gen_prompts = [
        m[0]["content"] if m[0]["role"] == "user" else m[1]["content"]
        for m in held["messages"].to_pylist()[: settings.gen_prompts]
    ]
    safe = xstest_safe(settings.safe_prompts, settings.seed)
    prompts = gen_prompts + safe
    arms = {}
    for name, result in (("A_raw", arm_a), ("B_curated", arm_b)):
        cfg = TrainConfig(
            model=settings.model,
            output=str(work / f"lora_{name}"),
            seed=settings.seed,
            epochs=1.0,
            learning_rate=settings.learning_rate,
            effective_batch_size=settings.effective_batch_size,
            max_length=settings.max_length_cap,
            validation_data=str(held_file),
            max_validation_rows=settings.eval_rows,
            eval_prompts=prompts,
            validation_prompts=0,
            max_new_tokens=settings.max_new_tokens,
        )
        t0 = time.perf_counter()
        trained = train(result.out, cfg)
        evaluation = json.loads((trained.output / "eval.json").read_text(encoding="utf-8"))
        gens = evaluation["generations"]
        arms[name] = {
            "rows": result.manifest["totals"]["train_rows"],
            "trained_tokens": int(pc.sum(result.kept["completion_tokens"]).as_py() or 0),
            "steps": trained.metrics["steps"],
            "seconds": time.perf_counter() - t0,
            "loss": trained.metrics["eval_loss_after"],
            "base_loss": trained.metrics["eval_loss_before"],
            "answers": [g["tuned"] for g in gens],
            "finished": [g["tuned_finished"] for g in gens],
            "base_answers": [g["base"] for g in gens],
            "base_finished": [g["base_finished"] for g in gens],
        }
    n_gen = len(gen_prompts)
    base = arms["A_raw"]
    table = {
        "base": {
            "loss": base["base_loss"],
            **summarize(score_answers(prompts, base["base_answers"], base["base_finished"]), n_gen),
        },
    }
    for name, arm in arms.items():
        table[name] = {
            "loss": arm["loss"],
            **summarize(score_answers(prompts, arm["answers"], arm["finished"]), n_gen),
        }
    a, b = table["A_raw"], table["B_curated"]
    verdict = {
        "lower_loss_B": b["loss"] < a["loss"],
        "degenerate_reduction": (1 - b["degenerate"] / a["degenerate"]) if a["degenerate"] else None,
    }
    results = {
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items() if k != "sources"
        },
        "split": split_counts,
        "defects_injected": defect_counts,
        "curation_removed_by_defect": removed,
        "raw_rows": len(raw_rows),
        "budget_trained_tokens": budget,
        "arms": {
            k: {x: v for x, v in arm.items() if not x.startswith(("answers", "base_", "finished"))}
            for k, arm in arms.items()
        },
        "table": table,
        "verdict": verdict,
        "prompts": prompts,
        "answers": {
            "base": base["base_answers"],
            "A_raw": arms["A_raw"]["answers"],
            "B_curated": arms["B_curated"]["answers"],
        },
        "seconds": time.perf_counter() - t_start,
    }
    (work / "ab.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return results


def format_table(results: dict) -> str:
    cols = [
        ("held-out loss", "loss", "{:.4f}"),
        ("degenerate", "degenerate", "{:.1%}"),
        ("looping", "looping", "{:.1%}"),
        ("stopped mid-sentence", "stopped_mid_sentence", "{:.1%}"),
        ("hit max tokens", "hit_max_new_tokens", "{:.1%}"),
        ("refusals (held-out)", "refusal_held_out", "{:.1%}"),
        ("refusals (XSTest safe)", "refusal_xstest_safe", "{:.1%}"),
        ("mean words", "mean_words", "{:.1f}"),
    ]
    head = f"{'':12s}" + "".join(f"{c[0]:>24s}" for c in cols)
    lines = [head]
    for name, row in results["table"].items():
        lines.append(f"{name:12s}" + "".join(f"{fmt.format(row[key]):>24s}" for _, key, fmt in cols))
    v = results["verdict"]
    red = v["degenerate_reduction"]
    lines.append(
        f"\nB has lower held-out loss than A: {v['lower_loss_B']}; degenerate answers "
        + (f"{red:.0%} fewer with B" if red is not None else "none in A")
        + f" (target: at least 50% fewer). Budget: {results['budget_trained_tokens']:,} trained tokens per arm."
    )
    return "\n".join(lines)


def write_page(results: dict, path: Path, examples: int = 8) -> Path:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(p)}</td><td>{e(results['answers']['base'][i])}</td><td>{e(results['answers']['A_raw'][i])}</td>"
        f"<td>{e(results['answers']['B_curated'][i])}</td></tr>"
        for i, p in enumerate(results["prompts"][:examples])
    )
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Raw vs curated A/B</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:.4rem;vertical-align:top;font-size:.85rem;white-space:pre-wrap}}
th{{background:#f5f5f5}}</style></head><body><h1>Raw vs curated: the same LoRA fine-tune</h1>
<pre>{e(format_table(results))}</pre>
<h2>Answers side by side</h2><table><tr><th>prompt</th><th>base</th><th>A: raw</th><th>B: curated</th></tr>{rows}</table>
<h2>Defects injected and what curation removed</h2><pre>{e(json.dumps({"injected": results["defects_injected"], "removed_by_defect": results["curation_removed_by_defect"]}, indent=2))}</pre>
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description="raw vs curated LoRA fine-tune")
    p.add_argument("--quick", action="store_true", help="a smaller budget (~10 minutes on this CPU)")
    for name, default in Settings().__dict__.items():
        if isinstance(default, int | float) and not isinstance(default, bool):
            p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=None)
    p.add_argument("--model", help="base model (default SmolLM2-135M-Instruct)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    overrides = dict(QUICK) if args.quick else {}
    overrides.update({k: v for k, v in vars(args).items() if v is not None and k not in ("quick",)})
    settings = Settings(**overrides)
    results = run(settings)
    print(format_table(results))
    page = write_page(results, ROOT / "reports" / "ab" / "index.html")
    print(f"\n{results['seconds'] / 60:.1f} minutes; {settings.out / 'ab.json'}; {page}")


if __name__ == "__main__":
    main()
