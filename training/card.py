"""The adapter's model card (README.md): what it was trained on, how, and what it changed."""

from __future__ import annotations

SETTINGS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "max_length",
    "packing",
    "seed",
)
GENERATIONS_SHOWN = 3


def _fence(text: str) -> str:
    return "```text\n" + text.replace("```", "'''") + "\n```"


def model_card(card: dict, generations: list[dict]) -> str:
    """Markdown with the hub's YAML header (base_model, library_name, tags)."""
    m, s = card["metrics"], card["settings"]
    sft, lora = s["sft_config"], s["lora_config"]
    base = card["base_model"]
    counts = card.get("data_counts") or {}
    lines = [
        "---",
        f"base_model: {base}",
        "library_name: peft",
        "pipeline_tag: text-generation",
        "tags: [lora, sft, trl, sft-curation]",
        "---",
        "",
        f"# LoRA adapter for {base}",
        "",
        f"Supervised fine-tuning with trl + peft (LoRA r={lora['r']}, alpha={lora['lora_alpha']}, "
        f"dropout={lora['lora_dropout']}, target modules {lora['target_modules']}) on {m['hardware']}.",
        "",
        "## Data",
        "",
        f"- data: `{card['data']}`",
    ]
    if card.get("data_manifest_sha256"):
        lines.append(f"- curation run manifest sha256: `{card['data_manifest_sha256']}`")
    if counts:
        lines.append(
            f"- curation: {counts.get('input', '?')} rows read, {counts.get('kept', '?')} kept, "
            f"{counts.get('rejected', '?')} rejected, {counts.get('quarantined', '?')} quarantined"
        )
    a = m["audit"]
    lines += [
        f"- trained on {a['rows']} rows ({a['trainable_tokens']:,} trainable tokens at max_length "
        f"{m['max_length']}, from {m['max_length_from']}); {a['rows_dropped']} rows dropped, "
        f"{a['rows_truncated']} truncated; {m['validation_rows']} validation rows",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | {sft[k]} |" for k in SETTINGS if k in sft),
        "",
        "## Results",
        "",
        f"Validation loss {m['eval_loss_before']:.4f} before, {m['eval_loss_after']:.4f} after "
        f"{m['steps']} steps (train loss {m['train_loss']:.4f}).",
        "",
    ]
    for g in generations[:GENERATIONS_SHOWN]:
        lines += [
            f"**{g['prompt']}**",
            "",
            "Base model:",
            "",
            _fence(g["base"]),
            "",
            "Tuned:",
            "",
            _fence(g["tuned"]),
            "",
        ]
    lines += [
        "## Use",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'base = AutoModelForCausalLM.from_pretrained("{base}")',
        'model = PeftModel.from_pretrained(base, "<this folder or repo>")',
        'tokenizer = AutoTokenizer.from_pretrained("<this folder or repo>")',
        "```",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        "",
    ]
    return "\n".join(lines)
