"""LoRA SFT on a curation run: verify, audit, train, evaluate before/after, save."""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from curation.errors import CurationError
from training.audit import audit, default_max_length
from training.config import TrainConfig
from training.data import load_run
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
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 16
) -> list[tuple[str, bool]]:
    """Greedy answers to single-turn prompts, batched with left padding: (text, finished) per
    prompt, ``finished`` being False when the answer ran into max_new_tokens without ending."""
    import torch

    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[tuple[str, bool]] = []
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
    finally:
        tokenizer.padding_side = side
    return outputs


def train(run_dir: str | Path, cfg: TrainConfig) -> TrainResult:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from training import hardware

    data = load_run(run_dir, cfg.validation_fraction, cfg.max_validation_rows, cfg.seed, cfg.validation_data)
    run_name = data.manifest.get("run_name", Path(run_dir).name)
    output = Path(cfg.output or Path("outputs") / f"{run_name}-lora")
    hw = hardware.detect()
    log.warning("training on %s", hw.describe())

    model_path = resolve_model(cfg.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise CurationError(
            f"cannot load the tokenizer of {cfg.model or model_path!r}: {str(e).splitlines()[0]}"
        ) from None
    if not tokenizer.chat_template:
        raise CurationError(f"model {cfg.model or model_path!r} has no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    inference_template = tokenizer.chat_template
    train_template = training_template(tokenizer)

    train_msgs = data.train["messages"].to_pylist()
    val_msgs = data.validation["messages"].to_pylist()
    check_same_render(tokenizer, train_template, (train_msgs + val_msgs)[:CHECKED_RENDER_ROWS])

    lengths = data.train["total_tokens"].to_pylist() if "total_tokens" in data.train.column_names else []
    max_length = cfg.max_length or default_max_length(
        [x for x in lengths if x is not None], cfg.max_length_cap
    )
    per_device = cfg.per_device_batch_size or hw.per_device_batch_size
    grad_accum = max(1, math.ceil(cfg.effective_batch_size / per_device))
    preflight = audit(
        tokenizer,
        train_template,
        train_msgs,
        data.train["id"].to_pylist(),
        max_length,
        per_device * grad_accum,
        cfg.epochs,
        cfg.max_steps,
    )
    log.warning(
        "pre-flight: %d rows, %d trainable tokens, %d rows truncated at max_length=%d (%d tokens lost, %d trainable), ~%d steps",
        preflight.rows,
        preflight.trainable_tokens,
        preflight.rows_truncated,
        max_length,
        preflight.tokens_lost_to_max_length,
        preflight.trainable_tokens_lost,
        preflight.estimated_steps,
    )

    dtype = torch.bfloat16 if hw.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype, attn_implementation=hw.attn_implementation
    )
    tokenizer.chat_template = train_template  # trl masks the loss with its {% generation %} markers
    train_ds = datasets.Dataset.from_dict({"messages": train_msgs})
    val_ds = datasets.Dataset.from_dict({"messages": val_msgs})
    args = SFTConfig(
        output_dir=str(output / "checkpoints"),
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (transformers 5)
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        logging_steps=cfg.logging_steps,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=hw.bf16,
        use_cpu=hw.device == "cpu",
        max_length=max_length,
        packing=cfg.packing,
        assistant_only_loss=True,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    throughput = _throughput_callback()
    trainer.add_callback(throughput)

    prompts = list(cfg.eval_prompts) + [
        next(m["content"] for m in conv if m["role"] == "user") for conv in val_msgs[: cfg.validation_prompts]
    ]
    tokenizer.chat_template = inference_template  # generation uses the inference template
    loss_before = trainer.evaluate()["eval_loss"]
    # LoRA starts at zero: these are the base model's answers.
    before = generate_batch(trainer.model, tokenizer, prompts, cfg.max_new_tokens)
    tokenizer.chat_template = train_template
    if hw.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    train_out = trainer.train()
    train_seconds = time.perf_counter() - t0
    tokenizer.chat_template = inference_template
    loss_after = trainer.evaluate()["eval_loss"]
    after = generate_batch(trainer.model, tokenizer, prompts, cfg.max_new_tokens)

    steps = trainer.state.global_step
    warm = min(2, max(0, steps - 1))
    timed_steps = steps - warm
    timed = (throughput.times[-1] - throughput.times[warm - 1]) if warm and timed_steps > 0 else train_seconds
    rows_per_step = per_device * grad_accum
    tokens_per_row = preflight.total_tokens / max(1, preflight.rows)
    trained_per_row = preflight.trainable_tokens / max(1, preflight.rows)
    peak_mem = (
        torch.cuda.max_memory_allocated() / 2**20
        if hw.device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
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
        "max_length": max_length,
        "per_device_batch_size": per_device,
        "gradient_accumulation_steps": grad_accum,
        "validation_carved": data.validation_carved,
        "validation_rows": data.validation.num_rows,
        "audit": preflight.summary(),
    }
    generations = [
        {"prompt": p, "base": b, "tuned": a, "base_finished": bf, "tuned_finished": af}
        for p, (b, bf), (a, af) in zip(prompts, before, after, strict=True)
    ]

    adapter_dir = output / "adapter"
    trainer.model.save_pretrained(adapter_dir)
    tokenizer.chat_template = inference_template
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / "training_chat_template.jinja").write_text(train_template)
    card = {
        "base_model": cfg.model or "SmolLM2-135M-Instruct",
        "data_run": str(data.run_dir),
        "data_manifest_sha256": _sha256(data.run_dir / "manifest.json"),
        "config": cfg.model_dump(mode="json"),
        "metrics": metrics,
        "versions": _versions(),
    }
    (adapter_dir / "training_card.json").write_text(json.dumps(card, indent=2))
    if cfg.merge:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(output / "merged")
        tokenizer.save_pretrained(output / "merged")
    evaluation = {"metrics": metrics, "generations": generations}
    (output / "eval.json").write_text(json.dumps(evaluation, indent=2, ensure_ascii=False))
    _write_report(Path("reports") / run_name / "training.html", run_name, evaluation)
    return TrainResult(output, metrics)


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
