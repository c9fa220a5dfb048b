"""One curate run in its own process, for a clean peak-RSS figure: prints a JSON line.

python -m bench.run_ours CONFIG_JSON BASE_DIR WORKERS
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    cfg_json, base_dir, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    t0 = time.perf_counter()
    from curation.config import config_from_dict
    from curation.pipeline import run_curation

    cfg = config_from_dict(json.loads(cfg_json), base_dir=base_dir)
    with tempfile.TemporaryDirectory() as tmp:
        m = run_curation(cfg, out=Path(tmp) / "out", workers=workers).manifest
    seconds = time.perf_counter() - t0
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": self_kb / 1024,
                "worker_peak_rss_mb": child_kb / 1024 if m["engine"]["workers"] > 1 else 0.0,
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
