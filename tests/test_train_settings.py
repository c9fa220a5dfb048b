"""Training settings as trl and peft name them, the command line, and --print-config."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl", reason="training needs the 'train' extra")
pytest.importorskip("peft", reason="training needs the 'train' extra")

from curation.errors import ConfigError  # noqa: E402
from training.config import TrainConfig, load_train_config  # noqa: E402


def test_sft_and_lora_field_names_pass_through(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        "per_device_train_batch_size: 2\ngradient_accumulation_steps: 3\nnum_train_epochs: 2\n"
        "learning_rate: 1.0e-4\nreport_to: tensorboard\nweight_decay: 0.1\noptim: adamw_torch\n"
        "r: 8\nuse_rslora: true\n"
    )
    cfg = load_train_config(path, {})
    assert cfg.per_device_train_batch_size == 2 and cfg.gradient_accumulation_steps == 3
    assert cfg.num_train_epochs == 2 and cfg.learning_rate == 1e-4 and cfg.r == 8
    assert cfg.sft_extra() == {"weight_decay": 0.1, "optim": "adamw_torch"}
    assert cfg.lora_extra() == {"use_rslora": True}


def test_the_older_names_still_read():
    cfg = TrainConfig(epochs=3, lora_r=4, per_device_batch_size=2, output="o", lr_scheduler="linear")
    assert (cfg.num_train_epochs, cfg.r, cfg.per_device_train_batch_size) == (3, 4, 2)
    assert (cfg.output_dir, cfg.lr_scheduler_type) == ("o", "linear")


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("learning_rate: 1.0e-4\nlearnin_rate: 3\nper_device_batch: 2\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(path, {})
    assert "learnin_rate" in str(e.value) and "per_device_batch" in str(e.value)
    assert str(path) in str(e.value)
    # Settings the trainer makes itself are not pass-through values.
    with pytest.raises(ConfigError, match="assistant_only_loss"):
        load_train_config(None, {"assistant_only_loss": False})


def test_print_config_shows_the_resolved_settings(curated_run, tiny_model_dir, capsys):
    from pipelines import train as cli

    argv = ["--data", str(curated_run), "--model", str(tiny_model_dir), "--print-config"]
    argv += ["--learning-rate", "1e-4", "--lora-r", "4", "--batch-size", "2", "--report-to", "tensorboard"]
    assert cli.main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    manifest = json.loads((curated_run / "manifest.json").read_text())
    assert shown["max_length"] == manifest["tokenizer"]["max_length"]  # the run's own
    assert "manifest" in shown["max_length_from"]
    sft, lora = shown["sft_config"], shown["lora_config"]
    assert sft["learning_rate"] == 1e-4 and sft["per_device_train_batch_size"] == 2
    assert sft["report_to"] == "tensorboard" and sft["assistant_only_loss"] is True
    assert lora["r"] == 4 and lora["task_type"] == "CAUSAL_LM"
    assert shown["rows"]["train"] + shown["rows"]["validation"] == manifest["totals"]["kept"]


def test_cli_max_length_override(curated_run, tiny_model_dir, capsys):
    from pipelines import train as cli

    argv = [
        "--data",
        str(curated_run),
        "--model",
        str(tiny_model_dir),
        "--print-config",
        "--max-length",
        "1024",
    ]
    assert cli.main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["max_length"] == 1024 and shown["sft_config"]["max_length"] == 1024
