"""One curate run in its own process, for a clean peak-RSS figure: prints a JSON line.

python -m bench.run_ours CONFIG_JSON BASE_DIR WORKERS
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    cfg_json, base_dir, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    t_start = time.perf_counter()
    # Imports are not timed (the reference runs with its modules and tokenizer already loaded);
    # loading the tokenizer and building every stage is.
    from transformers import PreTrainedTokenizerFast  # noqa: F401

    from bench.memory import PeakMemory
    from curation.config import config_from_dict
    from curation.pipeline import run_curation

    t0 = time.perf_counter()
    cfg = config_from_dict(json.loads(cfg_json), base_dir=base_dir)
    # Sampled from /proc: ru_maxrss would report the parent's high-water mark (kept across exec).
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
        m = run_curation(cfg, out=Path(tmp) / "out", workers=workers).manifest
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "import_seconds": t0 - t_start,
                "peak_rss_mb": mem.peak_self / 2**20,
                "worker_peak_rss_mb": mem.peak_children / 2**20,
                "workers_used": m["engine"]["workers"],
                "stage_seconds": m["timings_s"],
                "kept": m["totals"]["kept"],
                "rejected": m["totals"]["rejected"],
                "quarantined": m["totals"]["quarantined"],
                "input": m["totals"]["input"],
                "token_counting": m["tokenizer"]["token_counting"],
            }
        )
    )


if __name__ == "__main__":
    main()
