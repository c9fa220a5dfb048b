"""The curate bench measures the run a user gets."""

from bench.corpus import write_corpus
from bench.curate import ours


def test_bench_run_forks_its_workers_as_a_cli_run_does(tmp_path):
    """Its memory is sampled from outside: a sampling thread inside the run made forking unsafe,
    and the bench then measured the slower fork-server start that a CLI run does not take."""
    rows = 6_000  # ~790 bytes a row: estimated above the 4,000 rows a second process needs
    path = write_corpus(rows, tmp_path / "corpus.jsonl")
    cfg = {"run_name": "bench", "report": False, "sources": [{"name": "g", "path": str(path)}]}
    d = ours(cfg, tmp_path, workers=2)
    assert d["workers_used"] == 2
    assert d["worker_start"] == "fork"
    assert d["polars_threads"] == 1  # one per process, as in a CLI run
    assert d["kept"] + d["rejected"] + d["quarantined"] == d["input"] == rows
    # Sampled from the bench's process: the run's own memory and its worker's.
    assert d["peak_rss_mb"] > 100
    assert d["worker_peak_rss_mb"] > 20
    assert d["total_peak_rss_mb"] >= d["peak_rss_mb"]
