"""LoRA SFT on a curation run: verify, audit, train, evaluate before/after, save."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from curation.errors import CurationError
from curation.run.progress import progress_bar
from curation.tokens.tokenizer import DEFAULT_ALIASES, DEFAULT_MODEL_NAME
from training.audit import Audit, audit
from training.card import model_card
from training.config import TrainConfig
from training.data import RunData, load_data
from training.model import resolve_model
from training.template import check_same_render, training_template

log = logging.getLogger(__name__)

CHECKED_RENDER_ROWS = 2000  # rows whose training render is compared with the inference render


@dataclass
class TrainResult:
    output: Path
    metrics: dict


def _throughput_callback():
    from transformers import TrainerCallback

    class Throughput(TrainerCallback):
        """Step wall times, to measure speed after the warm-up steps."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    return Throughput()


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    return [text for text, _ in generate_batch(model, tokenizer, prompts, max_new_tokens)]


def generate_batch(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 16, label: str = "generate"
) -> list[tuple[str, bool]]:
    """Greedy answers to single-turn prompts, batched with left padding: (text, finished) per
    prompt, ``finished`` being False when the answer ran into max_new_tokens without ending."""
    import torch

    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[tuple[str, bool]] = []
    bar = progress_bar(total=len(prompts), desc=label, unit="prompt", disable=not prompts)
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts[i : i + batch_size]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                model.device
            )
            with torch.no_grad():
                out = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id
                )
            for row in out[:, enc["input_ids"].shape[1] :]:
                ids = row.tolist()
                finished = tokenizer.eos_token_id in ids or pad_id in ids
                outputs.append((tokenizer.decode(ids, skip_special_tokens=True).strip(), finished))
            bar.update(len(texts))
    finally:
        tokenizer.padding_side = side
        bar.close()
    return outputs


DEFAULT_HUB_ID = f"HuggingFaceTB/{DEFAULT_MODEL_NAME}"


@dataclass
class Plan:
    """Everything resolved before the model loads: what ``--print-config`` shows and ``train`` runs."""

    data: RunData
    model_name: str  # what the user named (or the default)
    model_path: str  # where it loads from (the converted local copy for the default)
    base_model_id: str  # recorded as the adapter's base_model_name_or_path
    tokenizer: object
    train_template: str
    inference_template: str
    max_length: int
    max_length_from: str
    preflight: Audit
    train_msgs: list
    val_msgs: list
    sft: dict  # SFTConfig keyword arguments
    lora: dict  # LoraConfig keyword arguments
    output: Path
    hardware: object

    def settings(self) -> dict:
        """The resolved settings, as ``--print-config`` prints them."""
        return {
            "data": self.data.source,
            "model": self.model_name,
            "model_path": self.model_path,
            "base_model_name_or_path": self.base_model_id,
            "hardware": self.hardware.describe(),
            "max_length": self.max_length,
            "max_length_from": self.max_length_from,
            "rows": {
                "train": self.preflight.rows,
                "dropped": self.preflight.rows_dropped,
                "validation": len(self.val_msgs),
            },
            "sft_config": {k: v for k, v in self.sft.items() if k != "output_dir"}
            | {"output_dir": str(self.output / "checkpoints")},
            "lora_config": self.lora,
        }


def _hub_id(model_name: str | None, base_model_id: str | None) -> str:
    """What the adapter names as its base: the hub id others load (the default model's, not the
    local converted copy), or what the user named."""
    if base_model_id:
        return base_model_id
    return DEFAULT_HUB_ID if model_name in DEFAULT_ALIASES else str(model_name)


