"""Whole curate runs of this checkout against an earlier commit, interleaved, as ratios.

    python -m bench.speed_vs_commit                       # vs d1f56d0, 100,000 generated rows
    python -m bench.speed_vs_commit --commit HEAD~3 --rows 20000 --rounds 5

The earlier commit is checked out as a git worktree under bench/out/ (made once, kept); each
round runs ``bench.run_ours`` (a fresh process: tokenizer load, read, every stage, write) once
from that worktree and once from this checkout, in alternating order, on the same generated
corpus (bench/corpus.py) with the default stages and all cores. Printed: seconds per run, and per
round the ratio earlier / this (above 1: this checkout is faster), with the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def worktree(commit: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, capture_output=True, text=True, check=True)
    sha = sha.stdout.strip()
    path = OUT / f"worktree-{sha[:10]}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def corpus(rows: int) -> Path:
    path = OUT / f"corpus-{rows}.jsonl"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "bench.corpus", "--rows", str(rows), "--out", str(path)],
            cwd=ROOT,
            check=True,
        )
    return path


def one_run(code: Path, data: Path, workers: int) -> dict:
    cfg = {"run_name": "speed", "report": False, "sources": [{"name": "generated", "path": str(data)}]}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_ours", json.dumps(cfg), str(data.parent), str(workers)],
        cwd=code,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"run in {code} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="d1f56d0")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    earlier, data = worktree(args.commit), corpus(args.rows)
    ratios = []
    for r in range(args.rounds):
        order = [("earlier", earlier), ("this", ROOT)]
        if r % 2:
            order.reverse()
        res = {name: one_run(code, data, args.workers) for name, code in order}
        ratio = res["earlier"]["seconds"] / res["this"]["seconds"]
        ratios.append(ratio)
        print(
            f"round {r + 1}: earlier {res['earlier']['seconds']:.1f} s, this {res['this']['seconds']:.1f} s, "
            f"earlier/this {ratio:.2f}x (kept {res['earlier']['kept']:,} vs {res['this']['kept']:,} of "
            f"{res['this']['input']:,})",
            flush=True,
        )
    print(f"median earlier/this over {args.rounds} rounds: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
