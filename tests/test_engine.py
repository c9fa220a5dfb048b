"""The local engine's worker processes: stages travel as plain data and need no model code."""

import os
import pickle
import subprocess
import sys
from concurrent.futures import Future

import pyarrow as pa

from curation.config import StagesConfig
from curation.run.engine import from_ipc, to_ipc
from curation.stages import build_map_stages
from curation.stages.base import Stage
from tests.conftest import ROOT
from tests.helpers import batch_of, chat, run_python

WORKER = """
import pickle, sys
import curation.run.worker_preload
stages = pickle.load(open(sys.argv[1], "rb"))
from curation.run.engine import from_ipc, run_batch, to_ipc
kept, steps = run_batch(stages, from_ipc(open(sys.argv[2], "rb").read()))
open(sys.argv[3], "wb").write(to_ipc(kept))
heavy = ("transformers", "pydantic", "curation.config", "jinja2", "yaml", "fasttext")
print([m for m in heavy if m in sys.modules])
"""


def test_prepared_stages_run_in_a_fresh_process_without_model_config_or_template_code(
    tmp_path, tiny_tokenizer_dir
):
    from curation.dedup.sketch_stage import DedupSketchStage
    from curation.dedup.stages import NearDedupStage
    from curation.run.engine import run_batch

    cfg = StagesConfig.model_validate({"length": {"tokenizer": tiny_tokenizer_dir}})
    stages = build_map_stages(cfg)
    stages.append(DedupSketchStage(cfg.exact_dedup, NearDedupStage(cfg.near_dedup), cfg.near_dedup))
    batch = batch_of(
        [
            chat("Hi", "Hello there, how are you today?"),
            chat("2+2?", "The answer is 4."),
            chat("Und du?", "Mir geht es gut, danke der Nachfrage."),
        ]
    )
    for stage in stages:
        stage.prepare(batch)
    in_process, _ = run_batch(stages, batch)
    (tmp_path / "stages.pkl").write_bytes(pickle.dumps(stages))
    (tmp_path / "batch.arrow").write_bytes(to_ipc(batch))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            WORKER,
            *(str(tmp_path / f) for f in ("stages.pkl", "batch.arrow", "kept.arrow")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "[]"  # the worker imported none of them
    in_worker = from_ipc((tmp_path / "kept.arrow").read_bytes())
    assert in_worker.column_names == in_process.column_names
    for name in in_process.column_names:  # NaN (not scored) compares equal to NaN here
        assert str(in_worker[name].to_pylist()) == str(in_process[name].to_pylist()), name
    assert in_process["lang"].to_pylist() == [
        "en",
        "und",
    ]  # the German row is rejected, "4." too short to judge


def test_ipc_round_trip_of_a_slice_carries_only_the_slice():
    batch = batch_of([f"Answer number {i}." for i in range(1000)])
    part = batch.slice(10, 5)
    data = to_ipc(part)
    assert from_ipc(data).equals(part)
    assert len(data) < len(pickle.dumps(batch)) / 20


def test_map_stages_in_memory_matches_stage_by_stage(tiny_tokenizer_dir):
    from curation.run.engine import map_stages
    from curation.stages import StageCounts

    cfg = StagesConfig.model_validate({"length": {"tokenizer": tiny_tokenizer_dir}})
    stages = build_map_stages(cfg)
    answers = ["Paris is the capital of France.", "", "So the answer is the", "Hello there! " * 20, "42"]
    batch = batch_of(answers)
    counts = StageCounts()
    kept, rejected = map_stages(stages, batch, counts, batch_size=2)
    expected_kept, reasons = batch, []
    for stage in stages:
        expected_kept, rej = stage.process(expected_kept)
        reasons += rej["reject_reason"].to_pylist()
    assert kept["id"].to_pylist() == expected_kept["id"].to_pylist()
    assert [r for part in rejected for r in part["reject_reason"].to_pylist()] == reasons
    assert sum(sum(c.values()) for c in counts.removed["empty"].values()) == 1


def test_a_worker_keeps_pandas_out_and_arrow_still_builds_arrays():
    code = (
        "import sys, pickle, pyarrow as pa, polars as pl\n"
        "from curation.run.engine import _init_worker\n"
        "_init_worker(pickle.dumps([]))\n"
        "assert pa.array(['a', None]).null_count == 1\n"
        "assert pl.from_arrow(pa.table({'x': [1, 2]})).height == 2\n"
        "assert 'pandas' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_workers_run_under_a_main_script_that_imports_pandas(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import pandas\n"
        "from curation.config import StagesConfig\n"
        "from curation.run.engine import map_stages\n"
        "from curation.stages import StageCounts, build_map_stages\n"
        "from tests.helpers import batch_of, chat\n"
        "if __name__ == '__main__':\n"
        "    rows = [chat(f'Question {i}?', f'Answer number {i}, in a full sentence.') for i in range(9000)]\n"
        "    kept, _ = map_stages(build_map_stages(StagesConfig()), batch_of(rows), StageCounts(), workers=2)\n"
        "    assert kept.num_rows == 9000, kept.num_rows\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_cli_module_imports_no_config_models():
    """Workers started by ``python -m pipelines.curate`` import it as their main module first."""
    code = "import sys, pipelines.curate\nprint([m for m in ('pydantic', 'transformers', 'pandas') if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == "[]"


def test_a_worker_imports_no_progress_bar_library():
    """tqdm.auto imports asyncio and ssl (~40 ms on a worker's start-up path); workers show no bars."""
    code = (
        "import sys, pickle\n"
        "import curation.run.worker_preload\n"
        "from curation.run.engine import _init_worker\n"
        "_init_worker(pickle.dumps([]))\n"
        "print('tqdm' in sys.modules, 'asyncio' in sys.modules)\n"
    )
    assert run_python(code) == "False False"


def test_progress_bars_still_count_rows():
    from curation.run.progress import progress_bar

    with open(os.devnull, "w") as sink, progress_bar(total=3, disable=False, file=sink) as bar:
        bar.update(3)
        assert bar.n == 3


class EveryThird(Stage):
    name = "every_third"

    def decide(self, batch):
        return ["third" if int(i[1:]) % 3 == 0 else None for i in batch["id"].to_pylist()]


def test_the_last_waiting_batches_are_split_and_their_rows_keep_their_order(monkeypatch):
    from curation.run.engine import MIN_SPLIT_ROWS, LocalEngine
    from curation.stages import StageCounts

    # No worker ever takes a batch: everything waits until this process runs it.
    monkeypatch.setattr(LocalEngine, "_launch", lambda self: None)
    engine = LocalEngine([EveryThird()], StageCounts(), workers=2)
    rows = [f"r{i}" for i in range(3300)]
    table = pa.table({"id": rows, "source": ["s"] * len(rows)})
    for start in range(0, len(rows), 1100):
        engine.submit(table.slice(start, 1100))
    kept, rejected = engine.finish(table.slice(0, 0))
    # The third batch ran while the input went on; the two left at the end were split in pieces.
    per_batch = 1100
    while per_batch >= 2 * MIN_SPLIT_ROWS:
        per_batch //= 2
    assert engine.sink.batches == 1 + 2 * (1100 // per_batch)
    assert kept["id"].to_pylist() == [r for i, r in enumerate(rows) if i % 3]
    assert [r for part in rejected for r in part["id"].to_pylist()] == rows[::3]


class _CollectedFuture(Future):
    """A worker's batch that is done only once it is collected: its work runs then."""

    def __init__(self, log, fn, args):
        super().__init__()
        self._log, self._fn, self._args = log, fn, args

    def result(self, timeout=None):
        if not self.done():
            self._log.append("waited for the worker")
            self.set_result(self._fn(*self._args))
        return super().result(timeout)


class _BusyWorker:
    """A pool of one worker that stays busy with its batch until it is collected."""

    def __init__(self, log):
        self.log = log

    def submit(self, fn, *args):
        return _CollectedFuture(self.log, fn, args)

    def shutdown(self, **kwargs):
        pass


class LoggedEveryThird(EveryThird):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def decide(self, batch):
        self.log.append(batch["id"][0].as_py())
        return super().decide(batch)


def test_at_the_end_this_process_runs_every_waiting_piece_before_it_waits_for_a_worker(monkeypatch):
    import curation.run.engine as engine_mod
    from curation.run.engine import LocalEngine
    from curation.stages import StageCounts

    log = []
    stage = LoggedEveryThird(log)

    def launch(self):
        self.pool = _BusyWorker(log)
        with self._lock:
            self._started = True
            self._hand_out()

    monkeypatch.setattr(LocalEngine, "_launch", launch)
    monkeypatch.setattr(engine_mod, "_WORKER_STAGES", [stage])
    engine = LocalEngine([stage], StageCounts(), workers=2)
    engine._launcher.join()
    rows = [f"r{i}" for i in range(3300)]
    table = pa.table({"id": rows, "source": ["s"] * len(rows)})
    for start in range(0, len(rows), 1100):
        engine.submit(table.slice(start, 1100))
    kept, _ = engine.finish(table.slice(0, 0))
    # The worker holds the first batch; the other two, cut in eight pieces (more than the
    # in-flight bound while reading), all run here before this process waits for the worker.
    assert log.count("waited for the worker") == 1
    assert log[-2:] == ["waited for the worker", "r0"]
    assert len(log) == 2 + 8
    assert kept["id"].to_pylist() == [r for i, r in enumerate(rows) if i % 3]
