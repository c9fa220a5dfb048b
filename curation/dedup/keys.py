"""The text a dedup stage compares: the conversation's turns (never the system prompt), or a part.

Keys: ``conversation`` (user and assistant turns, the default), ``prompt`` (first user turn),
``prompts`` (all user turns), ``response`` (assistant turns).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from curation.stages.turns import turns

KEYS = ("conversation", "prompt", "prompts", "response")


def key_texts(table: pa.Table, key: str = "conversation") -> pl.Series:
    """Per row: the key's turns joined, NFKC-normalized, lower-cased, whitespace collapsed."""
    roles = {
        "conversation": ("user", "assistant"),
        "prompt": ("user",),
        "prompts": ("user",),
        "response": ("assistant",),
    }
    t = turns(table, roles=roles[key]).sort(["row", "turn"])
    if key == "prompt":
        t = t.group_by("row", maintain_order=True).first()
    joined = t.group_by("row", maintain_order=True).agg(
        text=(pl.col("role").str.slice(0, 1) + pl.lit(": ") + pl.col("content")).str.join("\n")
    )
    out = np.full(table.num_rows, "", dtype=object)
    if joined.height:
        out[joined["row"].to_numpy()] = joined["text"].to_list()
    return (
        pl.Series("key", out.tolist(), dtype=pl.String)
        .str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
