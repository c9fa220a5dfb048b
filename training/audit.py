"""Pre-flight audit: every row rendered through the exact training template and tokenizer.

A row without a trainable (assistant) token inside max_length teaches nothing: it is dropped and
counted (``rows_dropped``, ``trainable_tokens_dropped``), never a crash. With a curation run's own
max_length none is: its length stage already removed such rows."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from curation.errors import CurationError


@dataclass
class Audit:
    rows: int  # rows that train (after the dropped ones)
    max_length: int
    trainable_tokens_per_row: list[int]  # within max_length
    total_tokens: int  # non-padding tokens the trainer sees (after truncation)
    trainable_tokens: int
    rows_truncated: int
    tokens_lost_to_max_length: int
    trainable_tokens_lost: int
    estimated_steps: int
    rows_dropped: int = 0  # no trainable token within max_length
    trainable_tokens_dropped: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    keep: list[bool] = field(default_factory=list)  # per input row: trains

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("keep")
        d["dropped_ids"] = d["dropped_ids"][:20]
        per_row = np.asarray(d.pop("trainable_tokens_per_row"))
        d["trainable_tokens_per_row"] = {
            "min": int(per_row.min()),
            "mean": float(per_row.mean()),
            "max": int(per_row.max()),
        }
        return d


def length_for(longest: int, cap: int) -> int:
    """A max_length that holds the longest rendered row (rounded up to a multiple of 64), capped."""
    return int(min(cap, max(64, math.ceil(longest / 64) * 64)))


def audit(
    tokenizer,
    template: str,
    conversations: list[list[dict]],
    ids: list[str],
    max_length: int | None,
    effective_batch_size: int,
    epochs: float,
    max_steps: int | None,
    max_length_cap: int = 2048,
) -> Audit:
    """Render and tokenize every row; ``max_length`` None: the longest row's, up to the cap."""
    out = tokenizer.apply_chat_template(
        conversations,
        chat_template=template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    if max_length is None:
        max_length = length_for(max((len(x) for x in out["input_ids"]), default=64), max_length_cap)
    per_row, total, lost, trainable_lost, truncated = [], 0, 0, 0, 0
    keep, dropped, dropped_tokens = [], [], 0
    for row_id, ids_row, mask in zip(ids, out["input_ids"], out["assistant_masks"], strict=True):
        mask = np.asarray(mask)
        kept = mask[:max_length]
        keep.append(bool(kept.sum()))
        if not keep[-1]:
            dropped.append(row_id)
            dropped_tokens += int(mask.sum())
            continue
        per_row.append(int(kept.sum()))
        total += min(len(ids_row), max_length)
        if len(ids_row) > max_length:
            truncated += 1
            lost += len(ids_row) - max_length
            trainable_lost += int(mask[max_length:].sum())
    if not per_row:
        raise CurationError(
            f"no row has a trainable (assistant) token within max_length={max_length}: nothing to train on"
        )
    steps_per_epoch = math.ceil(len(per_row) / effective_batch_size)
    steps = max_steps if max_steps else max(1, math.ceil(steps_per_epoch * epochs))
    return Audit(
        rows=len(per_row),
        max_length=max_length,
        trainable_tokens_per_row=per_row,
        total_tokens=total,
        trainable_tokens=int(sum(per_row)),
        rows_truncated=truncated,
        tokens_lost_to_max_length=lost,
        trainable_tokens_lost=trainable_lost,
        estimated_steps=steps,
        rows_dropped=len(dropped),
        trainable_tokens_dropped=dropped_tokens,
        dropped_ids=dropped,
        keep=keep,
    )
