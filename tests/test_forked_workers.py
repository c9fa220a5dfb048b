"""Map workers forked from the run's own process (curation.run.forked_workers), and when that is safe."""

import json
import sys
import threading

import pytest

from curation.run.fork_safety import fork_is_safe
from tests.helpers import run_python

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked only on Linux")


def test_safe_in_a_fresh_process_that_imported_polars_but_not_once_its_pool_ran():
    out = run_python(
        "import polars as pl\n"
        "from curation.run.fork_safety import fork_is_safe\n"
        "before = fork_is_safe()\n"
        "pl.DataFrame({'a': list(range(200_000))}).group_by('a').len()  # starts polars' pool\n"
        "print([before, fork_is_safe()])\n"
    )
    assert json.loads(out.lower()) == [True, False]


def test_not_safe_while_another_python_thread_runs():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not fork_is_safe()
    finally:
        stop.set()
        thread.join()


RUN_TWICE = """
import json
from curation.run import engine
from curation.config import load_config
from curation.run.pipeline import run_curation
from tests.conftest import ROOT
import tempfile, pathlib

engine.MIN_ROWS_PER_WORKER = 100  # the sample is small: two processes anyway
cfg = load_config(ROOT / "data" / "sample.yaml")
cfg.batch_size = 128
out = pathlib.Path(tempfile.mkdtemp())
forked = run_curation(cfg, out=out / "forked", workers=2)  # first: no polars thread yet
alone = run_curation(cfg, out=out / "alone", workers=1)
print(json.dumps({
    "engine": forked.manifest["engine"],
    "same_kept": forked.kept["id"].to_pylist() == alone.kept["id"].to_pylist(),
    "same_rejected": forked.rejected.select(["id", "reject_stage", "reject_reason"]).equals(
        alone.rejected.select(["id", "reject_stage", "reject_reason"])),
    "same_counts": forked.manifest["counts"] == alone.manifest["counts"],
}))
"""


def test_a_fresh_process_forks_its_workers_with_the_same_result_as_one_process():
    result = json.loads(run_python(RUN_TWICE))
    assert result["engine"]["worker_start"] == "fork"
    assert result["engine"]["worker_processes"] == 1
    assert result["same_kept"] and result["same_rejected"] and result["same_counts"]


def test_workers_waiting_for_stages_stop_when_the_run_fails_before_building_them(tmp_path):
    code = (
        "import multiprocessing as mp\n"
        "from curation.run import engine\n"
        "from curation.config import load_config\n"
        "from curation.errors import CurationError\n"
        "from curation.run.pipeline import run_curation\n"
        "from tests.conftest import ROOT\n"
        "engine.MIN_ROWS_PER_WORKER = 100\n"
        "cfg = load_config(ROOT / 'data' / 'sample.yaml')\n"
        f"cfg.stages.length.tokenizer = {str(tmp_path / 'no-such-tokenizer')!r}\n"
        "try:\n"
        f"    run_curation(cfg, out={str(tmp_path / 'out')!r}, workers=2)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, len(mp.active_children()))\n"
    )
    # A worker left waiting would hang the exit (the timeout fails it); one that left with an
    # exception would print a traceback.
    out = run_python(code, timeout=120, quiet=True)
    error, children = out.split()
    assert error and children == "0"


def test_forked_workers_closed_before_any_stages_exit():
    out = run_python(
        "import multiprocessing as mp\n"
        "from curation.run.forked_workers import ForkedWorkers\n"
        "workers = ForkedWorkers(2)\n"
        "started = len(mp.active_children())\n"
        "workers.close()\n"
        "print(started, len(mp.active_children()))\n",
        timeout=60,
        quiet=True,
    )
    assert out.split() == ["2", "0"]


def test_the_models_loaded_before_the_fork_start_no_thread_and_are_what_the_stages_use(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CURATION_CACHE", str(tmp_path))
    # A first process reads the tokenizer through transformers and caches its spec.
    run_python("from curation.tokens.token_counter_cache import load_counter\nload_counter(None)\n")
    out = run_python(
        "import pickle\n"
        "from curation.tokens import fast_bpe\nfrom curation.stages import langid\n"
        "from curation.config import StagesConfig\n"
        "from curation.run.fork_safety import fork_is_safe\n"
        "from curation.run.forked_workers import load_shared_models\n"
        "from curation.stages import LengthStage\n"
        "cfg = StagesConfig()\n"
        "load_shared_models(cfg)\n"
        "model = langid._numpy_model()\n"
        "(encoder,) = fast_bpe._CHECKED.values()\n"
        "worker = pickle.loads(pickle.dumps(LengthStage(cfg.length)))  # as a forked worker gets it\n"
        "print([fork_is_safe(), langid._numpy_model.cache_info().misses,\n"
        "       worker.counter.encoder is encoder, model is not None])\n"
    )
    assert json.loads(out.lower()) == [True, 1, True, True]
