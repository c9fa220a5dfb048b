"""What a training run leaves: checkpoints to resume from, an adapter others can load on the base
model it names, a filled model card, and the same pushed to the hub."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="training needs the 'train' extra (torch, peft, trl)")
pytest.importorskip("peft", reason="training needs the 'train' extra")

from training.config import TrainConfig  # noqa: E402

QUICK = dict(
    per_device_train_batch_size=2,
    effective_batch_size=2,
    eval_prompts=["Hi"],
    validation_prompts=1,
    max_new_tokens=4,
    max_validation_rows=4,
    logging_steps=1,
)


def test_checkpoints_and_resume_continue_at_the_right_step(
    curated_run, tiny_model_dir, tmp_path, monkeypatch
):
    from training.run import train

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    first = train(
        curated_run,
        TrainConfig(model=str(tiny_model_dir), output_dir=str(out), max_steps=2, save_steps=1, **QUICK),
    )
    assert first.metrics["steps"] == 2
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-1", "checkpoint-2"]

    resumed = train(
        curated_run,
        TrainConfig(
            model=str(tiny_model_dir), output_dir=str(out), max_steps=4, save_steps=1, resume=True, **QUICK
        ),
    )
    m = resumed.metrics
    assert m["steps"] == 4 and m["steps_run"] == 2  # steps 3 and 4 only: it went on from step 2
    assert m["resumed_from"]
    # save_total_limit (2) keeps the newest two.
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-3",
        "checkpoint-4",
    ]


def test_resume_without_a_checkpoint_is_a_clear_error(curated_run, tiny_model_dir, tmp_path, monkeypatch):
    from curation.errors import CurationError
    from training.run import train

    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(
        model=str(tiny_model_dir), output_dir=str(tmp_path / "new"), max_steps=1, resume=True, **QUICK
    )
    with pytest.raises(CurationError, match="no checkpoint under"):
        train(curated_run, cfg)


def test_the_adapter_loads_on_the_model_it_names_and_has_a_card(
    curated_run, tiny_model_dir, tmp_path, monkeypatch
):
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    from training.run import train

    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(model=str(tiny_model_dir), base_model_id="example-org/tiny-chat", max_steps=1, **QUICK)
    adapter = train(curated_run, cfg).output / "adapter"
    named = PeftConfig.from_pretrained(adapter).base_model_name_or_path
    assert named == "example-org/tiny-chat"  # the hub id, not a machine-local path
    offline = {"example-org/tiny-chat": tiny_model_dir}  # the hub id mapped to the local copy
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(offline[named]), adapter)
    assert tuned.peft_config["default"].r == cfg.r

    card = (adapter / "README.md").read_text()
    manifest_sha = json.loads((adapter / "training_card.json").read_text())["data_manifest_sha256"]
    assert card.startswith("---\nbase_model: example-org/tiny-chat\n")
    assert manifest_sha in card and "Validation loss" in card and "**Hi**" in card
    assert "| learning_rate | 0.0002 |" in card
    assert json.loads((adapter / "training_card.json").read_text())["base_model_local_path"] == str(
        tiny_model_dir
    )


def test_the_default_model_is_named_by_its_hub_id():
    from training.run import _hub_id

    assert _hub_id(None, None) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert _hub_id("someorg/model", None) == "someorg/model"
    assert _hub_id("/local/folder", "someorg/model") == "someorg/model"


def test_push_to_hub_uploads_the_adapter_folder(tmp_path, monkeypatch):
    """The real hub client, with its HTTP transport replaced (the network boundary)."""
    httpx = pytest.importorskip("httpx2", reason="huggingface_hub's HTTP client")
    import huggingface_hub
    from huggingface_hub import constants

    from training.run import push_adapter

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "README.md").write_text("---\nbase_model: x\n---\n# card\n")
    seen = []

    def handler(request):
        path = request.url.path
        seen.append((request.method, path))
        if path == "/api/repos/create":
            return httpx.Response(
                200, json={"url": "https://huggingface.co/me/tiny-adapter", "name": "me/tiny-adapter"}
            )
        if path == "/api/validate-yaml":  # the model card's header
            return httpx.Response(200, json={})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            return httpx.Response(
                200,
                json={
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                },
            )
        if "/commit/" in path:
            body = request.content.decode()
            assert "adapter_config.json" in body and "README.md" in body
            return httpx.Response(
                200,
                json={"commitUrl": "https://huggingface.co/me/tiny-adapter/commit/1", "commitOid": "1" * 40},
            )
        return httpx.Response(404, json={"error": f"unexpected {request.method} {path}"})

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    huggingface_hub.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    try:
        url = push_adapter(folder, "me/tiny-adapter")
    finally:
        huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)
    assert url == "https://huggingface.co/me/tiny-adapter"
    assert ("POST", "/api/repos/create") in seen
    assert any("/commit/" in p for _, p in seen)


def test_report_to_tensorboard_writes_the_run(curated_run, tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the 'train' extra installs tensorboard")
    from training.run import train

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tb"
    cfg = TrainConfig(
        model=str(tiny_model_dir), output_dir=str(out), max_steps=2, report_to="tensorboard", **QUICK
    )
    train(curated_run, cfg)
    events = list(out.rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
