"""Pre-flight audit: every row rendered through the exact training template and tokenizer."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from curation.errors import CurationError


@dataclass
class Audit:
    rows: int
    max_length: int
    trainable_tokens_per_row: list[int]  # within max_length
    total_tokens: int  # non-padding tokens the trainer sees (after truncation)
    trainable_tokens: int
    rows_truncated: int
    tokens_lost_to_max_length: int
    trainable_tokens_lost: int
    estimated_steps: int

    def summary(self) -> dict:
        d = asdict(self)
        per_row = np.asarray(d.pop("trainable_tokens_per_row"))
        d["trainable_tokens_per_row"] = {
            "min": int(per_row.min()),
            "mean": float(per_row.mean()),
            "max": int(per_row.max()),
        }
        return d


def default_max_length(total_tokens: list[int], cap: int) -> int:
    """The 99th percentile of the curated lengths, rounded up to a multiple of 64, capped."""
    p99 = float(np.percentile(np.asarray(total_tokens), 99)) if total_tokens else 512
    return int(min(cap, max(64, math.ceil(p99 / 64) * 64)))


def audit(
    tokenizer,
    template: str,
    conversations: list[list[dict]],
    ids: list[str],
    max_length: int,
    effective_batch_size: int,
    epochs: float,
    max_steps: int | None,
) -> Audit:
    out = tokenizer.apply_chat_template(
        conversations,
        chat_template=template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    per_row, total, lost, trainable_lost, truncated = [], 0, 0, 0, 0
    for row_id, ids_row, mask in zip(ids, out["input_ids"], out["assistant_masks"], strict=True):
        mask = np.asarray(mask)
        kept = mask[:max_length]
        if mask.sum() == 0:
            raise CurationError(f"row {row_id}: no trainable (assistant) tokens in the rendered conversation")
        if kept.sum() == 0:
            raise CurationError(f"row {row_id}: every assistant token lies beyond max_length={max_length}")
        per_row.append(int(kept.sum()))
        total += min(len(ids_row), max_length)
        if len(ids_row) > max_length:
            truncated += 1
            lost += len(ids_row) - max_length
            trainable_lost += int(mask[max_length:].sum())
    steps_per_epoch = math.ceil(len(conversations) / effective_batch_size)
    steps = max_steps if max_steps else max(1, math.ceil(steps_per_epoch * epochs))
    return Audit(
        rows=len(conversations),
        max_length=max_length,
        trainable_tokens_per_row=per_row,
        total_tokens=total,
        trainable_tokens=int(sum(per_row)),
        rows_truncated=truncated,
        tokens_lost_to_max_length=lost,
        trainable_tokens_lost=trainable_lost,
        estimated_steps=steps,
    )
