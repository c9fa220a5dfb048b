"""The local engine's worker processes: stages travel as plain data and need no model code."""

import pickle
import subprocess
import sys

from curation.config import StagesConfig
from curation.engine import from_ipc, to_ipc
from curation.stages import build_map_stages
from tests.conftest import ROOT
from tests.helpers import batch_of, chat

WORKER = """
import pickle, sys
stages = pickle.load(open(sys.argv[1], "rb"))
from curation.engine import from_ipc, run_batch
kept, steps = run_batch(stages, from_ipc(open(sys.argv[2], "rb").read()))
print(kept["completion_tokens"].to_pylist(), "transformers" in sys.modules)
"""


def test_prepared_stages_run_in_a_fresh_process_without_transformers(tmp_path, tiny_tokenizer_dir):
    cfg = StagesConfig.model_validate({"length": {"tokenizer": tiny_tokenizer_dir}})
    stages = build_map_stages(cfg)
    batch = batch_of([chat("Hi", "Hello there, how are you today?"), chat("2+2?", "The answer is 4.")])
    for stage in stages:
        stage.prepare(batch)
    in_process = stages[-1].annotate(batch)["completion_tokens"].to_pylist()
    (tmp_path / "stages.pkl").write_bytes(pickle.dumps(stages))
    (tmp_path / "batch.arrow").write_bytes(to_ipc(batch))
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path / "stages.pkl"), str(tmp_path / "batch.arrow")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == f"{in_process} False"


def test_ipc_round_trip_of_a_slice_carries_only_the_slice():
    batch = batch_of([f"Answer number {i}." for i in range(1000)])
    part = batch.slice(10, 5)
    data = to_ipc(part)
    assert from_ipc(data).equals(part)
    assert len(data) < len(pickle.dumps(batch)) / 20
