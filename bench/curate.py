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
from bench.run_ours import steal_seconds  # noqa: E402
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
        t0, steal0 = time.perf_counter(), steal_seconds()
        result = fn()
        seconds = time.perf_counter() - t0
    steal1 = steal_seconds()
    return result, seconds, mem.peak, None if steal0 is None or steal1 is None else steal1 - steal0


def ours(cfg_dict: dict, base_dir: Path, workers: int, one_core: bool = False, engine: str = "local") -> dict:
    cmd = [sys.executable, "-m", "bench.run_ours", json.dumps(cfg_dict), str(base_dir), str(workers)]
    cmd += ["--one-core"] * one_core + ["--engine", engine]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_corpus(
    label: str,
    sources: list[dict],
    base_dir: Path,
    workers_all: int,
    sample_sources: list[dict] | None = None,
    ray: bool = False,
) -> dict:
    """Reference (and the floor, when the whole corpus is measured) on the rows of
    ``sample_sources`` (default: the corpus itself), then our runs on the whole corpus."""
    cfg_dict = {"run_name": "bench", "report": False, "sources": sources}
    tok = load_tokenizer(None)
    convs = []
    for s in sample_sources or sources:
        cfg = config_from_dict({"sources": [s]}, base_dir=base_dir)
        convs += read_source(cfg.sources[0], base_dir).records["messages"].to_pylist()
    n_ref = len(convs)
    out = {"corpus": label, "sampled": sample_sources is not None}

    ref_mod = load_reference()
    ref_rows = as_reference_rows(convs)
    curator = ref_mod.TutorialCurator(tok)
    _, secs, peak, steal = timed(lambda: curator.filter_and_curate(ref_rows))
    out["reference"] = {
        "vm_steal_seconds": steal,
        "seconds": secs,
        "rows": n_ref,
        "rows_per_s": n_ref / secs,
        "peak_rss_mb": peak / 2**20,
    }

    if sample_sources is None:

        def floor():
            texts = tok.apply_chat_template(convs, tokenize=False)
            return tok(texts, add_special_tokens=False)["input_ids"]

        _, secs, peak, _ = timed(floor)
        out["floor"] = {
            "seconds": secs,
            "rows": n_ref,
            "rows_per_s": n_ref / secs,
            "peak_rss_mb": peak / 2**20,
        }
    ref_rows.clear()
    convs.clear()
    gc.collect()

    runs = [("ours_1w", 1, True, "local"), (f"ours_{workers_all}w", workers_all, False, "local")]
    if ray:
        runs.append(("ours_ray", workers_all, False, "ray"))
    for key, workers, one_core, engine in runs:
        if workers_all == 1 and key != "ours_1w" and engine == "local":
            continue
        d = ours(cfg_dict, base_dir, workers, one_core, engine)
        d["rows_per_s"] = d["input"] / d["seconds"]
        out[key] = d
        print(f"  {key}: {d['seconds']:.1f} s", flush=True)
    out["rows"] = out["ours_1w"]["input"]
    print(f"\n== {label}: {out['rows']:,} conversations ==", flush=True)
    report(out)
    return out


