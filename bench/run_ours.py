"""One curate run in its own process, for a clean peak-RSS figure: prints a JSON line.

Its memory is sampled by the process that starts it (``bench.curate.ours``): a sampling thread
here would make forking the workers unsafe, and the run would start them the slower way.

python -m bench.run_ours CONFIG_JSON BASE_DIR WORKERS [--one-core] [--engine ray]

``--one-core`` pins the process (and so its tokenizer and polars threads) to one core: the
"one worker" of issue 7. ``--engine ray`` starts a local Ray with WORKERS CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def steal_seconds() -> float | None:
    """CPU time the hypervisor gave to other guests (all cores), from /proc/stat: a noisy VM shows
    here, and its runs are slower for it."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config_json")
    p.add_argument("base_dir", type=Path)
    p.add_argument("workers", type=int)
    p.add_argument("--one-core", action="store_true")
    p.add_argument("--engine", default="local")
    args = p.parse_args()
    if args.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    t_start = time.perf_counter()
    # Imports are not timed (the reference runs with its modules and tokenizer already loaded,
    # pandas included: pyarrow imports it on its first array built from Python objects); loading
    # the tokenizer and building every stage is, and so is starting a local Ray.
    import pandas  # noqa: F401
    from transformers import PreTrainedTokenizerFast  # noqa: F401

    from curation.run.polars_threads import one_polars_thread_per_process

    one_polars_thread_per_process(args.workers)  # as the CLI does, before polars is imported

    from curation.config import config_from_dict
    from curation.run.pipeline import run_curation

    t0, steal0 = time.perf_counter(), steal_seconds()
    cfg = config_from_dict(json.loads(args.config_json), base_dir=args.base_dir)
    scratch = ROOT / "bench" / "out"
    scratch.mkdir(parents=True, exist_ok=True)  # absent on a fresh clone
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        if args.engine == "ray":
            import ray

            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        m = run_curation(cfg, out=Path(tmp) / "out", workers=args.workers, engine=args.engine).manifest
        if args.engine == "ray":
            ray.shutdown()
    seconds = time.perf_counter() - t0
    steal1 = steal_seconds()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "import_seconds": t0 - t_start,
                "workers_used": m["engine"]["workers"],
                "engine": m["engine"]["name"],
                "worker_start": m["engine"].get("worker_start"),
                "polars_threads": m["engine"].get("polars_threads"),
                "one_core": args.one_core,
                "stage_seconds": m["timings_s"],
                "phases": m["phases"],
                "kept": m["totals"]["kept"],
                "rejected": m["totals"]["rejected"],
                "quarantined": m["totals"]["quarantined"],
                "input": m["totals"]["input"],
                "token_counting": m["tokenizer"]["token_counting"],
                "vm_steal_seconds": None if steal0 is None or steal1 is None else steal1 - steal0,
            }
        )
    )


if __name__ == "__main__":
    main()
