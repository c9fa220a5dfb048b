"""Curate throughput and memory, side by side with the tutorial reference, in one process.

    python -m bench.curate                 # real data in ../shared/data + a 100,000-row generated corpus
    python -m bench.curate --rows 20000    # a smaller generated corpus
    python -m bench.curate --no-real       # generated corpus only

For each corpus it prints, measured in this one run:
  * reference: ../shared/baselines/tutorial_curator.py (per-row tokenizer calls, regex checks, md5
    dedup) on the same rows, already in memory (it does not read files or write output);
  * the floor: rendering the same conversations through the chat template and tokenizing them,
    each in one batch call (apply_chat_template(tokenize=False), then tokenizer(texts));
  * ours: the whole curate run as a user runs it (python start-up and imports included): reading
    the files, every stage, writing shards + manifest, with 1 worker and with all cores, each in a
    fresh process so that its peak RSS is its own; and the time each stage took.
rows/s, the ratios ours/reference and ours/floor, and peak RSS (ours: the main process; the
worker processes together are listed separately).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import write_corpus  # noqa: E402
from bench.memory import PeakMemory  # noqa: E402
from curation.config import config_from_dict  # noqa: E402
from curation.engine import default_workers  # noqa: E402
from curation.io.reader import read_source  # noqa: E402
from curation.tokenizer import load_tokenizer  # noqa: E402

SHARED = ROOT.parent / "shared"
REAL_SOURCES = [
    {"name": "sharegpt", "path": "data/FastChat/dummy_conversation.json"},
    {"name": "hh_rlhf", "path": "data/hh-rlhf/test.jsonl.gz"},
    {"name": "gsm8k", "path": "data/AlpacaDataCleaned/gsm_8k_train.json"},
    {"name": "self_instruct", "path": "data/self-instruct/*.jsonl"},
    {
        "name": "humaneval",
        "path": "data/human-eval/HumanEval.jsonl.gz",
        "columns": {"prompt": "prompt", "response": "canonical_solution"},
    },
]


def load_reference():
    path = SHARED / "baselines" / "tutorial_curator.py"
    spec = importlib.util.spec_from_file_location("tutorial_curator", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def as_reference_rows(conversations):
    """The reference takes instruction/response strings: user turns and assistant turns joined."""
    return [
        {
            "instruction": "\n\n".join(m["content"] for m in c if m["role"] == "user"),
            "response": "\n\n".join(m["content"] for m in c if m["role"] == "assistant"),
        }
        for c in conversations
    ]


def timed(fn):
    gc.collect()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return result, seconds, mem.peak


def bench_corpus(label: str, sources: list[dict], base_dir: Path, workers_all: int) -> dict:
    cfg_dict = {"run_name": "bench", "sources": sources}
    tok = load_tokenizer(None)
    convs = []
    for s in sources:
        cfg = config_from_dict({"sources": [s]}, base_dir=base_dir)
        convs += read_source(cfg.sources[0], base_dir).records["messages"].to_pylist()
    n = len(convs)
    print(f"\n== {label}: {n:,} conversations ==", flush=True)
    out = {"corpus": label, "rows": n}

    ref_mod = load_reference()
    ref_rows = as_reference_rows(convs)
    curator = ref_mod.TutorialCurator(tok)
    _, secs, peak = timed(lambda: curator.filter_and_curate(ref_rows))
    out["reference"] = {"seconds": secs, "rows_per_s": n / secs, "peak_rss_mb": peak / 2**20}

    def floor():
        texts = tok.apply_chat_template(convs, tokenize=False)
        return tok(texts, add_special_tokens=False)["input_ids"]

    _, secs, peak = timed(floor)
    out["floor"] = {"seconds": secs, "rows_per_s": n / secs, "peak_rss_mb": peak / 2**20}
    ref_rows.clear()
    convs.clear()
    gc.collect()

    for workers in sorted({1, workers_all}):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.run_ours", json.dumps(cfg_dict), str(base_dir), str(workers)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        d = json.loads(proc.stdout.strip().splitlines()[-1])
        d["rows_per_s"] = n / d["seconds"]
        out[f"ours_{workers}w"] = d
    report(out)
    return out


def report(r: dict) -> None:
    ref, floor = r["reference"], r["floor"]
    print(f"{'':28s}{'seconds':>9s}{'rows/s':>10s}{'peak RSS MB':>13s}{'vs reference':>14s}{'vs floor':>10s}")

    def line(name, d):
        print(
            f"{name:28s}{d['seconds']:9.2f}{d['rows_per_s']:10,.0f}{d['peak_rss_mb']:13,.0f}"
            f"{d['rows_per_s'] / ref['rows_per_s']:13.2f}x{d['rows_per_s'] / floor['rows_per_s']:9.2f}x"
        )

    line("reference (tutorial)", ref)
    line("floor (render+tokenize)", floor)
    for k, d in r.items():
        if k.startswith("ours_"):
            line(f"ours, {d['workers_used']} worker(s) [{k[5:]}]", d)
            stages = ", ".join(f"{s} {v:.2f}s" for s, v in d["stage_seconds"].items() if s != "total")
            print(f"{'':4s}stages: {stages}")
            print(
                f"{'':4s}kept {d['kept']:,}, rejected {d['rejected']:,}, quarantined {d['quarantined']:,}; counting: {d['token_counting']}"
            )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000, help="generated corpus size (0: skip)")
    p.add_argument("--no-real", action="store_true", help="skip the real data in ../shared/data")
    p.add_argument("--workers", type=int, default=default_workers(), help="'all cores' setting")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "curate.json")
    args = p.parse_args()
    results = []
    if not args.no_real:
        if (SHARED / "data").exists():
            results.append(bench_corpus("real data (../shared/data)", REAL_SOURCES, SHARED, args.workers))
        else:
            print(f"skipping real data: {SHARED / 'data'} not found")
    if args.rows:
        path = write_corpus(args.rows, ROOT / "bench" / "out" / f"corpus-{args.rows}.jsonl")
        results.append(
            bench_corpus(
                f"generated corpus ({args.rows:,} rows)",
                [{"name": "generated", "path": str(path)}],
                ROOT,
                args.workers,
            )
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