def report(r: dict) -> None:
    ref, floor = r["reference"], r.get("floor")
    if r.get("sampled"):
        print(f"(reference measured on the first {ref['rows']:,} of the rows; the floor is not measured)")
    head = (
        f"{'':34s}{'seconds':>9s}{'rows/s':>10s}{'peak RSS MB':>13s}{'+workers MB':>12s}{'vs reference':>14s}"
    )
    print(head + (f"{'vs floor':>10s}" if floor else ""))

    def line(name, d):
        text = (
            f"{name:34s}{d['seconds']:9.2f}{d['rows_per_s']:10,.0f}{d['peak_rss_mb']:13,.0f}"
            f"{d.get('worker_peak_rss_mb', 0):12,.0f}{d['rows_per_s'] / ref['rows_per_s']:13.2f}x"
        )
        if floor:
            text += f"{d['rows_per_s'] / floor['rows_per_s']:9.2f}x"
        print(text)

    line("reference (tutorial)", ref)
    if ref.get("vm_steal_seconds") is not None:
        print(
            f"{'':4s}CPU time taken by the hypervisor (steal) during the run: {ref['vm_steal_seconds']:.1f} s"
        )
    if floor:
        line("floor (render+tokenize)", floor)
    for k, d in r.items():
        if k.startswith("ours_"):
            what = (
                "ray engine" if d["engine"] == "ray" else "1 worker, 1 core" if d["one_core"] else "all cores"
            )
            line(f"ours, {what} ({d['workers_used']} proc)", d)
            stages = ", ".join(f"{s} {v:.2f}s" for s, v in d["stage_seconds"].items() if s != "total")
            print(f"{'':4s}stages: {stages}")
            steal = d.get("vm_steal_seconds")
            print(
                f"{'':4s}kept {d['kept']:,}, rejected {d['rejected']:,}, quarantined {d['quarantined']:,}; counting: {d['token_counting']}"
                + (
                    f"; CPU time taken by the hypervisor (steal) during the run: {steal:.1f} s"
                    if steal is not None
                    else ""
                )
            )
    one = r["ours_1w"]
    for k, d in r.items():
        if k.startswith("ours_") and k != "ours_1w":
            print(
                f"{d['engine']} with {d['workers_used']} processes / 1 worker on 1 core: {d['rows_per_s'] / one['rows_per_s']:.2f}x"
            )


def sample_of(path: Path, rows: int) -> Path:
    """The first ``rows`` lines of a JSONL corpus, as a file."""
    out = path.with_name(f"{path.stem}-first{rows}.jsonl")
    if not out.exists():
        with path.open() as src, out.open("w") as dst:
            for i, line in enumerate(src):
                if i >= rows:
                    break
                dst.write(line)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000, help="generated corpus size (0: skip)")
    p.add_argument("--no-real", action="store_true", help="skip the real data in ../shared/data")
    p.add_argument("--workers", type=int, default=default_workers(), help="'all cores' setting")
    p.add_argument("--reference-rows", type=int, default=100_000, help="the reference runs on this many rows")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray engine run")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "curate.json")
    args = p.parse_args()
    ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    results = []
    if not args.no_real:
        if (SHARED / "data").exists():
            results.append(
                bench_corpus("real data (../shared/data)", REAL_SOURCES, SHARED, args.workers, ray=ray)
            )
        else:
            print(f"skipping real data: {SHARED / 'data'} not found")
    if args.rows:
        path = write_corpus(args.rows, ROOT / "bench" / "out" / f"corpus-{args.rows}.jsonl")
        sample = None
        if args.rows > args.reference_rows:
            sample = [{"name": "generated", "path": str(sample_of(path, args.reference_rows))}]
        big = bench_corpus(
            f"generated corpus ({args.rows:,} rows)",
            [{"name": "generated", "path": str(path)}],
            ROOT,
            args.workers,
            sample_sources=sample,
            ray=ray,
        )
        results.append(big)
        if args.rows > 100_000:  # memory growth: the same all-cores run on 100,000 rows
            small_path = write_corpus(100_000, ROOT / "bench" / "out" / "corpus-100000.jsonl")
            cfg = {
                "run_name": "bench",
                "report": False,
                "sources": [{"name": "generated", "path": str(small_path)}],
            }
            small = ours(cfg, ROOT, args.workers)
            key = f"ours_{args.workers}w"
            b = big[key]
            print(
                f"\npeak RSS, all cores: {b['peak_rss_mb']:,.0f} MB at {args.rows:,} rows vs "
                f"{small['peak_rss_mb']:,.0f} MB at 100,000 rows: {b['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
                f"(main process); with workers {b['total_peak_rss_mb']:,.0f} vs {small['total_peak_rss_mb']:,.0f} MB: "
                f"{b['total_peak_rss_mb'] / small['total_peak_rss_mb']:.2f}x"
            )
            big["memory_vs_100k"] = {"at_100k": small}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
