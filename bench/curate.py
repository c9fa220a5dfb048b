"""Curate throughput and memory, side by side with the tutorial reference, in one process.

    python -m bench.curate                 # real data in ../shared/data + a 100,000-row generated corpus
    python -m bench.curate --rows 20000    # a smaller generated corpus
    python -m bench.curate --no-real       # generated corpus only

For each corpus it prints, measured in this one run (on the real data, in 5 interleaved rounds:
the ratios are the medians of the ratios within each round, as this VM's speed drifts):
  * reference: ../shared/baselines/tutorial_curator.py (per-row tokenizer calls, regex checks, md5
    dedup) on the same rows, already in memory (it does not read files or write output);
  * the floor: rendering the same conversations through the chat template and tokenizing them,
    each in one batch call (apply_chat_template(tokenize=False), then tokenizer(texts));
  * ours: the whole curate run as a user runs it: loading the tokenizer, reading the files, every
    stage, writing shards + manifest, with 1 worker and with all cores, each in a fresh process so
    that its peak RSS is its own (python start-up and module imports are not timed, as the
    reference's are not; the worker processes' start-up is); and the time each stage took.
rows/s, the ratios ours/reference and ours/floor, and peak RSS (ours: the main process; the
worker processes together are listed separately).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import write_corpus  # noqa: E402
from bench.memory import PeakMemory  # noqa: E402
from bench.run_ours import steal_seconds  # noqa: E402
from curation.config import config_from_dict  # noqa: E402
from curation.io.reader import read_source  # noqa: E402
from curation.run.engine import default_workers  # noqa: E402
from curation.tokens.tokenizer import load_tokenizer  # noqa: E402

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


def render_and_tokenize(tok, convs):
    """The floor: render every conversation, then tokenize them all, each in one batch call."""
    texts = tok.apply_chat_template(convs, tokenize=False)
    return tok(texts, add_special_tokens=False)["input_ids"]


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
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Its memory is sampled from here: a sampling thread in the run would stop it forking its workers.
    with PeakMemory(proc.pid) as mem:
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{stderr[-3000:]}")
    d = json.loads(stdout.strip().splitlines()[-1])
    d["peak_rss_mb"] = mem.peak_self / 2**20
    d["worker_peak_rss_mb"] = mem.peak_children / 2**20
    d["total_peak_rss_mb"] = mem.peak / 2**20
    return d


def bench_corpus(
    label: str,
    sources: list[dict],
    base_dir: Path,
    workers_all: int,
    sample_sources: list[dict] | None = None,
    ray: bool = False,
    rounds: int = 1,
) -> dict:
    """Reference (and the floor, when the whole corpus is measured) on the rows of
    ``sample_sources`` (default: the corpus itself), then our runs on the whole corpus.

    With ``rounds > 1`` the measurements are interleaved: each round runs the reference, the floor
    and our runs once, back to back. This VM's speed drifts by up to 2x within minutes, so a ratio
    is taken within each round, and the table shows each run's median and the median ratio."""
    cfg_dict = {"run_name": "bench", "report": False, "sources": sources}
    convs = []
    for s in sample_sources or sources:
        cfg = config_from_dict({"sources": [s]}, base_dir=base_dir)
        convs += read_source(cfg.sources[0], base_dir).records["messages"].to_pylist()
    n_ref = len(convs)
    ref_mod = load_reference()
    ref_rows = as_reference_rows(convs)
    runs = [("ours_1w", 1, True, "local"), (f"ours_{workers_all}w", workers_all, False, "local")]
    runs = [r for r in runs if not (workers_all == 1 and r[0] != "ours_1w")]
    measured: dict[str, list[dict]] = {}
    for i in range(rounds):
        if rounds > 1:
            print(f"  round {i + 1}/{rounds}", flush=True)
        # A tokenizer loaded afresh (untimed) for each timing: its word cache starts empty, as in a
        # real run, and a second pass over the same rows is not measured warm.
        curator = ref_mod.TutorialCurator(load_tokenizer(None))
        _, secs, peak, steal = timed(partial(curator.filter_and_curate, ref_rows))
        del curator
        measured.setdefault("reference", []).append(
            {"vm_steal_seconds": steal, "seconds": secs, "rows": n_ref, "peak_rss_mb": peak / 2**20}
        )
        print(f"  reference: {secs:.1f} s", flush=True)
        if sample_sources is None:
            _, secs, peak, _ = timed(partial(render_and_tokenize, load_tokenizer(None), convs))
            measured.setdefault("floor", []).append(
                {"seconds": secs, "rows": n_ref, "peak_rss_mb": peak / 2**20}
            )
        gc.collect()
        for key, workers, one_core, engine in runs:
            d = ours(cfg_dict, base_dir, workers, one_core, engine)
            measured.setdefault(key, []).append(d)
            print(f"  {key}: {d['seconds']:.1f} s", flush=True)
    if ray:
        d = ours(cfg_dict, base_dir, workers_all, False, "ray")
        measured["ours_ray"] = [d]
        print(f"  ours_ray: {d['seconds']:.1f} s", flush=True)
    ref_rows.clear()
    convs.clear()
    gc.collect()

    out = {"corpus": label, "sampled": sample_sources is not None, "rounds": rounds}
    for key, values in measured.items():
        d = dict(sorted(values, key=lambda v: v["seconds"])[len(values) // 2])  # the median run
        d["seconds_each_round"] = [v["seconds"] for v in values]
        d["rows_per_s"] = (d.get("input") or d["rows"]) / d["seconds"]
        out[key] = d
    # Ratios within each round (same machine state), then their median.
    for key in measured:
        for base in ("reference", "floor"):
            if key == base or base not in measured or len(measured[key]) != len(measured[base]):
                continue
            per_round = [
                b["seconds"] / v["seconds"] for v, b in zip(measured[key], measured[base], strict=True)
            ]
            out[key][f"vs_{base}_each_round"] = per_round
            out[key][f"vs_{base}"] = statistics.median(per_round)
    out["rows"] = out["ours_1w"]["input"]
    print(f"\n== {label}: {out['rows']:,} conversations ==", flush=True)
    report(out)
    return out


def report(r: dict) -> None:
    ref, floor = r["reference"], r.get("floor")
    if r.get("sampled"):
        print(f"(reference measured on the first {ref['rows']:,} of the rows; the floor is not measured)")
    if r.get("rounds", 1) > 1:
        print(
            f"({r['rounds']} interleaved rounds: each line is the median run; the ratios are the medians "
            "of the ratios within each round)"
        )
    head = (
        f"{'':34s}{'seconds':>9s}{'rows/s':>10s}{'peak RSS MB':>13s}{'+workers MB':>12s}{'vs reference':>14s}"
    )
    print(head + (f"{'vs floor':>10s}" if floor else ""))

    def ratio(d, base, key):
        if d is base:
            return 1.0
        return d.get(key, d["rows_per_s"] / base["rows_per_s"])

    def line(name, d):
        text = (
            f"{name:34s}{d['seconds']:9.2f}{d['rows_per_s']:10,.0f}{d['peak_rss_mb']:13,.0f}"
            f"{d.get('worker_peak_rss_mb', 0):12,.0f}{ratio(d, ref, 'vs_reference'):13.2f}x"
        )
        if floor:
            text += f"{ratio(d, floor, 'vs_floor'):9.2f}x"
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
                + (f"; workers started by {d['worker_start']}" if d.get("worker_start") else "")
                + (f"; polars threads per process: {d['polars_threads']}" if d.get("polars_threads") else "")
                + (
                    f"; CPU time taken by the hypervisor (steal) during the run: {steal:.1f} s"
                    if steal is not None
                    else ""
                )
            )
            if len(d.get("seconds_each_round", [])) > 1:
                rounds = ", ".join(f"{x:.2f}" for x in d["seconds_each_round"])
                vs = ", ".join(f"{x:.2f}x" for x in d.get("vs_reference_each_round", []))
                print(f"{'':4s}each round: {rounds} s; vs the reference in the same round: {vs}")
    if len(ref.get("seconds_each_round", [])) > 1:
        print(f"{'':4s}reference, each round: {', '.join(f'{x:.2f}' for x in ref['seconds_each_round'])} s")
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
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds on the real data")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "curate.json")
    args = p.parse_args()
    ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    results = []
    if not args.no_real:
        if (SHARED / "data").exists():
            results.append(
                bench_corpus(
                    "real data (../shared/data)",
                    REAL_SOURCES,
                    SHARED,
                    args.workers,
                    ray=ray,
                    rounds=args.rounds,
                )
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
