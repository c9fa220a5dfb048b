"""Scale: memory stays flat as the input grows, and the Ray engine gives the local engine's output."""

import json
import subprocess
import sys

import pytest

from curation.config import load_config
from curation.run.pipeline import run_curation
from tests.conftest import ROOT

MEASURE = """
import json, sys
from pathlib import Path
from bench.corpus import write_corpus
from curation.config import config_from_dict
from curation.run.pipeline import run_curation

rows, tmp = int(sys.argv[1]), Path(sys.argv[2])
path = write_corpus(rows, tmp / f"corpus-{rows}.jsonl")
cfg = config_from_dict({"run_name": "m", "report": False, "sources": [{"name": "g", "path": str(path)}]})
m = run_curation(cfg, out=tmp / f"out-{rows}", workers=2).manifest
print(json.dumps({
    "main": max(p["peak_rss_mb"] for p in m["phases"].values()),
    "workers": m["engine"]["worker_peak_rss_mb"],
    "kept": m["totals"]["kept"],
}))
"""


def _peak(rows: int, tmp_path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(rows), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_is_flat_from_50k_to_200k_rows(tmp_path):
    small, large = _peak(50_000, tmp_path), _peak(200_000, tmp_path)
    assert large["kept"] > 3 * small["kept"]  # the large run really did 4x the work
    # Peak RSS of the main process, and of main + workers, within 1.5x for 4x the rows.
    assert large["main"] <= 1.5 * small["main"], (small, large)
    assert large["main"] + large["workers"] <= 1.5 * (small["main"] + small["workers"]), (small, large)


def test_ray_engine_gives_the_local_engines_output(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray Data not installed: pip install 'ray[data]'")
    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.batch_size = 128  # several batches, so order across actors matters
    cfg.output.shard_max_rows = 50  # several shards per output, some cutting a batch in two
    local = run_curation(cfg, out=tmp_path / "local", workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        distributed = run_curation(cfg, out=tmp_path / "ray", engine="ray")
    finally:
        ray.shutdown()
    assert distributed.manifest["engine"]["name"] == "ray"
    assert distributed.manifest["engine"]["workers"] == 2
    assert distributed.kept["id"].to_pylist() == local.kept["id"].to_pylist()
    for col in ("id", "reject_stage", "reject_reason", "duplicate_of"):
        assert distributed.rejected[col].to_pylist() == local.rejected[col].to_pylist(), col
    assert distributed.manifest["counts"] == local.manifest["counts"]
    # Same bytes: the shards (written by Ray tasks there) come from the same staged batches.
    digests = lambda r: {s["file"]: s["sha256"] for s in r.manifest["shards"]}  # noqa: E731
    assert len(digests(local)) > 4
    assert digests(distributed) == digests(local)
