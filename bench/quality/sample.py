"""Draw the rows of the quality set (run once; the labels are then made by reading each row).

Half the rows are drawn at random (stratified by file), half from rows that some cheap signal
marks as suspicious: a stage of the filters as they were before labelling flags them, or a
regex finds a template marker, a trailing ellipsis, a refusal phrase, a non-Latin script, a
repeated line, and so on. Content types that are rare at random (emoji, LaTeX, verse,
translation, tables, unfenced code, very short answers) are topped up so that each can reach 60
clean rows. The draw is seeded; ``python -m bench.quality.sample --out DIR`` writes the rows to
label as JSONL (text included, outside the project).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import polars as pl

from bench.quality.sources import SOURCES, read_file

RANDOM_PER_FILE = {"alpaca_eval_outputs": 45, "hh-rlhf": 100, "FastChat": 50, "AlpacaDataCleaned": 50}
RANDOM_DEFAULT = 40

SIGNALS = {
    "template_marker": r"###\s*(?:Human|Instruction|Response|Assistant|Input)|\[\|(?:Human|AI)\|\]|<\|[a-z_]+\|>|(?m)^\s*(?:Human|User|USER|Assistant|ASSISTANT)\s*:",
    "ellipsis_end": r"(?:\.\.\.|…)\s*$",
    "no_end_punct": r"[\p{L},;:(\-]\s*$",
    "refusal_phrase": r"(?i)\b(?:sorry|apologi[sz]e|as an ai|language model|cannot|can't|not appropriate|illegal|unethical)\b",
    "non_latin": r"[\p{Han}\p{Cyrillic}\p{Hangul}\p{Hiragana}\p{Katakana}\p{Arabic}\p{Devanagari}]",
    "accented": r"(?i)\b(?:el|la|les|des|und|der|die|est|que|para|pour)\b.*\b(?:el|la|les|des|und|der|die|est|que|para|pour)\b",
}
CONTENT_HINTS = {
    "emoji": r"[\x{1F300}-\x{1FAFF}\x{2600}-\x{27BF}]",
    "latex": r"\\\[|\\\(|\$\$|\\frac|\\begin\{|\\sqrt",
    "table": r"(?m)^\s*\|?.*\|.*\|\s*$",
    "fenced_code": r"```",
    "unfenced_code": r"(?m)^\s*(?:def |return |import |#include|public |for \(|if \(|\}|<div|<html|function |SELECT |console\.)",
}
PROMPT_HINTS = {
    "verse": r"(?i)\b(?:poem|song|lyrics|haiku|rap|verse|limerick|sonnet|rhyme)\b",
    "translation": r"(?i)translat|\bin (?:french|spanish|german|italian|chinese|japanese|portuguese|russian|korean)\b",
}


def _flags_before_labelling(table) -> list[set[str]]:
    """Which of the (pre-labelling) map stages flag each row: a suspicion signal only."""
    from curation.config import StagesConfig
    from curation.stages import build_map_stages

    cfg = StagesConfig()
    cfg.length.enabled = False
    flags = [set() for _ in range(table.num_rows)]
    for stage in build_map_stages(cfg):
        annotated = stage.annotate(table)
        for i, reason in enumerate(stage.decide(annotated)):
            if reason is not None:
                flags[i].add(stage.name)
        if "is_refusal" in annotated.column_names:
            for i, v in enumerate(annotated["is_refusal"].to_pylist()):
                if v:
                    flags[i].add("refusal_tag")
    return flags


def candidates(file: str) -> pl.DataFrame:
    t = read_file(file)
    msgs = t["messages"].to_pylist()
    df = pl.DataFrame(
        {
            "row": list(range(t.num_rows)),
            "id": t["id"].to_pylist(),
            "prompt": ["\n".join(m["content"] for m in c if m["role"] == "user") for c in msgs],
            "answer": ["\n".join(m["content"] for m in c if m["role"] == "assistant") for c in msgs],
        }
    )
    exprs = [pl.col("answer").str.contains(p).alias(k) for k, p in {**SIGNALS, **CONTENT_HINTS}.items()]
    exprs += [pl.col("prompt").str.contains(p).alias(k) for k, p in PROMPT_HINTS.items()]
    exprs.append((pl.col("answer").str.strip_chars().str.len_chars() < 40).alias("short"))
    df = df.with_columns(exprs).with_columns(
        repeated_line=pl.col("answer")
        .str.split("\n")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element().str.len_chars() > 20).is_duplicated().any())
        .list.first()
        .fill_null(False),
        stage_flag=pl.Series([bool(f) for f in _flags_before_labelling(t)]),
    )
    return df


def draw(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    chosen: dict[tuple[str, int], str] = {}
    pools: dict[str, list[tuple[str, int]]] = {}
    suspicious: list[tuple[str, int]] = []
    for file in SOURCES:
        df = candidates(file)
        n = next((v for k, v in RANDOM_PER_FILE.items() if file.startswith(k)), RANDOM_DEFAULT)
        for r in rng.sample(range(df.height), min(n, df.height)):
            chosen[(file, r)] = "random"
        sig = df.filter(pl.any_horizontal([*SIGNALS, "repeated_line", "stage_flag"]))
        suspicious += [(file, r) for r in sig["row"].to_list()]
        for k in [*CONTENT_HINTS, *PROMPT_HINTS, "short"]:
            pools.setdefault(k, []).extend((file, r) for r in df.filter(pl.col(k))["row"].to_list())
    n_random = len(chosen)
    rng.shuffle(suspicious)
    for key in suspicious:
        if sum(v == "suspicious" for v in chosen.values()) >= n_random * 0.8:
            break
        chosen.setdefault(key, "suspicious")
    for k, pool in pools.items():  # content types that random draws leave short of 60 clean rows
        rng.shuffle(pool)
        for key in pool[:90]:
            chosen.setdefault(key, f"content:{k}")
    return [{"file": f, "row": r, "drawn": why} for (f, r), why in sorted(chosen.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the rows to label (not the project)")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = draw(args.seed)
    random.Random(args.seed).shuffle(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    for b in range(args.batches):
        with (args.out / f"batch_{b:02d}.jsonl").open("w") as fh:
            for r in rows[b :: args.batches]:
                t = read_file(r["file"])
                fh.write(
                    json.dumps(
                        {
                            "file": r["file"],
                            "row": r["row"],
                            "id": t["id"][r["row"]].as_py(),
                            "messages": t["messages"][r["row"]].as_py(),
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    (args.out / "drawn.json").write_text(json.dumps(rows))
    print(f"{len(rows)} rows in {args.batches} batches under {args.out}")


if __name__ == "__main__":
    main()
