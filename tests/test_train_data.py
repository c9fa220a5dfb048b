"""What --data takes (a curation run, a Parquet/JSONL file or folder, a hub id) and max_length."""

from __future__ import annotations

import json
import logging

import pytest

pytest.importorskip("torch", reason="training needs the 'train' extra (torch, peft, trl)")
pytest.importorskip("trl", reason="training needs the 'train' extra")

from curation.errors import CurationError  # noqa: E402
from tests.conftest import shared  # noqa: E402
from training.config import TrainConfig  # noqa: E402

QUICK = dict(
    max_steps=1,
    per_device_train_batch_size=2,
    effective_batch_size=2,
    eval_prompts=[],
    validation_prompts=0,
    max_validation_rows=2,
)


def conversations(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "folder"])
def test_a_file_or_folder_of_conversations_trains(kind, tiny_model_dir, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from training.run import train

    monkeypatch.chdir(tmp_path)
    rows = conversations(12)
    folder = tmp_path / "convs"
    folder.mkdir()
    if kind == "jsonl":
        data = folder / "convs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        data = folder / "convs.parquet"
        pq.write_table(pa.Table.from_pylist(rows), data)
        if kind == "folder":
            pq.write_table(pa.Table.from_pylist(conversations(4)), folder / "more.parquet")
            data = folder
    result = train(data, TrainConfig(model=str(tiny_model_dir), output_dir=str(tmp_path / "out"), **QUICK))
    m = result.metrics
    assert m["steps"] == 1
    assert m["audit"]["rows"] + m["validation_rows"] == (16 if kind == "folder" else 12)
    # No manifest: max_length holds the longest row.
    assert m["max_length_from"].startswith("the longest row") and m["audit"]["rows_truncated"] == 0
    assert (result.output / "adapter" / "adapter_model.safetensors").is_file()


def test_a_hub_id_is_read_with_datasets(monkeypatch):
    """The hub path is datasets.load_dataset (stubbed here: no network in tests)."""
    import datasets

    from training.data import load_data

    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, split))
        return datasets.Dataset.from_list(conversations(8))

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = load_data("someorg/chats", 0.25, 2, 0)
    assert calls == [("someorg/chats", "train")]
    assert data.train.num_rows + data.validation.num_rows == 8 and not data.is_run
    with pytest.raises(CurationError, match="no such file or folder"):
        load_data("./missing/file.jsonl", 0.25, 2, 0)
    with pytest.raises(CurationError, match="no such file or folder"):
        load_data("missing/file.jsonl", 0.25, 2, 0)


def test_a_shorter_max_length_drops_rows_with_a_count(tiny_model_dir, tmp_path, monkeypatch, caplog):
    from training.run import plan

    monkeypatch.chdir(tmp_path)
    rows = conversations(3)
    rows[1]["messages"][0]["content"] = "Tell me a long story please. " * 60  # the answer starts late
    data = tmp_path / "convs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps(conversations(1)[0]) + "\n")
    with caplog.at_level(logging.WARNING, logger="training"):
        p = plan(
            data, TrainConfig(model=str(tiny_model_dir), max_length=96, validation_data=str(val), **QUICK)
        )
    assert p.preflight.rows_dropped == 1 and p.preflight.rows == 2 and len(p.train_msgs) == 2
    assert p.preflight.trainable_tokens_dropped > 0
    assert "1 of 3 rows have no trainable token within max_length=96" in caplog.text


def test_a_curated_real_source_trains_with_default_settings(
    tiny_tokenizer_dir, tiny_model_dir, tmp_path, monkeypatch
):
    """The issue's case: curation keeps rows up to its length stage's max_length, longer than the
    trainer's old default (512); the trainer takes the run's max_length and trains every kept row."""
    from curation.config import config_from_dict
    from curation.run.pipeline import run_curation
    from training.run import train

    source = shared("alpaca_eval_outputs/guanaco-7b.json.gz")
    monkeypatch.chdir(tmp_path)
    cfg = config_from_dict(
        {"run_name": "guanaco", "report": False, "sources": [{"name": "guanaco", "path": str(source)}]}
    )
    cfg.stages.length.tokenizer = tiny_tokenizer_dir
    run = tmp_path / "run"
    run_curation(cfg, out=run, workers=1)
    manifest = json.loads((run / "manifest.json").read_text())
    import polars as pl

    kept = pl.read_parquet(run / "train-*.parquet")
    assert kept["total_tokens"].max() > 512  # over the trainer's old default

    result = train(
        run, TrainConfig(model=str(tiny_model_dir), max_steps=2, eval_prompts=[], validation_prompts=0)
    )
    m = result.metrics
    assert m["steps"] == 2 and m["max_length"] == manifest["tokenizer"]["max_length"]
    audit = m["audit"]
    assert audit["rows_dropped"] == 0  # every kept row trains
    assert audit["rows"] + m["validation_rows"] == manifest["totals"]["kept"]
    # Rows longer than max_length were kept for the assistant tokens inside it; they train truncated,
    # as many as the manifest's token counts say (less those carved into the validation split).
    over = int((kept["total_tokens"] > m["max_length"]).sum())
    assert over - m["validation_rows"] <= audit["rows_truncated"] <= over


def test_a_run_without_its_manifest_is_not_read_as_a_folder(curated_run, tmp_path):
    import shutil

    from training.data import load_data

    copy = tmp_path / "run"
    shutil.copytree(curated_run, copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(CurationError, match="without its manifest.json"):
        load_data(copy, 0.05, 8, 0)