def plan(data_arg: str | Path, cfg: TrainConfig) -> Plan:
    """Read and audit the data, resolve the model, max_length and every trl / peft setting."""
    from transformers import AutoTokenizer

    from training import hardware

    data = load_data(
        data_arg, cfg.validation_fraction, cfg.max_validation_rows, cfg.seed, cfg.validation_data
    )
    output = Path(cfg.output_dir or Path("outputs") / f"{data.name}-lora")
    hw = hardware.detect()
    # The run's tokenizer names the model when the user names none: lengths were counted with it.
    model_name = cfg.model if cfg.model is not None else (data.tokenizer_name if data.is_run else None)
    if model_name not in DEFAULT_ALIASES and data.is_run and not _loadable_model(model_name):
        model_name = None  # the run counted with a tokenizer-only folder: the default model
    model_path = resolve_model(model_name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise CurationError(
            f"cannot load the tokenizer of {model_name or model_path!r}: {str(e).splitlines()[0]}"
        ) from None
    if not tokenizer.chat_template:
        raise CurationError(f"model {model_name or model_path!r} has no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    inference_template = tokenizer.chat_template
    train_template = training_template(tokenizer)
    counted_with = ((data.manifest or {}).get("tokenizer") or {}).get("chat_template_sha256")
    if counted_with and counted_with != hashlib.sha256(inference_template.encode()).hexdigest():
        log.warning(
            "the run counted tokens with %s's chat template, training renders with %s's: rows that no longer "
            "fit max_length are dropped (counted below)",
            data.tokenizer_name,
            model_name,
        )

    train_msgs = data.train["messages"].to_pylist()
    val_msgs = data.validation["messages"].to_pylist()
    check_same_render(tokenizer, train_template, (train_msgs + val_msgs)[:CHECKED_RENDER_ROWS])

    if cfg.max_length is not None:
        max_length, source = cfg.max_length, "the training config"
    elif data.max_length is not None:
        max_length, source = data.max_length, "the run's manifest (its length stage)"
    else:
        max_length, source = None, f"the longest row (capped at {cfg.max_length_cap})"
    per_device = cfg.per_device_train_batch_size or hw.per_device_batch_size
    effective = cfg.effective_batch_size or hw.effective_batch_size
    grad_accum = cfg.gradient_accumulation_steps or max(1, math.ceil(effective / per_device))
    preflight = audit(
        tokenizer,
        train_template,
        train_msgs,
        data.train["id"].to_pylist(),
        max_length,
        per_device * grad_accum,
        cfg.num_train_epochs,
        cfg.max_steps,
        cfg.max_length_cap,
    )
    if preflight.rows_dropped:
        log.warning(
            "%d of %d rows have no trainable token within max_length=%d and are dropped (%d trainable tokens "
            "lost); the run's own max_length is %s",
            preflight.rows_dropped,
            len(train_msgs),
            preflight.max_length,
            preflight.trainable_tokens_dropped,
            data.max_length,
        )
        train_msgs = [m for m, keep in zip(train_msgs, preflight.keep, strict=True) if keep]
    log.info(
        "pre-flight: %d rows, %d trainable tokens, %d rows truncated at max_length=%d from %s "
        "(%d tokens lost, %d trainable), ~%d steps",
        preflight.rows,
        preflight.trainable_tokens,
        preflight.rows_truncated,
        preflight.max_length,
        source,
        preflight.tokens_lost_to_max_length,
        preflight.trainable_tokens_lost,
        preflight.estimated_steps,
    )
    sft = {
        "output_dir": str(output / "checkpoints"),
        "per_device_train_batch_size": per_device,
        "per_device_eval_batch_size": per_device,
        "gradient_accumulation_steps": grad_accum,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the steps (transformers 5)
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps or -1,
        "logging_steps": cfg.logging_steps,
        "eval_strategy": "no",
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "report_to": cfg.report_to,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "bf16": hw.bf16,
        "use_cpu": hw.device == "cpu",
        "max_length": preflight.max_length,
        "packing": cfg.packing,
        "assistant_only_loss": True,
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
        **cfg.sft_extra(),
    }
    lora = {
        "r": cfg.r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "target_modules": cfg.target_modules,
        "task_type": "CAUSAL_LM",
        **cfg.lora_extra(),
    }
    return Plan(
        data,
        model_name or DEFAULT_MODEL_NAME,
        model_path,
        _hub_id(model_name, cfg.base_model_id),
        tokenizer,
        train_template,
        inference_template,
        preflight.max_length,
        source,
        preflight,
        train_msgs,
        val_msgs,
        sft,
        lora,
        output,
        hw,
    )


def _loadable_model(name: str | None) -> bool:
    """A folder with a model config, or a name that is not a local path (a hub id)."""
    if name is None:
        return False
    path = Path(name).expanduser()
    return (path / "config.json").is_file() if path.exists() else True


def _labelled_progress():
    from transformers.trainer_callback import ProgressCallback
    from transformers.trainer_utils import has_length

    class LabelledProgress(ProgressCallback):
        """transformers' bars, named: train and eval."""

        def on_train_begin(self, args, state, control, **kwargs):  # ProgressCallback's, with a name
            if state.is_world_process_zero:
                self.training_bar = progress_bar(
                    total=state.max_steps, desc="train", unit="step", dynamic_ncols=True
                )
            self.current_step = 0

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if state.is_world_process_zero and self.prediction_bar is None and has_length(eval_dataloader):
                self.prediction_bar = progress_bar(
                    total=len(eval_dataloader), desc="eval", unit="batch", leave=False, dynamic_ncols=True
                )
            super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    return ProgressCallback, LabelledProgress()


def train(data: str | Path, cfg: TrainConfig) -> TrainResult:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    # trl 1.x reads transformers' deprecated `is_gradient_checkpointing` (not this project's call).
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    p = plan(data, cfg)
    hw, tokenizer = p.hardware, p.tokenizer
    log.info("training on %s", hw.describe())
    dtype = torch.bfloat16 if hw.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        p.model_path, dtype=dtype, attn_implementation=hw.attn_implementation
    )
    tokenizer.chat_template = p.train_template  # trl masks the loss with its {% generation %} markers
    train_ds = datasets.Dataset.from_dict({"messages": p.train_msgs})
    val_ds = datasets.Dataset.from_dict({"messages": p.val_msgs})
    try:
        args = SFTConfig(**p.sft)
        peft_config = LoraConfig(**p.lora)
    except (TypeError, ValueError) as e:
        raise CurationError(f"invalid trl/peft setting: {str(e).splitlines()[0]}") from None
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    plain_bar, labelled_bar = _labelled_progress()
    if trainer.pop_callback(plain_bar) is not None:
        trainer.add_callback(labelled_bar)
    throughput = _throughput_callback()
    trainer.add_callback(throughput)

    prompts = (
        list(cfg.eval_prompts)
        + [
            next(m["content"] for m in conv if m["role"] == "user")
            for conv in p.val_msgs[: cfg.validation_prompts]
        ][: cfg.max_eval_prompts]
    )
    tokenizer.chat_template = p.inference_template  # generation uses the inference template
    loss_before = trainer.evaluate()["eval_loss"]
    # LoRA starts at zero: these are the base model's answers.
    before = generate_batch(trainer.model, tokenizer, prompts, cfg.max_new_tokens, label="generate (base)")
    tokenizer.chat_template = p.train_template
    if hw.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    resume = cfg.resume
    if resume is True and not _checkpoints(p.output):
        raise CurationError(f"--resume: no checkpoint under {p.output / 'checkpoints'} to continue from")
    t0 = time.perf_counter()
    train_out = trainer.train(resume_from_checkpoint=resume or None)
    train_seconds = time.perf_counter() - t0
    tokenizer.chat_template = p.inference_template
    loss_after = trainer.evaluate()["eval_loss"]
    after = generate_batch(trainer.model, tokenizer, prompts, cfg.max_new_tokens, label="generate (tuned)")

    preflight = p.preflight
    steps = trainer.state.global_step
    warm = min(2, max(0, steps - 1))
    timed_steps = steps - warm
    timed = (throughput.times[-1] - throughput.times[warm - 1]) if warm and timed_steps > 0 else train_seconds
    rows_per_step = p.sft["per_device_train_batch_size"] * p.sft["gradient_accumulation_steps"]
    tokens_per_row = preflight.total_tokens / max(1, preflight.rows)
    trained_per_row = preflight.trainable_tokens / max(1, preflight.rows)
    peak_mem = (
        torch.cuda.max_memory_allocated() / 2**20
        if hw.device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    timed_steps = min(timed_steps, len(throughput.times))  # a resumed run times only its own steps
    metrics = {
        "hardware": hw.describe(),
        "steps": steps,
        "train_loss": train_out.training_loss,
        "eval_loss_before": loss_before,
        "eval_loss_after": loss_after,
        "train_seconds": train_seconds,
        "tokens_per_s": tokens_per_row * rows_per_step * timed_steps / timed if timed > 0 else None,
        "trained_tokens_per_s": trained_per_row * rows_per_step * timed_steps / timed if timed > 0 else None,
        "throughput_note": f"after {warm} warm-up steps; tokens per step from the audited mean row length",
        "peak_memory_mb": peak_mem,
        "max_length": p.max_length,
        "max_length_from": p.max_length_from,
        "per_device_batch_size": p.sft["per_device_train_batch_size"],
        "gradient_accumulation_steps": p.sft["gradient_accumulation_steps"],
        "validation_carved": p.data.validation_carved,
        "validation_rows": p.data.validation.num_rows,
        "resumed_from": str(resume) if resume else None,
        "steps_run": len(throughput.times),  # this run's own (a resumed run went on from a checkpoint)
        "audit": preflight.summary(),
    }
    generations = [
        {"prompt": q, "base": b, "tuned": a, "base_finished": bf, "tuned_finished": af}
        for q, (b, bf), (a, af) in zip(prompts, before, after, strict=True)
    ]

    adapter_dir = p.output / "adapter"
    # peft records the folder the model loaded from (for the default, a local converted copy):
    # the adapter names the hub id others load it on; the local copy is in the card.
    for adapter_cfg in trainer.model.peft_config.values():
        adapter_cfg.base_model_name_or_path = p.base_model_id
    # Embeddings are not trained (LoRA on the linear layers); without this, peft looks the base
    # model up on the hub to see whether its vocabulary changed.
    trainer.model.save_pretrained(adapter_dir, save_embedding_layers=False)
    tokenizer.chat_template = p.inference_template
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / "training_chat_template.jinja").write_text(p.train_template)
    card = {
        "base_model": p.base_model_id,
        "base_model_local_path": p.model_path,
        "data": p.data.source,
        "data_run": str(p.data.run_dir) if p.data.is_run else None,
        "data_manifest_sha256": _sha256(p.data.run_dir / "manifest.json") if p.data.is_run else None,
        "data_counts": (p.data.manifest or {}).get("totals"),
        "config": cfg.model_dump(mode="json"),
        "settings": p.settings(),
        "metrics": metrics,
        "versions": _versions(),
    }
    (adapter_dir / "training_card.json").write_text(json.dumps(card, indent=2, default=str))
    (adapter_dir / "README.md").write_text(model_card(card, generations), encoding="utf-8")
    if cfg.merge:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(p.output / "merged")
        tokenizer.save_pretrained(p.output / "merged")
    evaluation = {"metrics": metrics, "generations": generations}
    (p.output / "eval.json").write_text(json.dumps(evaluation, indent=2, ensure_ascii=False))
    _write_report(Path("reports") / p.data.name / "training.html", p.data.name, evaluation)
    if cfg.push_to_hub:
        url = push_adapter(adapter_dir, cfg.push_to_hub, private=cfg.hub_private_repo)
        log.info("pushed the adapter to %s", url)
        metrics["pushed_to"] = url
    return TrainResult(p.output, metrics)


def _checkpoints(output: Path) -> list[Path]:
    return sorted((output / "checkpoints").glob("checkpoint-*"))


def push_adapter(folder: Path, repo_id: str, private: bool | None = None) -> str:
    """Upload the adapter folder (weights, tokenizer, model card) to a hub model repo."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        repo = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message="LoRA adapter (sft-curation)",
        )
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise CurationError(f"--push-to-hub {repo_id}: {str(e).splitlines()[0]}") from None
    return f"https://huggingface.co/{repo.repo_id}"


def _sha256(path: Path) -> str:
    from curation.io.files import sha256_file

    return sha256_file(path)


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for pkg in ("torch", "transformers", "trl", "peft", "datasets"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _write_report(path: Path, run_name: str, evaluation: dict) -> None:
    import html

    m = evaluation["metrics"]
    rows = "".join(
        f"<tr><td>{html.escape(g['prompt'])}</td><td><pre>{html.escape(g['base'])}</pre></td>"
        f"<td><pre>{html.escape(g['tuned'])}</pre></td></tr>"
        for g in evaluation["generations"]
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(run_name)}: before / after</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}td,th{{border:1px solid #ccc;padding:.5em;vertical-align:top}}
table{{border-collapse:collapse;width:100%}}pre{{white-space:pre-wrap;margin:0}}</style></head><body>
<h1>What the data did to the model: {html.escape(run_name)}</h1>
<p>Validation loss {m["eval_loss_before"]:.4f} before, {m["eval_loss_after"]:.4f} after {m["steps"]} steps on {html.escape(m["hardware"])}.</p>
<table><tr><th>prompt</th><th>base model</th><th>after LoRA SFT</th></tr>{rows}</table></body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
